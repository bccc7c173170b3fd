"""Run exploration or replay on a target spec, in this process or in a worker.

Everything crossing the process boundary is JSON: the request a worker reads
on stdin, and the lines it writes on stdout (progress events, then one
result). The same functions serve both sides, so a release in a worker
behaves exactly as the installed one does here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from harness.decisions import TraceDivergence
from harness.http.scenario import Target
from harness.search.trace import Trace, TraceError
from harness.targets.envs import Env, EnvError, ensure_env
from harness.targets.registry import TargetSpec

Progress = Callable[[str, dict[str, Any]], None]


class WorkerError(RuntimeError):
    """A worker process failed; the message carries its last lines."""


def make_target(spec: TargetSpec) -> Target:
    """The target object for the release importable in *this* process."""
    if spec.server == "uvicorn":
        from servers.uvicorn_target import UvicornTarget

        return UvicornTarget(spec.http)
    if spec.server == "reference":
        from servers.reference.target import ReferenceTarget

        return ReferenceTarget()
    raise EnvError(f"no adapter for server {spec.server!r}")


def _acceptor(accept: dict[str, str] | None) -> Callable[[Any], bool] | None:
    """{"kind": K, "signature_contains": S}: count only failures that match."""
    if not accept:
        return None
    kind, part = accept.get("kind"), accept.get("signature_contains", "")

    def accepts(failure: Any) -> bool:
        return (kind is None or failure.kind == kind) and part in failure.signature

    return accepts


def _explore_here(spec: TargetSpec, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from harness.search.explore import explore, trace_of

    target = make_target(spec)
    report = explore(
        target,
        tuple(request["families"]),
        budget_seconds=float(request["budget"]),
        max_runs=request.get("max_runs"),
        seed=int(request.get("seed", 0)),
        strategy=str(request.get("strategy", "hypothesis")),
        known=frozenset((str(k[0]), str(k[1])) for k in request.get("known", [])),
        max_found=request.get("max_found"),
        accept=_acceptor(request.get("accept")),
        progress=progress,
    )
    findings = []
    for found in report.found:
        trace = trace_of(found, target)
        findings.append({
            "kind": found.key[0],
            "signature": found.key[1],
            "message": found.failure.message,
            "trace": trace.to_json(),
            "runs_to_find": found.runs_to_find,
            "seconds_to_find": found.seconds_to_find,
            "seconds_to_shrink": found.seconds_to_shrink,
            "decisions": len(found.decisions),
            "deviations": sum(1 for d in found.decisions if d.choice),
        })
    return {"target": target.describe(), "runs": report.runs, "seconds": report.seconds,
            "findings": findings}


def _replay_here(spec: TargetSpec, request: dict[str, Any]) -> dict[str, Any]:
    from harness.search.explore import replay_http

    target = make_target(spec)
    trace = Trace.from_json(request["trace"])
    try:
        verdict = replay_http(trace, target, strict=bool(request.get("strict", True)))
    except TraceDivergence as exc:
        where = f"{target.name} {target.version} ({target.http})"
        raise TraceError(f"the trace no longer replays on {where}: {exc}; the code under test "
                         "is not the code that recorded it (replay with --lenient to follow "
                         "the trace as far as it applies)") from None
    return {
        "target": target.describe(),
        "failures": [asdict(f) for f in verdict.failures],
        "diverged_at": verdict.diverged_at,
        "log": verdict.run.result.log.lines(),
        "outcome": verdict.run.result.outcome,
        # Each receive() still waiting at quiescence, with its whole await stack.
        "waiting": [
            {"request": f"/c{cid}/r{index}", "call": call, "stack": [str(f) for f in stack]}
            for (cid, index, call), stack in sorted(verdict.run.observations.receive_stacks.items())
        ],
    }


def handle(request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    spec = TargetSpec(request["server"], request.get("version"), request["http"])
    if request["op"] == "explore":
        return _explore_here(spec, request, progress)
    if request["op"] == "replay":
        return _replay_here(spec, request)
    raise ValueError(f"unknown worker op {request['op']!r}")


def run(spec: TargetSpec, request: dict[str, Any], progress: Progress,
        log: Callable[[str], None] = lambda s: None,
        force_worker: bool = False) -> dict[str, Any]:
    """Serve `request` on `spec`: here if its release is installed here, else in a worker.

    `force_worker` runs even the installed release in a subprocess (parallel jobs)."""
    request = {**request, "server": spec.server, "version": spec.version, "http": spec.http}
    if spec.in_process() and not force_worker:
        return handle(request, progress)
    if spec.in_process():
        result = _run_worker(Env.current(), request, progress)
        return result
    assert spec.version is not None
    env = ensure_env(spec.server, spec.version, lambda line: log(f"installing: {line}"))
    if spec.http not in env.info.protocols:
        raise EnvError(f"{spec.server}=={spec.version} has no importable {spec.http} protocol "
                       f"on this Python (importable: {', '.join(env.info.protocols) or 'none'})")
    result = _run_worker(env, request, progress)
    result["env"] = asdict(env.info)
    return result


def _run_worker(env: Env, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    with subprocess.Popen(
        [sys.executable, "-m", "harness.targets.worker"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env.python_env(),
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps(request))
        proc.stdin.close()
        result: dict[str, Any] | None = None
        error: str | None = None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a stray print from the target
            if message.get("event") == "result":
                result = message["result"]
            elif message.get("event") == "error":
                error = message["message"]
            else:
                progress(message.get("event", "?"), message.get("info", {}))
        stderr = proc.stderr.read()
        code = proc.wait()
    if error is not None:
        raise WorkerError(error)
    if code != 0 or result is None:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise WorkerError(f"the worker for {request['server']}=={request['version']} failed "
                          f"(exit {code}):\n{tail}")
    return result
