"""`harness survey`: explore every release family of a server with one fixed budget.

    harness survey --server uvicorn --per minor --since 0.3 --http all --budget 15

Lists the server's releases from the package index (as bisect does), leaves out
those its registry entry says cannot run here, keeps the newest release of each
minor version (`--per minor`; `--per release` keeps all), and explores each on
each protocol with `harness explore` itself: a cold search (no examples store)
of `--budget` seconds, its reports under `--reports`. Each finding is judged
against the registry's known bugs (judgement.judge); with `--bisect`, each
distinct failure no known bug explains is bisected over releases
(survey_bisect.py) for the release that introduced it and the one that fixed it;
`--bisect-known` bisects the known ones too (the registry names a fix, not where
a bug began, and some "new" bugs have no fix listed at all).

Long runs lose nothing: each release's result is kept the moment its explore
ends, and the table and JSON are rewritten then; a re-run with the same settings
skips what is done (survey_results.py). Exit 1 if any failure is unexplained, 2
on bad input or if some release could not be explored, 0 otherwise; 130/143 on
SIGINT/SIGTERM (after writing what was done).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.errors import InputError
from harness.http.families import FAMILIES, check_families
from harness.search.profiles import STRATEGIES, check_budget, profile
from harness.targets.registry import TargetEntry, entry
from harness.tools import bisect
from harness.tools.outputs import check_output_folder, file_name, folder_name
from harness.tools.survey_bisect import Bisector, Verdict
from harness.tools.survey_results import (
    Distinct,
    RecordStore,
    code_digest,
    distinct_failures,
    markdown,
    short_name,
    summary_json,
    write_outputs,
)

# An explore command line (without "explore") -> its exit code; it writes its --json.
Explorer = Callable[[list[str]], int]
PER = ("minor", "release")


class SurveyError(InputError):
    pass


class Stopped(Exception):
    """An explore was interrupted (it returned 130 or 143): the survey stops there."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def list_releases(server: str) -> list[str]:
    """Every final release on the package index, oldest first (bisect's listing)."""
    return bisect.releases(server)


def choose(releases: list[str], target: TargetEntry, per: str, since: str | None,
           until: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(the releases to explore, oldest first; (release, why) for those left out because
    the registry cannot run them). `per` "minor": the newest of each minor version;
    `since`/`until`: the oldest and newest release to consider."""
    floor = Version(since) if since else None
    ceiling = Version(until) if until else None
    runnable, skipped = [], []
    for v in sorted(releases, key=Version):
        if (floor is not None and Version(v) < floor) or (
                ceiling is not None and Version(v) > ceiling):
            continue
        reason = target.unrunnable_reason(v)
        if reason is None and target.oldest is not None and Version(v) < Version(target.oldest):
            reason = f"older than the oldest release the harness runs ({target.oldest})"
        if reason is not None:
            skipped.append((v, reason))
        else:
            runnable.append(v)
    if per == "release":
        return runnable, skipped
    newest: dict[tuple[int, int], str] = {}
    for v in runnable:  # oldest first, so the last one of each minor stays
        release = Version(v).release
        newest[(release[0], release[1] if len(release) > 1 else 0)] = v
    return sorted(newest.values(), key=Version), skipped


def runnable_releases(releases: list[str], target: TargetEntry) -> list[str]:
    """All releases bisect may try: every one the registry can run."""
    return choose(releases, target, "release", None)[0]


def protocols_of(target: TargetEntry, version: str, http: str) -> list[str]:
    """The protocols to explore on `version`: its own, as explore's --http picks them."""
    own = list(target.modules_for(version))
    if http == "all":
        return own
    if http == "default":
        return own[:1]
    return [http] if http in own else []


def check(args: Any) -> TargetEntry:
    """Every value checked before anything runs: one line naming it and the fix."""
    name, _, pinned = args.server.partition("==")
    if pinned:
        raise SurveyError(f"--server {args.server}: a survey explores many releases; give "
                          f"--server {name} and bound them with --since and --until")
    target = entry(args.server)  # an unknown server is a TargetError naming the known ones
    if target.distribution is None:
        raise SurveyError(f"--server {args.server}: it has no releases of its own to survey; "
                          "name a server from the package index")
    for option, value in (("--since", args.since), ("--until", args.until)):
        if value is not None:
            try:
                Version(value)
            except InvalidVersion:
                raise SurveyError(f"{option} {value!r} is not a version; write a release "
                                  "number such as 0.3 or 0.11.3") from None
    if args.http not in ("all", "default", *target.protocols):
        raise SurveyError(f"--http {args.http!r}: {args.server} has no such HTTP "
                          f"implementation; use one of {', '.join(target.protocols)}, all "
                          "or default")
    check_budget(args.budget)
    if args.max_runs is not None and args.max_runs < 1:
        raise SurveyError(f"--max-runs must be at least 1, got {args.max_runs}")
    check_families(args.family or [])
    args.profile = profile(args.profile).name  # --profile, else HARNESS_PROFILE, checked
    if Path(args.reports).exists() and not Path(args.reports).is_dir():
        raise SurveyError(f"--reports {args.reports} is a file; name a folder")
    for option, value in (("--json", args.json), ("--markdown", args.markdown)):
        if value is not None and Path(value).is_dir():
            raise SurveyError(f"{option} {value} is a folder; name the file to write")
    json_path, markdown_path = outputs(args)
    if json_path.resolve() == markdown_path.resolve():
        raise SurveyError(f"--json and --markdown both name {json_path}; give each its own "
                          "file (one would overwrite the other)")
    return target


def outputs(args: Any) -> tuple[Path, Path]:
    """Where the survey's JSON and Markdown go: --json and --markdown, else in --reports."""
    reports = Path(args.reports)
    return (Path(args.json or reports / "survey.json"),
            Path(args.markdown or reports / "survey.md"))


class Survey:
    def __init__(self, args: Any, explorer: Explorer, verdict: Callable[[float], Verdict],
                 log: Callable[[str], None] = lambda s: print(s, file=sys.stderr,
                                                               flush=True)) -> None:
        self.args, self.explorer, self.log = args, explorer, log
        self.target = check(args)
        self.verdict = verdict(args.budget)
        reports = Path(args.reports)
        self.json_path, self.markdown_path = outputs(args)
        self.settings = {"server": args.server, "budget": args.budget,
                         "max_runs": args.max_runs, "seed": args.seed,
                         "strategy": args.strategy, "profile": args.profile,
                         "families": args.family or list(FAMILIES),
                         "code": code_digest(self.target)}
        self.command = {"server": args.server, "per": args.per, "since": args.since,
                        "until": args.until,
                        "http": args.http, "budget": args.budget, "max_runs": args.max_runs,
                        "seed": args.seed, "strategy": args.strategy,
                        "profile": args.profile, "families": self.settings["families"],
                        "bisect": args.bisect, "bisect_known": args.bisect_known,
                        "reports": str(reports.resolve())}
        self.store = RecordStore(reports / "survey-results", self.settings)
        self.records: list[dict[str, Any]] = []
        self.failures: list[Distinct] = []
        self.skipped: list[tuple[str, str]] = []
        self.bisected: dict[str, dict[str, Any]] = {}  # distinct failure id -> answer

    # -- the run --------------------------------------------------------------------------
    def run(self) -> int:
        args = self.args
        every = list_releases(args.server)
        chosen, self.skipped = choose(every, self.target, args.per, args.since, args.until)
        if not chosen:
            span = f"{every[0]} to {every[-1]}" if every else "none"
            raise SurveyError(f"no runnable release of {args.server} from "
                              f"{args.since or 'the first'} to {args.until or 'the newest'}; "
                              f"the index has {span}")
        check_output_folder(Path(args.reports), f"--reports {args.reports}")
        for option, path in (("--json", self.json_path), ("--markdown", self.markdown_path)):
            check_output_folder(path.parent, f"{option} {path}")
        for path in (self.json_path, self.markdown_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        todo = [(v, h) for v in chosen for h in protocols_of(self.target, v, args.http)]
        self.log(f"surveying {len(chosen)} release(s) of {args.server} ({chosen[0]} to "
                 f"{chosen[-1]}, per {args.per}), {len(todo)} target(s), "
                 f"{self._limit()} each")
        for i, (version, http) in enumerate(todo, 1):
            where = f"[{i}/{len(todo)}] {args.server} {version} ({http})"
            record = self.store.get(args.server, version, http)
            if record is not None:
                self.records.append(record)
                self.log(f"{where}: done earlier with the same settings, kept")
                continue
            self.log(f"{where}: exploring for {self._limit()}")
            record = self._explore(version, http)
            if record["state"] == "done":  # an error (an install that failed) is retried
                self.store.put(record)     # by the next run
            self.records.append(record)
            self.write("running", None)
            self.log(f"{where}: {self._told(record)}")
        if args.bisect or args.bisect_known:
            self._bisect_all(every)
        code = self.exit_code()
        self.write("completed", code)
        self.log(f"wrote {self.markdown_path} and {self.json_path}")
        return code

    def _limit(self) -> str:
        if self.args.max_runs is not None:
            return f"{self.args.max_runs} runs or {self.args.budget:g}s"
        return f"{self.args.budget:g}s"

    def _explore(self, version: str, http: str) -> dict[str, Any]:
        args = self.args
        summary = self.store.side_file(f".explore-{version}-{http}.json")
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.unlink(missing_ok=True)
        argv = ["--server", f"{args.server}=={version}", "--http", http,
                "--budget", repr(args.budget), "--seed", str(args.seed),
                "--strategy", args.strategy, "--reports", args.reports, "--no-examples",
                "--json", str(summary)]
        argv += ["--max-runs", str(args.max_runs)] if args.max_runs is not None else []
        argv += ["--profile", args.profile]
        for family in args.family or []:
            argv += ["--family", family]
        code = self.explorer(argv)
        if code in (130, 143):
            raise Stopped(code)
        base = {"server": args.server, "version": version, "http": http,
                "explore_exit_code": code}
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            return {**base, "state": "error", "failures": [],
                    "error": f"explore exited {code} without a summary"}
        finally:
            summary.unlink(missing_ok=True)
        if data.get("state") != "completed" or not data.get("targets"):
            return {**base, "state": "error", "failures": [],
                    "error": data.get("error") or f"explore ended {data.get('state')}"}
        [target] = data["targets"]
        failures = [{"kind": f["kind"], "signature": f["signature"], "message": f["message"],
                     "report": f["report"], "runs_to_find": f["runs_to_find"],
                     "trace": str(Path(f["report"], "trace.json")) if f["report"] else None}
                    for f in target["failures"]]
        return {**base, "state": "done", "error": None, "runs": target["runs"],
                "seconds_searching": target["seconds_searching"],
                "seconds_shrinking": target["seconds_shrinking"], "failures": failures}

    def _told(self, record: dict[str, Any]) -> str:
        if record["state"] == "error":
            return f"not explored: {record['error']}"
        self.failures = distinct_failures(self.target, self.records)
        by_id = {d.id: d for d in self.failures}
        found = [by_id[f["id"]] for f in record["failures"]]
        known = sorted({short_name(k["name"]) for d in found for k in d.known})
        odd = [d.id for d in found if d.unexplained]
        return (f"{record['runs']} runs in {record['seconds_searching']:.1f}s; "
                f"{len(found)} failure(s): {len(found) - len(odd)} known"
                + (f" ({', '.join(known)})" if known else "")
                + f", {len(odd)} unexplained" + (f" ({', '.join(odd)})" if odd else ""))

    def _bisect_all(self, every: list[str]) -> None:
        self.failures = distinct_failures(self.target, self.records)
        odd = [d for d in self.failures if d.unexplained or self.args.bisect_known]
        if not odd:
            return
        which = "" if self.args.bisect_known else " unexplained"
        self.log(f"bisecting {len(odd)}{which} failure(s)")
        bisector = Bisector(self.args.server, runnable_releases(every, self.target),
                            self.verdict, self.log, self.store.folder, self.settings)
        for d in odd:
            surveyed = sorted((r["version"] for r in self.records
                               if r["state"] == "done" and r["http"] == d.http), key=Version)
            self.log(f"{d.id} ({d.http}) {d.kind}: {d.signature}; found on "
                     f"{', '.join(d.found_on)}")
            self.bisected[d.id] = bisector(d, surveyed)
            self.write("running", None)
            answer = self.bisected[d.id]
            self.log(f"{d.id}: introduced: {answer['introduced_text']}; fixed: "
                     f"{answer['fixed_text']}")

    # -- results --------------------------------------------------------------------------
    def exit_code(self) -> int:
        failures = distinct_failures(self.target, self.records)
        if any(d.unexplained for d in failures):
            return 1
        return 2 if any(r["state"] == "error" for r in self.records) else 0

    def write(self, state: str, code: int | None) -> None:
        self.failures = distinct_failures(self.target, self.records)
        for d in self.failures:
            d.bisect = self.bisected.get(d.id)
        a = self.args
        which = "newest release of each minor version" if a.per == "minor" else "every release"
        title = (f"Survey of {a.server}: {which}" + (f" from {a.since}" if a.since else "")
                 + (f" to {a.until}" if a.until else "")
                 + f", {self._limit()} of search per protocol, seed {a.seed}")
        write_outputs(self.json_path, self.markdown_path,
                      summary_json(self.command, state, code, self.records, self.failures,
                                   self.skipped),
                      markdown(title, self.records, self.failures, self.skipped, state))


def add_parser(sub: Any, func: Callable[[Any], int]) -> None:
    sv = sub.add_parser("survey", help="explore every release family of a server with one "
                                       "budget, judge and bisect what is found")
    sv.add_argument("--server", required=True, help="a server with releases on the index")
    sv.add_argument("--per", choices=PER, default="minor",
                    help="minor: the newest release of each minor version (default); "
                         "release: every release")
    sv.add_argument("--since", default=None, metavar="VERSION",
                    help="the oldest release to explore (default: every runnable one)")
    sv.add_argument("--until", default=None, metavar="VERSION",
                    help="the newest release to explore (default: the newest)")
    sv.add_argument("--http", default="all",
                    help="a protocol implementation, all (default) or default (the first)")
    sv.add_argument("--budget", type=float, default=15.0,
                    help="seconds of search per release and protocol (default 15)")
    sv.add_argument("--max-runs", type=int, default=None, metavar="N",
                    help="also stop each search after N runs")
    sv.add_argument("--seed", type=int, default=0,
                    help="every search's seed (default 0)")
    sv.add_argument("--strategy", choices=STRATEGIES, default="hypothesis",
                    help="how the searches draw decisions (see harness explore --help)")
    sv.add_argument("--family", action="append", help="scenario family (default: all)")
    sv.add_argument("--profile", default=None, help="the explores' search profile")
    sv.add_argument("--bisect", action="store_true",
                    help="bisect each unexplained failure for the releases that introduced "
                         "and fixed it")
    sv.add_argument("--bisect-known", action="store_true",
                    help="bisect the failures known bugs explain too")
    sv.add_argument("--reports", default="reports/survey", type=folder_name,
                    help="where reports and the survey's per-release results go")
    sv.add_argument("--json", default=None, metavar="PATH", type=file_name,
                    help="the survey as JSON (default: REPORTS/survey.json)")
    sv.add_argument("--markdown", default=None, metavar="PATH", type=file_name,
                    help="the table as Markdown (default: REPORTS/survey.md)")
    sv.set_defaults(func=func)
