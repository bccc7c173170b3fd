"""`harness bisect`: which release changed the behaviour a trace (or scenario) shows.

Releases between --good and --bad come from the package index, in version
order. Each tried release gets a verdict: "fails" if replaying the trace
(leniently: code paths differ between releases) shows a failure of the
trace's kind whose signature has the same shape (line numbers aside), or, with
--scenario, if a search of that family within --budget finds that kind.
Binary search assumes the behaviour changed once between the two ends; the
verdict of every release tried is printed, so a non-monotone history shows.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.search.trace import Trace
from harness.targets.registry import TargetError, entries, entry, parse_server, target_specs
from harness.targets.runner import run


class BisectError(TargetError):
    pass


def releases(server: str) -> list[str]:
    """Every final release of `server`'s distribution on the package index, oldest first."""
    distribution = entry(server).distribution
    if distribution is None:
        raise BisectError(f"{server} has no releases to bisect")
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", distribution],
                          capture_output=True, text=True, timeout=300)
    m = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not m:
        raise BisectError(f"cannot list the releases of {server!r} from the package index: "
                          f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
    out = []
    for v in m.group(1).split(","):
        try:
            if not Version(v.strip()).is_prerelease:
                out.append(v.strip())
        except InvalidVersion:
            continue
    return sorted(out, key=Version)


def shape(signature: str) -> str:
    return re.sub(r":\d+", ":N", signature)


def verdict_of(server: str, version: str, http: str, args: argparse.Namespace,
               trace: Trace | None) -> tuple[bool, str]:
    spec = target_specs(f"{server}=={version}", http)[0]
    if trace is not None:
        own = trace.target or {}
        strict = own.get("version") == version and own.get("http") == http
        result = run(spec, {"op": "replay", "trace": trace.to_json(), "strict": strict},
                     lambda e, i: None)
        want_kind = (trace.verdict or {}).get("kind")
        want_shape = shape((trace.verdict or {}).get("signature", ""))
        hits = [f for f in result["failures"]
                if f["kind"] == want_kind and shape(f["signature"]) == want_shape]
        return bool(hits), hits[0]["signature"] if hits else "pass"
    request = {"op": "explore", "families": [args.scenario], "budget": args.budget,
               "seed": 0, "accept": {"kind": args.kind}, "max_found": 1}
    result = run(spec, request, lambda e, i: None)
    found = result["findings"]
    return bool(found), found[0]["signature"] if found else "pass"


def cmd_bisect(args: argparse.Namespace) -> int:
    if (args.trace is None) == (args.scenario is None):
        raise BisectError("give exactly one of --trace TRACE or --scenario FAMILY")
    trace = Trace.load(args.trace) if args.trace else None
    server, pinned = parse_server(args.server)
    if pinned is not None:
        raise BisectError(f"give --server {server} without a version; --good and --bad "
                          "name the releases")
    protocols = entry(server).protocols
    own = str((trace.target or {}).get("http", "")) if trace else ""
    http = args.http or (own if own in protocols else protocols[0])
    every = releases(server)
    for end in (args.good, args.bad):
        if end not in every:
            raise BisectError(f"{server} {end} is not a published release; see "
                              f"'pip index versions {server}'")
    lo, hi = sorted((args.good, args.bad), key=Version)
    span = [v for v in every if Version(lo) <= Version(v) <= Version(hi)]
    tried: dict[str, tuple[bool, str]] = {}

    def check(version: str) -> bool:
        if version not in tried:
            tried[version] = verdict_of(server, version, http, args, trace)
            fails, why = tried[version]
            print(f"  {server} {version}: {'fails' if fails else 'passes'} ({why})", flush=True)
        return tried[version][0]

    print(f"bisecting {len(span)} releases of {server} from {lo} to {hi} ({http})", flush=True)
    old_fails, new_fails = check(span[0]), check(span[-1])
    if old_fails == new_fails:
        print(f"both ends {'fail' if old_fails else 'pass'}: nothing to bisect")
        return 2
    a, b = 0, len(span) - 1  # span[a] behaves like the old end, span[b] like the new one
    while b - a > 1:
        mid = (a + b) // 2
        if check(span[mid]) == old_fails:
            a = mid
        else:
            b = mid
    change = "fixed" if old_fails else "introduced"
    print(f"first release where the behaviour changed: {server} {span[b]} ({change} there; "
          f"{span[a]} is the last release before)")
    return 0


def add_parser(sub: Any) -> None:
    bi = sub.add_parser("bisect", help="find the release that introduced or fixed a failure")
    bi.add_argument("--server", required=True,
                    help="the server's name (" + ", ".join(
                        n for n, e in entries().items() if e.distribution) + ")")
    bi.add_argument("--good", required=True)
    bi.add_argument("--bad", required=True)
    bi.add_argument("--trace", default=None)
    bi.add_argument("--scenario", default=None, help="a scenario family to re-search")
    bi.add_argument("--kind", default="receive-hang", help="failure kind for --scenario")
    bi.add_argument("--budget", type=float, default=30.0, help="seconds per release, --scenario")
    bi.add_argument("--http", default=None)
    bi.set_defaults(func=cmd_bisect)
