"""Race runs for the pytest plugin: a scenario family searched, or a stored trace
replayed or its scenario run in every nearby ordering, on one target, judged and put
in words a test report can show.

Nothing here knows pytest (harness/tools/pytest_plugin.py is the glue): each run
returns an `Outcome`, a failure message or the known bugs that explain what was
found. Every failure message ends with a replay command whose trace file exists
and whose path works from the project's root.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.http.families import check_families
from harness.search.profiles import EXHAUST_RUNS, check_budget
from harness.search.trace import Trace
from harness.search.walk_lines import LINE_EVERY, walk_progress
from harness.targets.registry import TargetSpec, target_specs
from harness.targets.runner import run
from harness.tools.judgement import at_or_after, judge
from harness.tools.report import report_id

# Under the project's root: where each unexplained finding's trace is kept for replay.
FAILURES = Path(".harness-cache") / "race-failures"


@dataclass(frozen=True)
class RaceTarget:
    server: str  # the spec as the user wrote it, for replay commands
    spec: TargetSpec

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass(frozen=True)
class Outcome:
    failure: str | None = None  # why the test fails
    explained_by: tuple[str, ...] = ()  # else: the known bugs it found (an expected failure)
    unavailable: str | None = None  # the target cannot run the family at all: why
    # What was not checked, said as a warning: a run limit cut the check short, or
    # runs of the search could not be judged (their step budget ran out).
    unchecked: str | None = None


def resolve_targets(servers: Sequence[str], http: str) -> list[RaceTarget]:
    """Every target the specs name, in each protocol implementation `http` picks
    (h11, httptools, ... or all), once each."""
    out: dict[str, RaceTarget] = {}
    for server in servers:
        for spec in target_specs(server, http):
            out.setdefault(spec.label, RaceTarget(server, spec))
    return list(out.values())


def check_options(families: Sequence[str], budget: float,
                  names: tuple[str, str] = ("--race-family", "--race-budget")) -> None:
    """Refuse an unknown family or a budget that is not a positive number of seconds;
    `names`: what the user called the family and the budget."""
    check_families(families, names[0])
    check_budget(budget, names[1])


def shown(path: Path, root: Path) -> str:
    """`path` as a replay command should print it: from the root if it is under it."""
    path = path.resolve()
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) \
        else str(path)


def replay_command(target: RaceTarget, trace: str, root: Path) -> str:
    """The command that replays `trace` (a path as `shown` prints it) on the target, from
    the project's root: a working copy is named by its path from there too (the user may
    have named it from a folder below), a commit by its hash (a branch moves on)."""
    server, source = target.server, target.spec.source
    if source is not None and source.startswith("git+"):
        server = source
    elif source is not None:
        server = shown(Path(source), root)
        server = server if server.startswith((".", "/")) else f"./{server}"
    return (f"harness replay {shlex.quote(trace)} --server {shlex.quote(server)} "
            f"--http {target.spec.http}")


def search_lines(say: Callable[[str], None], limit: str,
                 clock: Callable[[], float] = time.monotonic,
                 every: float = LINE_EVERY) -> Callable[[str, dict[str, Any]], None]:
    """A family search's progress events as lines for `say`: each failure as it is met
    and once shrunk, and the runs so far at most every `every` seconds (`limit`: the
    budget or run limit, as the line ends with it). A race item searches for its whole
    budget, a minute or more, and pytest shows nothing of it until it ends."""
    last = [clock()]

    def on_event(event: str, info: dict[str, Any]) -> None:
        met_at = info.get("at", info.get("runs", 0))  # the run that met it
        if event == "shrinking" and info.get("stored"):
            say(f"met {info['kind']}: {info['signature']} at run {met_at:,}, stored by an "
                "earlier search")
        elif event == "shrinking":
            say(f"met {info['kind']}: {info['signature']} at run {met_at:,}; shrinking")
        elif event == "shrinking elsewhere":
            say(f"met {info['kind']}: {info['signature']} at run {met_at:,}")
        elif event == "found":
            say(f"found {info['kind']}: {info['signature']}")
        elif event == "runs" and (now := clock()) - last[0] >= every:
            last[0] = now
            say(f"{info['runs']:,} runs in {info['searched']:.0f} s ({limit})")

    return on_event


def explore_family(target: RaceTarget, family: str, budget: float, seed: int,
                   root: Path, max_runs: int | None = None,
                   say: Callable[[str], None] = lambda line: None) -> Outcome:
    """Search `family` on the target for `budget` seconds (or, given `max_runs`, for that
    many runs and no time limit: a repeatable search) and judge what was found; `say`
    gets the search's progress lines."""
    limits = {"budget": budget} if max_runs is None else {"budget": 0, "max_runs": max_runs}
    unjudged: list[dict[str, Any]] = []  # the first run that could not be judged, if any
    progress = search_lines(say, f"budget {budget:g} s" if max_runs is None
                            else f"of {max_runs:,}")

    def heard(event: str, info: dict[str, Any]) -> None:
        progress(event, info)
        if event == "unjudged":
            unjudged.append(info["trace"])
        elif event == "finding":  # kept at once, shrunk or not: an interrupt loses nothing
            spec, version = target.spec, str(info["target"]["version"])
            if judge([info], spec.entry, version, spec.http, family,
                     spec.source is not None).unexplained:
                trace = _save(info, target, family, root)
                if info.get("shrunk", True):
                    say(f"kept {info['kind']}: {replay_command(target, trace, root)}")

    result = run(target.spec, {"op": "explore", "families": [family], "seed": seed, **limits},
                 heard)
    found, version = result["findings"], str(result["target"]["version"])
    spec = target.spec
    if family in (result.get("unavailable") or {}):
        return Outcome(unavailable=f"{spec} cannot run the {family} family: "
                       f"{result['unavailable'][family]}")
    unchecked = None
    if unjudged:  # not a failure: said as a warning, with the run kept for replay
        path = root / FAILURES / f"{target.label}-{family}-unjudged-run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        Trace.from_json(unjudged[0]).save(path)
        unchecked = (f"{result.get('unjudged', 1)} of {result['runs']} runs in family "
                     f"{family!r} on {spec} could not be judged: their step budget ran out "
                     "while bytes still moved or time still passed. The first: "
                     f"{replay_command(target, shown(path, root), root)}")
    verdict = judge(found, spec.entry, version, spec.http, family, spec.source is not None)
    problems = []
    if verdict.unexplained:
        still = " still open upstream" if spec.source is not None else ""
        problems.append(
            f"{len(verdict.unexplained)} failure(s) in family {family!r} after "
            f"{result['runs']} runs that no known bug of {spec.server} {version} "
            f"({spec.http}){still} explains:")
        for f in verdict.unexplained:
            trace = _save(f, target, family, root)
            problems.append(f"- {f['kind']}: {f['signature']}\n  {f['message']}")
            problems += [f"  matches {b.name}, fixed upstream in {b.fixed}: "
                         + ("this code has the bug again, or predates the fix"
                            if b.fixed is None or not at_or_after(version, b.fixed) else
                            f"this code ({version}) is newer than the fix: a regression of it?")
                         for b in verdict.fixed_upstream.get((f["kind"], f["signature"]), [])]
            problems.append(f"  replay: {replay_command(target, trace, root)}")
    problems += [f"the harness no longer finds {bug.name} on {spec} in {result['runs']} runs"
                 + (f" ({budget:g}s)" if max_runs is None else "") for bug in verdict.not_found]
    if verdict.not_found and max_runs is None:
        problems.append(f"(a search of {budget:g}s may be too short to meet it: a longer "
                        "budget, --race-budget or race.explore's budget=, searches more runs)")
    if verdict.not_found:
        problems += ["it found:"] + [f"- {f['kind']}: {f['signature']}" for f in found] \
            if found else ["it found nothing"]
    if problems:
        return Outcome(failure="\n".join(problems), unchecked=unchecked)
    return Outcome(explained_by=tuple(verdict.explained_by), unchecked=unchecked)


def replay_trace(target: RaceTarget, path: Path, root: Path) -> Outcome:
    """Replay a stored trace on the target: any failure fails (the bug is back).

    Strict on the trace's own release, lenient elsewhere: other code may ask other
    questions than the trace recorded, and then takes the ordinary choice."""
    trace = Trace.load(path)
    own = trace.target or {}
    spec = target.spec
    same = spec.source is None and spec.label == "{}-{}-{}".format(
        own.get("server"), own.get("version"), own.get("http"))
    result: dict[str, Any] = run(spec, {"op": "replay", "trace": trace.to_json(),
                                        "strict": same}, lambda event, info: None)
    if not result["failures"]:
        return Outcome()
    where = shown(path, root)
    lines = [f"{where} fails on {spec}"
             + (f" (its run left the trace at decision {result['diverged_at']} and took the "
                "ordinary choice from there)" if result.get("diverged_at") is not None else "")
             + ":"]
    lines += [f"- {f['kind']}: {f['signature']}\n  {f['message']}" for f in result["failures"]]
    lines.append(f"replay: {replay_command(target, where, root)}")
    return Outcome(failure="\n".join(lines))


def exhaust_trace(target: RaceTarget, path: Path, root: Path, deviations: int,
                  max_runs: int = EXHAUST_RUNS,
                  say: Callable[[str], None] = lambda line: None) -> Outcome:
    """Run a stored trace's scenario on the target in every ordering with at most
    `deviations` deviations from the ordinary run (`harness exhaust`), up to `max_runs`:
    any failure in any of them fails, each named with the ordering it first showed in,
    kept for replay. `say` gets the walk's progress lines."""
    walk = walk_progress(say)

    def heard(event: str, info: dict[str, Any]) -> None:
        walk(event, info)
        if event == "finding":  # kept at once: an interrupted walk loses nothing
            say(f"kept {info['kind']}: "
                f"{replay_command(target, _save(info, target, f'{path.stem}-nearby', root), root)}")

    result: dict[str, Any] = run(target.spec, {
        "op": "exhaust", "trace": Trace.load(path).to_json(), "deviations": deviations,
        "max_runs": max_runs}, heard)
    found = result["findings"]
    where = shown(path, root)
    unchecked = None if result["complete"] else (
        f"only the first {result['runs']:,} orderings of the scenario of {where} within "
        f"{deviations} deviations ran on {target.spec} (the run limit; race.exhaust's "
        "max_runs raises it): the rest were not checked")
    if not found:
        return Outcome(unchecked=unchecked)
    lines = [f"{len(found)} distinct failure{'' if len(found) == 1 else 's'} on "
             f"{target.spec} in the {result['runs']} orderings of the scenario of {where} "
             f"within {deviations} deviation{'' if deviations == 1 else 's'} of the "
             "ordinary run:"]
    for f in found:
        trace = _save(f, target, f"{path.stem}-nearby", root)
        lines += [f"- {f['kind']}: {f['signature']} (ordering {f['runs_to_find']}, "
                  f"{f['deviations']} deviation{'' if f['deviations'] == 1 else 's'})",
                  f"  {f['message']}", f"  replay: {replay_command(target, trace, root)}"]
    return Outcome(failure="\n".join(lines), unchecked=unchecked)


def _save(finding: dict[str, Any], target: RaceTarget, what: str, root: Path) -> str:
    """Keep a finding's trace where its replay command points (named for the target,
    `what` found it and the failure); return that path."""
    folder = root / FAILURES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{target.label}-{what}-"
                     f"{report_id(finding['kind'], finding['signature'])}.json")
    Trace.from_json(finding["trace"]).save(path)
    return shown(path, root)
