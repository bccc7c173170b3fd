"""`harness bisect`: which release, or which commit, changed what a trace shows.

Two histories, one procedure:

    --server uvicorn         --good 0.12.3   --bad 0.11.3    releases on the index
    --server git+REPO        --good REV      --bad REV       commits of a local repository

Releases come from the package index in version order; commits from git,
along the ancestry path between the two ends, oldest first. Each one tried
gets a verdict: "fails" if replaying the trace (leniently: code paths differ
between versions) shows a failure of the trace's kind whose signature has the
same shape (the same functions, wherever their files and lines are: uvicorn
0.2.17 renamed h11.py to h11_impl.py, which fixed nothing); where the trace
no longer applies (a setting the code does not have), its scenario family is
searched again within --budget instead. With --scenario, that search is the
test. A release or commit that does not build, install or mount, or that the
registry lists as unrunnable, is skipped, as `git bisect skip` would.

Both ends are checked first: the good end must pass and the bad end must fail,
or there is nothing to bisect (exit 2, saying which end is wrong). Binary
search assumes the behaviour changed once; every verdict is printed, so a
non-monotone history shows.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Callable
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.errors import EnvironmentFault, TargetFault
from harness.http.families import check_families
from harness.http.oracles import KINDS
from harness.search.profiles import check_budget
from harness.search.trace import Trace, TraceError
from harness.targets import era
from harness.targets.registry import (
    TargetError,
    entries,
    entry,
    parse_server,
    target_spec,
    target_specs,
)
from harness.targets.runner import run
from harness.targets.source import (
    Source,
    SourceError,
    commits_between,
    is_ancestor,
    is_source,
    parse_source,
    subject,
)


class BisectError(TargetError):
    pass


DEFAULT_KIND = "receive-hang"  # what --scenario looks for when --kind is not given


def releases(server: str) -> list[str]:
    """Every final release of `server`'s distribution on the package index, oldest first:
    the index installs read (targets/era.py: PyPI, or the one UV_DEFAULT_INDEX,
    UV_INDEX_URL or PIP_INDEX_URL names); as `pip index versions`, not the yanked ones."""
    distribution = entry(server).distribution
    if distribution is None:
        raise BisectError(f"{server} has no releases to bisect")
    return [str(v) for v, r in era.releases(distribution).items()
            if not v.is_prerelease and not r.yanked]


# A source file in a signature, with its line if it has one ("uvicorn/x/h11.py:203").
_PLACE = re.compile(r"[\w.\-/]*[\w\-]\.py(?::\d+)?")


def shape(signature: str) -> str:
    """The signature with each file:line made anonymous: code that moved (another line,
    a renamed module) is the same code; the function names say where it is."""
    return _PLACE.sub("FILE", signature)


def verdict_of(server_spec: str, http: str, args: argparse.Namespace,
               trace: Trace | None) -> tuple[bool | None, str]:
    """(fails?, why) on one version; None when it cannot be tried (it does not install)."""
    try:
        spec = target_spec(server_spec, http)
        if trace is not None:
            try:
                return _replayed(spec, trace)
            except TraceError as exc:  # the trace does not apply here: search its family
                family = str(trace.scenario.get("family", "")) if isinstance(
                    trace.scenario, dict) else ""
                found, why = _searched(spec, family, str((trace.verdict or {})["kind"]), args)
                note = f"the trace does not apply ({str(exc)[:80]}), so {family} was " \
                       f"searched for {args.budget:g}s"
                return found, f"{why}; {note}" if found else note
        return _searched(spec, args.scenario, args.kind, args)
    except (EnvironmentFault, TargetError, TargetFault) as exc:
        # It does not install, the registry says it cannot run (uvicorn 0.4.0), or it
        # does not mount: it says nothing about the behaviour, as `git bisect skip`.
        first = str(exc).strip().splitlines()[0]
        return None, f"skipped: {first}"


def said_of(fails: bool | None, why: str) -> str:
    """A verdict as bisect prints it: "fails (signature)", "passes", "skipped: why"."""
    if fails is None:
        return why  # "skipped: ..." already
    if fails:
        return f"fails ({why})"
    return "passes" if why == "pass" else f"passes ({why})"


def _replayed(spec: Any, trace: Trace) -> tuple[bool, str]:
    own = trace.target or {}
    strict = own.get("version") == spec.version and own.get("http") == spec.http \
        and not own.get("source") and spec.source is None
    result = run(spec, {"op": "replay", "trace": trace.to_json(), "strict": strict},
                 lambda e, i: None)
    want_kind = (trace.verdict or {}).get("kind")
    want_shape = shape((trace.verdict or {}).get("signature", ""))
    hits = [f for f in result["failures"]
            if f["kind"] == want_kind and shape(f["signature"]) == want_shape]
    return bool(hits), hits[0]["signature"] if hits else "pass"


def _searched(spec: Any, family: str, kind: str, args: argparse.Namespace) -> tuple[bool, str]:
    request = {"op": "explore", "families": [family], "budget": args.budget,
               "seed": 0, "accept": {"kind": kind}, "max_found": 1}
    found = run(spec, request, lambda e, i: None)["findings"]
    return bool(found), found[0]["signature"] if found else "pass"


# -- the two histories --------------------------------------------------------------
class History:
    """An ordered span of versions (oldest first), how to name each, and the spec that
    runs it."""

    def __init__(self, items: list[str], name: Callable[[str], str],
                 spec: Callable[[str], str], what: str, good_is_old: bool) -> None:
        self.items, self.name, self.spec, self.what = items, name, spec, what
        self.good_is_old = good_is_old


def release_history(server: str, good: str, bad: str) -> History:
    with contextlib.suppress(InvalidVersion):  # (not a version: refused as unpublished)
        if Version(good) == Version(bad):
            raise BisectError(f"--good and --bad are both {server} {good}: a bisect needs "
                              "two different releases")
    every = releases(server)
    for end in (good, bad):
        if end not in every:
            raise BisectError(f"{server} {end} is not a published release; see "
                              f"'pip index versions {server}'")
    lo, hi = sorted((good, bad), key=Version)
    span = [v for v in every if Version(lo) <= Version(v) <= Version(hi)]
    return History(span, lambda v: f"{server} {v}", lambda v: f"{server}=={v}", "releases",
                   Version(good) < Version(bad))


def commit_history(source: Source, good: str, bad: str) -> History:
    repo = source.location
    ends = []
    for flag, rev in (("--good", good), ("--bad", bad)):
        try:
            ends.append(parse_source(f"git+{repo}@{rev}").commit)
        except SourceError:
            raise BisectError(f"{flag} {rev}: not a commit of {repo}; see "
                              f"'git -C {repo} log --oneline'") from None
    good_c, bad_c = str(ends[0]), str(ends[1])
    if good_c == bad_c:
        raise BisectError(f"--good {good} and --bad {bad} are both commit {good_c[:12]}: a "
                          "bisect needs two different revisions")
    if is_ancestor(repo, good_c, bad_c):
        older, newer = good_c, bad_c
    elif is_ancestor(repo, bad_c, good_c):
        older, newer = bad_c, good_c
    else:
        raise BisectError(f"neither {good} nor {bad} is an ancestor of the other in {repo}; "
                          "bisect needs one history between them")
    return History(commits_between(repo, older, newer), lambda c: subject(repo, c),
                   lambda c: f"git+{repo}@{c}", "commits", older == good_c)


def cmd_bisect(args: argparse.Namespace) -> int:
    if (args.trace is None) == (args.scenario is None):
        raise BisectError("give exactly one of --trace TRACE or --scenario FAMILY")
    if args.trace is not None and args.kind is not None:
        raise BisectError(f"--kind {args.kind} goes with --scenario: with --trace, the kind "
                          "looked for is the trace's own verdict's")
    args.kind = args.kind or DEFAULT_KIND
    # Checked before any version is tried: a bad value found later costs two searches
    # and was blamed on the harness, or, for a kind no oracle reports, on the releases.
    check_budget(args.budget)
    check_families([args.scenario] if args.scenario is not None else [])
    if args.scenario is not None and args.kind not in KINDS:
        raise BisectError(f"unknown failure kind {args.kind!r}; known: {', '.join(KINDS)}")
    trace = Trace.load(args.trace) if args.trace else None
    if trace is not None and trace.verdict is None:
        raise BisectError(f"{args.trace} records no failure (a trace saved from a run that "
                          "passed or could not be judged): bisect a trace that explore, "
                          "exhaust or pytest scenarios/ saved from a failure")
    if is_source(args.server):
        source = parse_source(args.server.split("@")[0] if args.server.startswith("git+")
                              else args.server)
        if source.kind != "git":
            raise BisectError(f"--server {args.server} is a working copy; bisect needs a "
                              f"history: give git+{source.location} (a git repository)")
        history = commit_history(source, args.good, args.bad)
        server = target_specs(history.spec(history.items[0]))[0].server
    else:
        server, pinned = parse_server(args.server)
        if pinned is not None:
            raise BisectError(f"give --server {server} without a version; --good and --bad "
                              "name the releases")
        history = release_history(server, args.good, args.bad)
    protocols = entry(server).protocols
    own = str((trace.target or {}).get("http", "")) if trace else ""
    http = args.http or (own if own in protocols else protocols[0])
    http = protocols[0] if http == "default" else http
    if http not in protocols:  # checked here, not skipped at every version
        raise BisectError(f"--http {http}: bisect runs on one protocol implementation of "
                          f"{server}; give one of {', '.join(protocols)}")
    return _bisect(history, http, args, trace)


def _bisect(history: History, http: str, args: argparse.Namespace,
            trace: Trace | None) -> int:
    span = history.items
    tried: dict[str, tuple[bool | None, str]] = {}

    def check(item: str) -> bool | None:
        if item not in tried:
            tried[item] = verdict_of(history.spec(item), http, args, trace)
            print(f"  {history.name(item)}: {said_of(*tried[item])}", flush=True)
        return tried[item][0]

    print(f"bisecting {len(span)} {history.what} from {history.name(span[0])} to "
          f"{history.name(span[-1])} ({http}); checking both ends first", flush=True)
    good_is_old = history.good_is_old
    for item, want in ((span[0], not good_is_old), (span[-1], good_is_old)):
        got = check(item)
        end = "good" if want is False else "bad"
        if got is None:
            raise BisectError(f"the {end} end ({history.name(item)}) cannot be tried: "
                              f"{tried[item][1].removeprefix('skipped: ')}")
        if got != want:
            raise BisectError(
                f"the {end} end ({history.name(item)}) {'fails' if got else 'passes'}, but "
                f"a {end} end must {'fail' if want else 'pass'}: nothing to bisect (check "
                "--good/--bad, or give a longer --budget where the verdict is a search)")
    old_fails = not good_is_old
    a, b = narrow(span, check, old_fails)
    change = "fixed" if old_fails else "introduced"
    unit = history.what[:-1]
    if b - a > 1:
        print(f"the behaviour changed between {history.name(span[a])} and "
              f"{history.name(span[b])}; the {unit}s between could not be tried")
        return 2
    print(f"first {unit} where the behaviour changed: {history.name(span[b])} ({change} there; "
          f"{history.name(span[a])} is the last {unit} before)")
    return 0


def narrow(span: list[str], check: Callable[[str], bool | None],
           old_fails: bool) -> tuple[int, int]:
    """Binary search between two checked ends: span[0] behaves like the old end (fails
    if `old_fails`), span[-1] like the new one. Returns (a, b): span[b] is the first
    that behaves like the new end when b == a + 1; a wider gap is versions that could
    not be tried (check gave None)."""
    a, b = 0, len(span) - 1
    while b - a > 1:
        verdict = None
        for mid in _middle_out(a, b):  # the midpoint, or the nearest that can be tried
            verdict = check(span[mid])
            if verdict is not None:
                break
        if verdict is None:
            break  # every version between a and b was skipped
        if verdict == old_fails:
            a = mid
        else:
            b = mid
    return a, b


def _middle_out(a: int, b: int) -> list[int]:
    mid = (a + b) // 2
    order = sorted(range(a + 1, b), key=lambda i: (abs(i - mid), i))
    return order


def add_parser(sub: Any) -> None:
    bi = sub.add_parser("bisect", help="find the release or commit that introduced or fixed "
                                       "a failure")
    bi.add_argument("--server", required=True,
                    help="a server's name (" + ", ".join(
                        n for n, e in entries().items() if e.distribution) + "): --good and "
                         "--bad are releases; or git+REPO: they are revisions of that "
                         "repository")
    bi.add_argument("--good", required=True, help="the release or revision that passes")
    bi.add_argument("--bad", required=True, help="the release or revision that fails")
    bi.add_argument("--trace", default=None,
                    help="a failing trace (trace.json) each version replays; where it does "
                         "not apply, its family is searched for its failure kind (give this "
                         "or --scenario)")
    bi.add_argument("--scenario", default=None, metavar="FAMILY",
                    help="instead of --trace: a scenario family each version's search "
                         "explores for --kind")
    bi.add_argument("--kind", default=None,
                    help=f"with --scenario, the failure kind its search looks for: "
                         f"{', '.join(KINDS)} (default {DEFAULT_KIND})")
    bi.add_argument("--budget", type=float, default=30.0,
                    help="seconds of search per version, where a search decides the verdict "
                         "(default 30)")
    bi.add_argument("--http", default=None,
                    help="the protocol implementation (default: the trace's, else the "
                         "server's first)")
    bi.set_defaults(func=cmd_bisect)
