"""Run exploration or replay on a target spec, in this process or in a worker.

Everything crossing the process boundary is JSON: the request a worker reads
on stdin, and the lines it writes on stdout (progress events, then one
result). The same functions serve both sides, so a release in a worker
behaves exactly as the installed one does here.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import importlib.metadata
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from harness.decisions import TraceDivergence
from harness.errors import HarnessError, HarnessFault, TargetFault, rebuild
from harness.http.scenario import Target
from harness.search.examples import root_from_env
from harness.search.profiles import profile
from harness.search.trace import Trace, TraceError
from harness.sim.interrupts import interrupts_held
from harness.sim.run import Settings
from harness.targets.envs import Env, EnvError, ensure_target_env, harness_home
from harness.targets.registry import TargetSpec, entry, translate_settings

Progress = Callable[[str, dict[str, Any]], None]


class WorkerError(HarnessFault):
    """A worker process died without an answer; the message carries its last lines."""


def make_target(spec: TargetSpec, key: str | None = None) -> Target:
    """The adapter for the release importable in *this* process (its registry entry
    names it as "module:Class"; the class takes the protocol implementation)."""
    module, _, name = spec.entry.adapter.partition(":")
    adapter: Target = getattr(importlib.import_module(module), name)(spec.http)
    if spec.source is not None:
        adapter.source, adapter.source_key = spec.source, key  # type: ignore[attr-defined]
    return adapter


def _acceptor(accept: dict[str, str] | None) -> Callable[[Any], bool] | None:
    """{"kind": K, "signature_contains": S}: count only failures that match."""
    if not accept:
        return None
    kind, part = accept.get("kind"), accept.get("signature_contains", "")

    def accepts(failure: Any) -> bool:
        return (kind is None or failure.kind == kind) and part in failure.signature

    return accepts


def _finding(found: Any, target: Target, settings: Settings | None = None) -> dict[str, Any]:
    from harness.search.explore import SETTINGS, trace_of

    return {
        "kind": found.key[0],
        "signature": found.key[1],
        "message": found.failure.message,
        "trace": trace_of(found, target, settings or SETTINGS).to_json(),
        "runs_to_find": found.runs_to_find,
        "seconds_to_find": found.seconds_to_find,
        "seconds_to_shrink": found.seconds_to_shrink,
        "seconds_to_report": found.seconds_to_report,
        "source": found.source,
        "shrunk": found.shrunk,
        "decisions": len(found.decisions),
        "deviations": sum(1 for d in found.decisions if d.choice),
    }


def _found_event(found: Any, target: Target, settings: Settings | None = None
                 ) -> dict[str, Any]:
    """A finding as it leaves the worker, with its trace replayed here ("replayed": the
    verdict its report shows). The report is then written without a worker started to
    replay it: about a second of CPU per report on a release in a cached environment,
    which held up every report and line after it while the search ran on."""
    finding = _finding(found, target, settings)
    trace = Trace.from_json(finding["trace"])
    return {"target": target.describe(), **finding,
            "replayed": _verdict(target, _replayed(trace, target, strict=True))}


def examples_root(request: dict[str, Any]) -> Path | None:
    """The examples store a request names: "examples" is a folder, or null for none;
    without it, HARNESS_EXAMPLES or else <cache>/examples (harness/search/examples.py)."""
    if "examples" in request:
        return None if request["examples"] is None else Path(request["examples"])
    return root_from_env(harness_home() / "examples")


def _explore_here(spec: TargetSpec, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from harness.search.claims import Claims
    from harness.search.explore import explore, unavailable_families

    target = make_target(spec, request.get("key"))
    # A family this target cannot run (the shutdown family, where the adapter has no
    # shutdown path for the release) is left out and named; the caller says so.
    unavailable = unavailable_families(target, tuple(request["families"]))
    families = tuple(f for f in request["families"] if f not in unavailable)
    if not families:
        return {"target": target.describe(), "runs": 0, "seconds": 0.0,
                "shrink_seconds": 0.0, "findings": [], "unavailable": unavailable}
    report = explore(
        target,
        families,
        budget_seconds=float(request["budget"]),
        max_runs=request.get("max_runs"),
        seed=int(request.get("seed", 0)),
        strategy=str(request.get("strategy", "hypothesis")),
        known=frozenset((str(k[0]), str(k[1])) for k in request.get("known", [])),
        max_found=request.get("max_found"),
        accept=_acceptor(request.get("accept")),
        progress=progress,
        # Each finding leaves at once, whole, when detected and again once shrunk: an
        # interrupt later cannot lose it.
        on_found=lambda found: progress("finding", _found_event(found, target)),
        profile=profile(request.get("profile")),
        examples=examples_root(request),
        # Detection never waits for shrinking: a child shrinks each failure (forks.py).
        shrink=str(request.get("shrink", "fork")),
        # Parallel jobs share a claims folder: each failure is shrunk by one job (claims.py).
        claims=Claims(Path(request["claims"])) if request.get("claims") else None,
        # The first run that could not be judged leaves at once too, as a trace.
        on_unjudged=lambda trace: progress("unjudged", {"target": target.describe(),
                                                        "trace": trace.to_json()}),
    )
    return {"target": target.describe(), "runs": report.runs, "seconds": report.seconds,
            "shrink_seconds": report.shrink_seconds, "cpu_seconds": report.cpu_seconds,
            "findings": [_finding(found, target) for found in report.found],
            "unavailable": unavailable, "unjudged": report.unjudged}


def _replay_here(spec: TargetSpec, request: dict[str, Any]) -> dict[str, Any]:
    from harness.http.scenario import HttpScenario
    from harness.search.explore import run_once

    target = make_target(spec, request.get("key"))
    if request["op"] == "run":  # one seeded run of a scenario: no trace to follow
        try:
            scenario = HttpScenario.from_json(request["scenario"])
        except ValueError as exc:
            raise TraceError(f"cannot run that scenario: {exc}") from None
        seed, deviation = int(request.get("seed", 0)), float(request.get("deviation", 0.2))
        return _verdict(target, run_once(scenario, target, seed, deviation))
    trace = _translated(Trace.from_json(request["trace"]), target)
    return _verdict(target, _replayed(trace, target, bool(request.get("strict", True))))


def _replayed(trace: Trace, target: Target, strict: bool) -> Any:
    from harness.search.explore import replay_http

    try:
        return replay_http(trace, target, strict=strict)
    except TraceDivergence as exc:
        where = f"{target.name} {target.version} ({target.http})"
        raise TraceError(f"the trace no longer replays on {where}: {exc}; the code under test "
                         "is not the code that recorded it, or the trace was edited (`harness "
                         "replay --lenient` follows the trace as far as it applies)") from None


def _exhaust_here(spec: TargetSpec, request: dict[str, Any], progress: Progress
                  ) -> dict[str, Any]:
    """Every ordering of a trace's scenario with at most request["deviations"] deviations
    (harness/search/exhaustive.py); each failure leaves as a "finding" event when met.
    Under the trace's own simulation settings, as replay runs it (its ordinary run is the
    walk's first), and its findings' traces record them."""
    from harness.search.exhaustive import exhaust, summary
    from harness.search.explore import execute_on, trace_scenario

    target = make_target(spec, request.get("key"))
    trace = _translated(Trace.from_json(request["trace"]), target)
    deviations = int(request["deviations"])
    settings = trace.settings
    report = exhaust(
        execute_on(target, settings, drawn=False), trace_scenario(trace, target), deviations,
        max_runs=request.get("max_runs"), progress=progress,
        on_found=lambda found: progress("finding", _found_event(found, target, settings)))
    return {"target": target.describe(), "runs": report.runs, "complete": report.complete,
            "summary": summary(report, deviations),
            "findings": [_finding(found, target, settings) for found in report.found]}


def _translated(trace: Trace, target: Target) -> Trace:
    """The trace's settings as `target` takes them (registry.translate_settings): another
    server's by their shared meanings, another release's where that release has them."""
    recorded = (trace.target or {}).get("server")
    scenario = trace.scenario
    if not isinstance(scenario, dict) or not isinstance(scenario.get("server"), dict):
        return trace  # malformed: replay_http says so
    settings = translate_settings(scenario["server"], str(recorded), entry(target.name),
                                  target.version)
    return dataclasses.replace(trace, scenario={**scenario, "server": settings})


def _verdict(target: Target, verdict: Any) -> dict[str, Any]:
    observations = verdict.run.observations
    return {
        "target": target.describe(),
        "failures": [asdict(f) for f in verdict.failures],
        "diverged_at": verdict.diverged_at,
        "past_end": verdict.past_end,
        "log": verdict.run.result.log.lines(),
        "outcome": verdict.run.result.outcome,
        # Each receive() still waiting at quiescence, with its whole await stack.
        "waiting": [
            {"request": f"/c{cid}/r{index}", "call": call, "stack": [str(f) for f in stack]}
            for (cid, index, call), stack in sorted(observations.receive_stacks.items())
        ],
        # What each client read: status and body per response, in order.
        "responses": {str(cid): [{"status": r.status, "body": r.body.decode("latin-1"),
                                  "complete": r.complete} for r in facts.client.responses]
                      for cid, facts in sorted(observations.connections.items())},
    }


def _check_isolation(spec: TargetSpec, site: str) -> None:
    """In a worker: the release must come from its own environment and nowhere else."""
    entry = spec.entry
    package = entry.protocol_modules[spec.http].split(".")[0]
    where = Path(getattr(importlib.import_module(package), "__file__", None) or "?").resolve()
    version = importlib.metadata.version(entry.distribution or package)
    if Path(site).resolve() not in where.parents and (Path(site) / package).is_dir():
        raise WorkerError(f"{spec.server}=={spec.version} is in {site}, but this worker "
                          f"imports {package} from {where.parent}, which comes first on "
                          f"sys.path ({sys.path[:3]})")
    if Path(site).resolve() not in where.parents or version != spec.version:
        raise EnvError(f"{spec.server}=={spec.version} should run from {site}, but this "
                       f"worker imports {package} {version} from {where.parent}; remove the "
                       f"damaged cache folder {Path(site).parent} and run again")


def handle(request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    spec = TargetSpec(request["server"], request.get("version"), request["http"],
                      request.get("source"))
    if request.get("site"):
        _check_isolation(spec, str(request["site"]))
    if request["op"] == "explore":
        return _explore_here(spec, request, progress)
    if request["op"] in ("replay", "run"):
        return _replay_here(spec, request)
    if request["op"] == "exhaust":
        return _exhaust_here(spec, request, progress)
    raise ValueError(f"unknown worker op {request['op']!r}")


def run(spec: TargetSpec, request: dict[str, Any], progress: Progress,
        log: Callable[[str], None] = lambda s: None,
        force_worker: bool = False, cancelled: threading.Event | None = None
        ) -> dict[str, Any]:
    """Serve `request` on `spec`: here if its release is installed here, else in a worker.

    `force_worker` runs even the installed release in a subprocess (parallel jobs). Once
    `cancelled` is set, no worker is started for this call: see `_run_worker`."""
    request = {**request, "server": spec.server, "version": spec.version, "http": spec.http,
               "source": spec.source}
    env = ensure_target_env(spec, lambda line: log(f"installing: {line}"))
    if env is None:
        if not force_worker:
            return handle(request, progress)
        return _run_worker(Env.current(), request, progress, cancelled)
    if spec.http not in env.info.protocols:
        raise EnvError(f"{spec} has no importable {spec.http} protocol on this Python "
                       f"(importable: {', '.join(env.info.protocols) or 'none'})")
    request.update(version=env.info.version, site=str(env.site), key=env.info.key or None)
    result = _run_worker(env, request, progress, cancelled)
    result["env"] = asdict(env.info)
    return result


_LIVE: set[subprocess.Popen[str]] = set()  # workers not yet reaped, for terminate_workers
_LIVE_LOCK = threading.Lock()


def terminate_workers(grace: float = 5.0) -> None:
    """Stop every worker this process started (an interrupt): SIGTERM, then SIGKILL."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:  # all told first, so that they end side by side
        with contextlib.suppress(OSError):
            proc.terminate()
    for proc in live:
        _stop(proc, grace)


def _stop(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """End and reap `proc` (at once if it has already ended): SIGTERM, then SIGKILL."""
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Cancelled(Exception):
    """A worker was asked for after its caller had stopped the jobs it belonged to."""


def _run_worker(env: Env, request: dict[str, Any], progress: Progress,
                cancelled: threading.Event | None = None) -> dict[str, Any]:
    # Not `with Popen`: on an exception its exit closes the pipes before the worker has
    # ended, and closing stderr blocks while the drain thread reads it. A worker still
    # waiting for its request then never sees its stdin close, and the harness hangs.
    # So the worker is stopped and reaped first, and only the drain thread closes stderr.
    # Started and listed at once, or not at all. `cancelled` is read under the lock that
    # terminate_workers takes: a job thread slower than its caller's interrupt either has
    # its worker listed (and stopped) or starts none.
    with interrupts_held(), _LIVE_LOCK:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("the jobs were stopped before this one started its worker")
        proc = subprocess.Popen(
            # -P: the current folder is not put first on sys.path. Run from a server's
            # own source tree (the pytest plugin in a maintainer's project), it would
            # shadow the release in the worker's environment.
            [sys.executable, "-P", "-m", "harness.targets.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env.python_env(),
        )
        _LIVE.add(proc)
    try:
        return _talk(proc, request, progress)
    finally:
        with interrupts_held():  # a second interrupt must not leave it running
            _stop(proc)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]


def drain_into(stream: IO[str], lines: collections.deque[str]) -> None:
    """Read `stream` into `lines` to its end, then close it. Only this reader closes it:
    a close from another thread would wait for the read under way to return."""
    with contextlib.suppress(ValueError, OSError):
        lines.extend(stream)
    with contextlib.suppress(OSError):
        stream.close()


def _talk(proc: subprocess.Popen[str], request: dict[str, Any],
          progress: Progress) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    # Drained beside stdout: a target that writes more than a pipe holds to stderr
    # would otherwise block, and the worker with it, while stdout is being read.
    stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
    drain = threading.Thread(target=drain_into, args=(proc.stderr, stderr_tail), daemon=True)
    drain.start()
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    result: dict[str, Any] | None = None
    error: HarnessError | None = None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a stray print from the target
        if message.get("event") == "result":
            result = message["result"]
        elif message.get("event") == "error":
            error = rebuild(str(message.get("who", "harness")), message["message"])
        else:
            progress(message.get("event", "?"), message.get("info", {}))
    code = proc.wait()
    drain.join()
    if error is not None:
        raise error
    if code != 0 or result is None:
        tail = "".join(stderr_tail).strip().splitlines()[-8:]
        pin = f"=={request['version']}" if request.get("version") else ""
        what = request.get("source") or f"{request['server']}{pin}"
        if code == 0:  # the worker answers before it exits 0: something else ended it
            raise TargetFault(f"the worker for {what} ended (exit 0) without an answer: the "
                              "code under test ended the process (os._exit?); it cannot be "
                              "tested as it is")
        raise WorkerError(f"the worker for {what} failed (exit {code})"
                          + "".join(f"\n{line}" for line in tail))
    return result
