"""The `harness` command: explore, replay, exhaust, report, bisect, survey, serve.

Exit codes: 0 nothing found (replay: the trace passes), 1 a failure was found
(replay: the trace fails), 2 a usage or environment error, always one line
naming the bad value and the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import platform
import queue
import signal
import sys
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.api import trace_target
from harness.errors import HarnessError, HarnessFault, InputError, machine_fault
from harness.http.families import FAMILIES, check_families
from harness.search.claims import Claims
from harness.search.profiles import EXHAUST_RUNS, PROFILES, STRATEGIES, check_budget, profile
from harness.search.trace import Trace
from harness.search.walk_lines import walk_progress
from harness.sim.watchdog import seconds as watchdog_seconds
from harness.targets.envs import check_published, ensure_target_env
from harness.targets.registry import REFERENCE as REFERENCE_SERVER
from harness.targets.registry import (
    TargetSpec,
    chosen_targets,
    examples,
    label_of,
    protocols,
    target_specs,
)
from harness.targets.runner import examples_root, run, terminate_workers
from harness.tools.diagnosis import target_name
from harness.tools.environment import harness_line, installed_beside
from harness.tools.log_lines import HEAD, TAIL, abridged
from harness.tools.outputs import (
    check_output_folder,
    file_name,
    folder_name,
    make_folder,
    take_back,
)
from harness.tools.progress import Progress
from harness.tools.reference_run import ReferenceRun
from harness.tools.report import report_dir, write_report
from harness.tools.summary import Summary

REFERENCE = target_specs(REFERENCE_SERVER)[0]


class UsageError(InputError):
    pass


class Terminated(BaseException):
    """SIGTERM, turned into an exception so the run stops as on SIGINT. A BaseException,
    as KeyboardInterrupt is, so no `except Exception` takes it for a harness fault."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def _say_cut_short(how: str, written: list[Path], more: str = "") -> None:
    """After an interrupt: which reports were written, whole, before it."""
    print(f"harness: {how}; {len(written)} report(s) were written whole before it{more}"
          + "".join(f"\n  {path}/" for path in written), file=sys.stderr)


def _stopped_by(stop: BaseException) -> tuple[str, int]:
    """How a command stopped from outside says so, and its exit status: 143 for SIGTERM
    (Terminated), 130 for SIGINT (KeyboardInterrupt), as a shell reports them."""
    return ("terminated", 143) if isinstance(stop, Terminated) else ("interrupted", 130)


class Writer:
    """Writes each finding's report the moment it arrives, always from the main thread:
    an interrupt between two writes loses nothing written, and one during a write leaves
    nothing half-written (write_report cleans up). A failure comes first as detected
    (not yet shrunk), then shrunk, which replaces it; once per (kind, signature)."""

    def __init__(self, spec: TargetSpec, root: Path, progress: Progress) -> None:
        self.spec, self.root, self.progress = spec, root, progress
        self.written: dict[tuple[str, str], Path] = {}
        self.shrunk: set[tuple[str, str]] = set()
        self.unjudged: Path | None = None  # the trace of the first run not judged

    def keep_unjudged(self, info: dict[str, Any]) -> None:
        """The first run that could not be judged, kept as a trace the moment it is met
        (once, whichever job met it): not a failure, but what the user must look at."""
        if self.unjudged is not None:
            return
        trace = Trace.from_json(info["trace"])
        path = self.root / label_of(info["target"]) / "unjudged-run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        trace.save(path)
        self.unjudged = path
        self.progress.line(f"  a run could not be judged: its step budget ran out while it "
                           f"was still under way ({trace.meta.get('unjudged')}); kept, not "
                           f"counted as a failure\n    -> {path}")

    def __call__(self, finding: dict[str, Any]) -> None:
        key = (str(finding["kind"]), str(finding["signature"]))
        shrunk = bool(finding.get("shrunk", True))
        if key in self.shrunk or (key in self.written and not shrunk):
            return  # another job found it too, or the result repeats an event
        label = label_of(finding["target"])
        replayed = finding.get("replayed") or run(  # (replayed by the worker that found it)
            self.spec, {"op": "replay", "trace": finding["trace"], "strict": True},
            lambda e, i: None)
        path = _write_report(self.root, label, finding, replayed, self.env_info)
        self.written[key] = path
        if shrunk:
            self.shrunk.add(key)
        state = "" if shrunk else " (not shrunk yet: replaced once it is)"
        self.progress.line(f"  {finding['kind']}: {finding['signature']}{state}\n"
                           f"    -> {path}/")

    @functools.cached_property
    def env_info(self) -> dict[str, Any] | None:
        """What the target's cached environment holds, for every report of this target."""
        env = ensure_target_env(self.spec)
        return installed_beside(self.spec.entry) if env is None else asdict(env.info)


def _explore_one(spec: TargetSpec, args: argparse.Namespace, progress: Progress,
                 write: Writer) -> dict[str, Any]:
    def share(j: int) -> int | None:  # job j's part of --max-runs: the parts add up to it
        if args.max_runs is None:
            return None
        runs, jobs = int(args.max_runs), int(args.jobs)
        return runs // jobs + (j < runs % jobs)

    def request(j: int) -> dict[str, Any]:
        return {"op": "explore", "families": args.family or list(FAMILIES),
                "budget": args.budget, "max_runs": share(j),
                "seed": args.seed + 7919 * j, "strategy": args.strategy,
                "profile": args.profile, **({"examples": None} if args.no_examples else {})}

    def on_event(j: int, event: str, info: dict[str, Any]) -> None:
        progress.event(j, event, info)  # first: the JSON summary lists it even if
        if event == "finding":          # an interrupt comes while its report is written
            write(info)
        elif event == "unjudged":
            write.keep_unjudged(info)

    if args.jobs == 1:  # in this (main) thread, where the run's watchdog can work
        results = [run(spec, request(0), functools.partial(on_event, 0), progress.line)]
    else:  # each failure shrunk by the first job to claim it (harness/search/claims.py)
        with _claims_folder() as claims:
            results = _parallel(spec, args.jobs, lambda j: {**request(j), "claims": claims},
                                on_event, progress,
                                Claims(Path(claims)).release if claims else lambda key: None)
    unavailable = results[0].get("unavailable") or {}
    if len(unavailable) == len(set(request(0)["families"])):
        family, why = next(iter(unavailable.items()))
        raise UsageError(f"{spec} cannot run the {family} family: {why}; choose other "
                         "--family values or another release")
    for family, why in unavailable.items():
        progress.line(f"{spec}: the {family} family is left out: {why}")
    for result in results:  # normally all written already, as they were found
        for finding in result["findings"]:
            write({"target": result["target"], **finding})
    distinct = {(f["kind"], f["signature"]): f for r in results for f in r["findings"]}
    return {"runs": sum(r["runs"] for r in results),
            "seconds": max(r["seconds"] for r in results),
            "shrink_seconds": max(r.get("shrink_seconds", 0.0) for r in results),
            "findings": list(distinct.values()),  # two jobs may find the same failure
            "target": results[0]["target"],
            "unjudged": sum(r.get("unjudged", 0) for r in results),
            "unjudged_trace": write.unjudged and str(write.unjudged),
            "unavailable": unavailable}


@contextlib.contextmanager
def _claims_folder() -> Iterator[str | None]:
    """A folder the jobs share for their claims, removed after; none if no temporary
    folder can be made (then every job shrinks what it meets, which costs only time)."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="harness-claims-")
    except OSError:
        yield None
        return
    with folder as path:
        yield path


def _parallel(spec: TargetSpec, jobs: int, request: Callable[[int], dict[str, Any]],
              on_event: Callable[[int, str, dict[str, Any]], None],
              progress: Progress, release: Callable[[tuple[str, str]], None]
              ) -> list[dict[str, Any]]:
    """Jobs in worker processes; their events come back here, to the main thread, so
    findings are written as they arrive. A job that dies is reported at once and the
    others go on; what it was shrinking is released to them."""
    inbox: queue.Queue[tuple[str, int, Any]] = queue.Queue()
    cancelled = threading.Event()

    def job(j: int) -> None:
        try:
            inbox.put(("result", j, run(spec, request(j), lambda e, i: inbox.put(
                ("event", j, (e, i))), progress.line, force_worker=True,
                cancelled=cancelled)))
        except BaseException as exc:
            inbox.put(("died", j, exc))

    for j in range(jobs):
        threading.Thread(target=job, args=(j,), name=f"harness-job-{j}", daemon=True).start()
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    try:
        while len(results) + len(errors) < jobs:
            what, j, payload = inbox.get()
            if what == "event":
                on_event(j, *payload)
            elif what == "result":
                results.append(payload)
            else:
                errors.append(payload)
                first = str(payload).strip().splitlines()[0] if str(payload).strip() else "?"
                for key in progress.stopped(j, first):  # (a killed job could not let go)
                    release(key)
    except BaseException:
        # Stopped here (an interrupt, or a report that could not be written): the jobs
        # end before the caller removes their claims folder, where they still write; a job
        # not yet started starts none.
        cancelled.set()
        terminate_workers()
        raise
    if not results:
        raise errors[0]
    return results


MAX_JOBS = 32


def _check_explore(args: argparse.Namespace) -> None:
    """Every value checked before any search starts: one line naming it and the fix."""
    args.profile = profile(args.profile).name  # --profile, else HARNESS_PROFILE, checked
    no_limit = args.budget == 0 and args.max_runs is not None  # the older spelling
    if args.budget is not None and not no_limit:
        check_budget(args.budget, hint=" (for a search bounded by runs alone, give only "
                                       "--max-runs N)")
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError(f"--max-runs must be at least 1, got {args.max_runs}")
    if args.budget is None:  # --max-runs alone: no time limit, so a seeded run is repeatable
        args.budget = 0.0 if args.max_runs is not None else profile(args.profile).budget
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"--jobs must be from 1 to {MAX_JOBS}, got {args.jobs} (this machine "
                         f"has {os.cpu_count()} cores; one job per core is the most that helps)")
    if args.max_runs is not None:
        args.jobs = min(args.jobs, args.max_runs)  # no job without a run of its own
    check_families(args.family or [])
    reports = Path(args.reports)
    if reports.exists() and not reports.is_dir():
        raise UsageError(f"--reports {args.reports} is a file; name a folder for the reports")
    if args.json is not None and Path(args.json).is_dir():
        raise UsageError(f"--json {args.json} is a folder; name the file to write the "
                         f"summary to, e.g. {args.json}/explore.json")


def cmd_explore(args: argparse.Namespace) -> int:
    _check_explore(args)
    specs, skipped = chosen_targets(args.server, args.http)
    for spec in specs:  # a release the index does not list, refused before any output
        check_published(spec)
    # Only once every value is known good: a refused command creates nothing.
    json_path = None if args.json is None else Path(args.json)
    check_output_folder(Path(args.reports), f"--reports {args.reports}")
    if json_path is not None:
        check_output_folder(json_path.parent, f"--json {args.json}")
        json_path.parent.mkdir(parents=True, exist_ok=True)
    made = make_folder(Path(args.reports))
    examples = examples_root({"examples": None} if args.no_examples else {})
    progress = Progress()
    summary = Summary({"server": args.server, "http": args.http,
                       "families": args.family or list(FAMILIES),
                       "budget": args.budget or None,  # None: bounded by --max-runs alone
                       "max_runs": args.max_runs, "seed": args.seed,
                       "strategy": args.strategy, "jobs": args.jobs,
                       "profile": args.profile, "examples": examples and str(examples),
                       "skipped": skipped})
    progress.listeners.append(summary.event)
    for http, reason in skipped.items():  # --http all took the protocols this release runs
        progress.line(f"skipping {args.server} ({http}): {reason}")
    results = []
    writers: list[Writer] = []
    stage = "the search was"  # what an interrupt cuts short

    def finish(state: str, code: int, error: str | None = None) -> int:
        progress.finish()
        if json_path is not None:
            summary.reports({key: path for w in writers for key, path in w.written.items()})
            summary.write(json_path, state, code, error)
        return code

    try:
        for spec in specs:
            limit = f"{args.budget:g}s" if args.budget else f"{args.max_runs} runs"
            progress.target(str(spec), args.budget or None, args.max_runs)
            progress.line(f"exploring {spec} for {limit} (strategy {args.strategy}, "
                          f"seed {args.seed}, jobs {args.jobs}, profile {args.profile}, "
                          f"examples {examples or 'off'})")
            writers.append(Writer(spec, Path(args.reports), progress))
            summary.begin(spec)
            # Here, in the main thread, where an interrupt stops the installer and cleans up.
            stage = "the install was"
            ensure_target_env(spec, lambda s: progress.line(f"installing: {s}"))
            stage = "the search was"
            summary.installed()
            result = _explore_one(spec, args, progress, writers[-1])
            summary.end(result)
            results.append((label_of(result["target"]), result))
    except (KeyboardInterrupt, Terminated) as stop:
        terminate_workers()
        what, code = _stopped_by(stop)
        finish(what, code)
        unshrunk = sum(len(w.written.keys() - w.shrunk) for w in writers)
        take_back(made)  # the folders it made for reports, where none was written
        _say_cut_short(f"{what}: {stage} cut short",
                       [path for w in writers for path in w.written.values()],
                       f", {unshrunk} of them not shrunk" if unshrunk else "")
        return code
    except HarnessError as exc:
        finish("error", exc.exit_code, str(exc))
        take_back(made)
        raise
    except Exception as exc:  # a harness bug (main() prints it with its stack), or no room
        finish("error", 2, str(machine_fault(exc) or f"{type(exc).__name__}: {exc}"))
        take_back(made)
        raise
    code = finish("completed", 1 if any(w.written for w in writers) else 0)
    _print_summary(results)
    return code


def _write_report(root: Path, label: str, finding: dict[str, Any], replayed: dict[str, Any],
                  env: dict[str, Any] | None) -> Path:
    """The report folder of one finding, with what the reference server does on its trace."""
    trace = Trace.from_json(finding["trace"])
    verdict: dict[str, Any] | None = None
    error = None
    if (trace.target or {}).get("server") == REFERENCE.server:
        error = ("this failure is the reference server's own, which breaks its promise to "
                 "pass every scenario: please report it against the harness")
    else:
        try:
            verdict = run(REFERENCE, {"op": "replay", "trace": finding["trace"],
                                      "strict": False}, lambda e, i: None)
        except HarnessError as exc:
            error = str(exc)
    # The requests the failure is about: the ones it names, and any receive() left waiting.
    same = [f for f in replayed["failures"] if f["kind"] == finding["kind"]]
    named = {f.get("request", "") for f in same}
    focus = sorted((named - {""}) | {w["request"] for w in replayed["waiting"]})
    # The request this very failure names, for the diagnosis.
    own = next((f for f in same if f["signature"] == finding["signature"]), None)
    if own is not None:
        finding = {**finding, "request": own.get("request", "")}
    # What else the same run fails with: each a report of its own, if the search met it.
    also = [f"{f['kind']}: {f['signature']}" for f in replayed["failures"]
            if (f["kind"], f["signature"]) != (finding["kind"], finding["signature"])]
    finding = {**finding, "also": also}
    reference = ReferenceRun(verdict, error, focus, installed_beside(REFERENCE.entry))
    return write_report(root, label, trace, finding, replayed["log"], env, reference,
                        replayed.get("waiting"))


def reports_holding(path: Path, trace: Trace) -> Path:
    """The reports folder whose report `path` is the trace.json of (REPORTS/LABEL/KIND-ID/
    trace.json, as written): rewriting a report rewrites it where it is. Any other trace's
    report goes to ./reports."""
    verdict, target = trace.verdict or {}, trace.target or {}
    folder = path.resolve().parent
    own = report_dir(folder.parent.parent, label_of(target), str(verdict.get("kind")),
                     str(verdict.get("signature")))
    return Path(os.path.relpath(folder.parent.parent)) \
        if path.name == "trace.json" and own == folder else Path("reports")


def cmd_report(args: argparse.Namespace) -> int:
    trace = Trace.load(args.trace)
    if trace.verdict is None:
        raise UsageError(f"{args.trace} records no failure (a trace saved from a passing run); "
                         "report a trace that explore or pytest scenarios/ saved")
    if args.reports is None:
        args.reports = str(reports_holding(Path(args.trace), trace))
    check_output_folder(Path(args.reports), f"--reports {args.reports}")
    spec, strict = trace_target(trace)
    replayed = run(spec, {"op": "replay", "trace": trace.to_json(), "strict": strict},
                   lambda e, i: None)
    own, ran = trace.target or {}, replayed["target"]
    if [own.get(k) for k in ("server", "version", "http")] != \
            [ran.get(k) for k in ("server", "version", "http")]:
        raise UsageError(f"{args.trace} was recorded on {target_name(own)}, which is not a "
                         f"target here: it replays on {target_name(ran)}, and a report is of "
                         "the trace's own target; `harness replay` it to see what it does "
                         "there")
    same = [f for f in replayed["failures"] if f["kind"] == trace.verdict["kind"]]
    if not same:
        now = sorted({f["kind"] for f in replayed["failures"]})
        raise UsageError(
            f"{args.trace} no longer fails on {spec} with its recorded {trace.verdict['kind']}"
            + (f" (it fails with {', '.join(now)} instead: `harness replay` it to see)" if now
               else " (it passes)") + "; there is nothing to report")
    # What the run shows now, not what the file says: a trace's verdict may be edited.
    [now, *_] = [f for f in same if f["signature"] == trace.verdict["signature"]] or same
    if now["signature"] != trace.verdict["signature"]:
        print(f"harness: {args.trace} recorded {trace.verdict['kind']}: "
              f"{trace.verdict['signature']}, and fails now with {now['signature']}: the "
              "report is of what it does now", file=sys.stderr)
        trace = dataclasses.replace(trace, verdict={
            k: now[k] for k in ("kind", "signature", "message")})
    finding = {**now, "trace": trace.to_json(), "runs_to_find": trace.meta.get("runs_to_find"),
               "source": trace.meta.get("stored", "search"),
               "shrunk": trace.meta.get("shrunk", True)}
    label = label_of(replayed["target"])
    env = replayed.get("env") or (installed_beside(spec.entry) if spec.in_process() else None)
    path = _write_report(Path(args.reports), label, finding, replayed, env)
    print(f"{finding['kind']}: {finding['signature']}\n  -> {path}/")
    return 0  # the report was written: the command did what it was asked


def _print_summary(summary: list[tuple[str, dict[str, Any]]]) -> None:
    """One line per target. Searching and shrinking are timed apart: the budget bounds
    the search; each failure's shrinking is bounded by the profile's shrink_seconds."""
    print(f"\n{'target':32} {'runs':>8} {'runs/s':>8} {'search s':>9} {'shrink s':>9}  "
          "failures by kind")
    for label, result in summary:
        kinds = Counter(f["kind"] for f in result["findings"])
        rate = result["runs"] / result["seconds"] if result["seconds"] else 0.0
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
        stored = sum(1 for f in result["findings"] if f.get("source", "search") != "search")
        if stored:
            by_kind += f" ({stored} retried from the examples store)"
        print(f"{label:32} {result['runs']:>8} {rate:>8.0f} {result['seconds']:>9.1f} "
              f"{result.get('shrink_seconds', 0.0):>9.1f}  {by_kind}")
    for label, result in summary:  # not failures, and not to be missed
        if result.get("unjudged"):
            print(f"{label}: {result['unjudged']} of {result['runs']} runs could not be "
                  "judged: their step budget ran out while bytes still moved or time still "
                  f"passed. The first is kept in {result['unjudged_trace']}: `harness "
                  "replay` shows its last events, what kept the loop busy. Raise its "
                  "settings.step_budget and replay it: if it settles then, the harness drew "
                  "a scenario too long for its budget (please report it against the "
                  "harness); if it never does, the server keeps the loop busy for ever (a "
                  "response that never ends, timers under a millisecond).")


def cmd_replay(args: argparse.Namespace) -> int:
    from harness.api import replay_trace_file

    verdict = replay_trace_file(args.trace, args.server, args.http, args.lenient)
    for line in verdict["log"] if args.full else abridged(verdict["log"]):
        print(line)
    target = verdict["target"]
    source = f" from {target['source']}" if target.get("source") else ""
    print(f"\nreplayed on {target['server']} {target['version']}{source} ({target['http']})"
          + (f"; diverged from the trace at decision {verdict['diverged_at']}"
             if verdict.get("diverged_at") is not None else ""))
    if not verdict["failures"]:
        print("verdict: pass")
        return 0
    for f in verdict["failures"]:
        print(f"verdict: {f['kind']}: {f['signature']}\n  {f['message']}")
    return 1


def cmd_exhaust(args: argparse.Namespace) -> int:
    """Every ordering of a trace's scenario with at most --deviations deviations from the
    ordinary run (harness/search/exhaustive.py): does a fix hold for all of them?"""
    if args.deviations < 0:
        raise UsageError(f"--deviations must be 0 or more, got {args.deviations}")
    if args.max_runs < 1:
        raise UsageError(f"--max-runs must be 1 or more, got {args.max_runs}")
    trace = Trace.load(args.trace)
    check_output_folder(Path(args.reports), f"--reports {args.reports}")
    spec, _ = trace_target(trace, args.server, args.http)
    check_published(spec)
    progress = Progress()
    writer = Writer(spec, Path(args.reports), progress)
    walk = walk_progress(progress.line)

    def on_event(event: str, info: dict[str, Any]) -> None:
        if event == "finding":
            writer(info)
        else:
            walk(event, info)

    progress.line(f"running every ordering of the scenario of {args.trace} with at most "
                  f"{args.deviations} deviation{'' if args.deviations == 1 else 's'} on "
                  f"{spec} (at most {args.max_runs:,} run{'' if args.max_runs == 1 else 's'})")
    made = make_folder(Path(args.reports))
    try:
        ensure_target_env(spec, lambda line: progress.line(f"installing: {line}"))
        result = run(spec, {"op": "exhaust", "trace": trace.to_json(),
                            "deviations": args.deviations, "max_runs": args.max_runs},
                     on_event, progress.line)
    except (KeyboardInterrupt, Terminated) as stop:
        terminate_workers()
        what, code = _stopped_by(stop)
        take_back(made)  # the folders it made for reports, where none was written
        _say_cut_short(f"{what}: not every ordering ran", list(writer.written.values()))
        return code
    except Exception:
        take_back(made)
        raise
    finally:
        progress.finish()
    for finding in result["findings"]:  # normally all written already, as they were met
        writer(finding)
    print(result["summary"])
    if not result["findings"]:
        print("verdict: pass" if result["complete"] else
              f"verdict: no failure in the {result['runs']:,} orderings that ran (for the "
              "rest, raise --max-runs)")
        return 0
    for f in result["findings"]:
        print(f"verdict: {f['kind']}: {f['signature']} ({f['deviations']} deviation"
              f"{'' if f['deviations'] == 1 else 's'}, ordering {f['runs_to_find']:,})\n"
              f"  -> {writer.written[(f['kind'], f['signature'])]}/")
    return 1


def cmd_survey(args: argparse.Namespace) -> int:
    """harness/tools/survey.py, with `explore` itself as the explorer of each release."""
    from harness.tools.survey import Stopped, Survey
    from harness.tools.survey_bisect import replay_verdict

    survey = Survey(args, explore_command, replay_verdict)
    try:
        code = survey.run()
    except (KeyboardInterrupt, Terminated, Stopped) as stop:
        terminate_workers()
        code = stop.code if isinstance(stop, Stopped) else \
            143 if isinstance(stop, Terminated) else 130
        what = "terminated" if code == 143 else "interrupted"
        survey.write(what, code)
        print(f"harness: {what}: {len(survey.records)} release(s) done are kept in "
              f"{survey.store.folder}/ and in {survey.markdown_path}; the same command goes "
              "on from there", file=sys.stderr)
        return code
    sys.stdout.write(survey.markdown_path.read_text())
    return code


def explore_command(argv: list[str]) -> int:
    """`harness explore ARGV` within this process (the survey's explorer): its usage and
    environment errors are its exit code and summary, as on the command line; its table
    goes to stderr, beside its progress."""
    args = build_parser().parse_args(["explore", *argv])
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return cmd_explore(args)
        except HarnessError as exc:
            print(f"harness: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except Exception as exc:  # a harness bug on one release: said, and the survey goes on
            print(f"harness: error: {type(exc).__name__}: {exc} (a bug in the harness "
                  f"itself: please report it)\n{traceback.format_exc()}", file=sys.stderr)
            return 2


TRACE_HELP = "a trace.json: a report's, or one the pytest plugin kept"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description=__doc__.splitlines()[0],
        epilog="Exit codes: 1 the target has a failure (explore and exhaust found one; replay: "
        "the trace fails; survey: one no known bug explains), 0 it has none (report, bisect, "
        "serve: done), 2 a usage or environment error, or a fault of the harness itself "
        "(which says so), 130 or 143 interrupted (SIGINT, SIGTERM), every report found until "
        "then written whole.")
    # What a bug report against the harness needs, worded as its reports word it.
    parser.add_argument("--version", action="version",
                        version=harness_line(platform.python_version()).removeprefix(
                            "harness: "),
                        help="print the harness's version and Python, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explore", help="search orderings of one target for failures")
    ex.add_argument("--server", required=True,
                    help=f"NAME, NAME==VERSION (e.g. {' or '.join(examples())}), a working "
                         "copy's path, or git+REPO@REV")
    ex.add_argument("--http", default="default",
                    help=f"a protocol implementation ({', '.join(protocols())}), all of the "
                         "server's, or (default) its first")
    ex.add_argument("--family", action="append",
                    help=f"a scenario family ({', '.join(FAMILIES)}); repeatable (default: all)")
    ex.add_argument("--budget", type=float, default=None,
                    help="seconds of search per target, shrinking not counted (default: the "
                         "profile's, or no limit when --max-runs is given alone)")
    ex.add_argument("--max-runs", type=int, default=None, metavar="N",
                    help="stop each target's search after N runs, shared among the "
                         "--jobs (with --budget, whichever comes first)")
    ex.add_argument("--seed", type=int, default=0,
                    help="the search's seed (default 0): with --max-runs, --jobs and "
                         "--no-examples the same, and no time budget reached, a search "
                         "makes the same runs")
    ex.add_argument("--strategy", choices=STRATEGIES, default="hypothesis",
                    help="hypothesis (default): every decision drawn through Hypothesis, 1 in "
                         "8 a deviation; random: each decision a deviation with "
                         "probability 0.2, from a seed per run; pct: 3 deviations "
                         "at random places among the first 200 decisions")
    ex.add_argument("--jobs", type=int, default=1,
                    help=f"parallel worker processes (default 1, at most {MAX_JOBS})")
    ex.add_argument("--reports", default="reports", type=folder_name,
                    help="where reports are written (default: reports)")
    ex.add_argument("--profile", default=None,
                    help="search profile: " + "; ".join(f"{p.name}: {p.about}"
                                                       for p in PROFILES.values())
                         + " (default: HARNESS_PROFILE, else default)")
    ex.add_argument("--no-examples", action="store_true",
                    help="neither retry nor store earlier failures (also HARNESS_EXAMPLES=off)")
    ex.add_argument("--json", default=None, metavar="PATH", type=file_name,
                    help="also write a machine-readable summary to PATH")
    ex.set_defaults(func=cmd_explore)

    rp = sub.add_parser("replay", help="replay a trace and print its verdict and timeline")
    rp.add_argument("trace", help=TRACE_HELP)
    rp.add_argument("--server", default=None,
                    help="another release, working copy or git+REPO@REV to replay it on "
                         "(default: the trace's)")
    rp.add_argument("--http", default=None,
                    help="the protocol implementation to replay on (default: the trace's, "
                         "where the server has it, else the server's first)")
    rp.add_argument("--lenient", action="store_true",
                    help="on the trace's own target too, go on where the run asks other "
                         "questions than the trace recorded (default: stop with an error)")
    rp.add_argument("--full", action="store_true",
                    help="print every event of the run (default: repeats are folded into "
                         f"a line, and of a log still longer than {HEAD + TAIL + 1} lines "
                         f"its first {HEAD} and last {TAIL} are shown)")
    rp.set_defaults(func=cmd_replay)

    xh = sub.add_parser("exhaust", help="run every ordering of a trace's scenario with at "
                                        "most K deviations from the ordinary run")
    xh.add_argument("trace", help=TRACE_HELP)
    xh.add_argument("--deviations", type=int, default=1, metavar="K",
                    help="the most deviations an ordering may have (default 1; the count "
                         "grows about a hundredfold with each)")
    xh.add_argument("--max-runs", type=int, default=EXHAUST_RUNS, metavar="N",
                    help=f"stop after N orderings (default {EXHAUST_RUNS:,}), saying how far "
                         "the walk got")
    xh.add_argument("--server", default=None,
                    help="another release, working copy or git+REPO@REV to run it on "
                         "(default: the trace's)")
    xh.add_argument("--http", default=None,
                    help="the protocol implementation (default: the trace's, where the "
                         "server has it, else the server's first)")
    xh.add_argument("--reports", default="reports", type=folder_name,
                    help="where reports are written (default: reports)")
    xh.set_defaults(func=cmd_exhaust)

    rr = sub.add_parser("report", help="(re)write the report folder of a failing trace")
    rr.add_argument("trace", help=TRACE_HELP)
    rr.add_argument("--reports", default=None, type=folder_name,
                    help="where reports are written (default: where the trace's own report "
                         "folder is, for a report's trace.json; else reports)")
    rr.set_defaults(func=cmd_report)

    from harness.tools.bisect import add_parser as add_bisect
    from harness.tools.survey import add_parser as add_survey
    from servers.reference.main import add_parser as add_serve

    add_bisect(sub)
    add_serve(sub)
    add_survey(sub, cmd_survey)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        watchdog_seconds()  # a bad HARNESS_WATCHDOG_SECONDS refused before any work, not mid-run
        return int(args.func(args))
    except HarnessError as exc:
        blame = " (a bug in the harness itself: please report it)" \
            if isinstance(exc, HarnessFault) else ""
        print(f"harness: error: {exc}{blame}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # not raised on purpose: the harness's own client, oracles...
        terminate_workers()
        if (fault := machine_fault(exc)) is not None:  # a full disk, a permission: the machine's
            print(f"harness: error: {fault}", file=sys.stderr)
            return fault.exit_code
        print(f"harness: error: {type(exc).__name__}: {exc} (a bug in the harness itself: "
              f"please report it)\n{traceback.format_exc()}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as stop:
        terminate_workers()
        print("harness: interrupted; no report was left half-written", file=sys.stderr)
        return _stopped_by(stop)[1]
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
