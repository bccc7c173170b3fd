"""A small public API over the runner, for generated repro tests and scripts."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentFault, InputError, RunLimitWarning
from harness.search.profiles import EXHAUST_RUNS
from harness.search.trace import Trace, TraceError
from harness.search.walk_lines import walk_progress
from harness.targets.envs import ensure_target_env
from harness.targets.registry import TargetSpec, entry, target_spec, target_specs
from harness.targets.runner import run
from harness.targets.source import key_of, parse_source

__all__ = ["EXHAUST_RUNS", "RunLimitWarning", "exhaust_trace", "replay_trace", "replay_trace_file",
           "repro_settings", "source_key", "trace_target"]


def trace_target(trace: Trace, server: str | None = None,
                 http: str | None = None) -> tuple[TargetSpec, bool]:
    """Where to replay `trace` (default: its own target), and whether strictly: on its
    own release, yes; on any other, no (its code paths may ask other questions)."""
    own = trace.target or {}
    first: TargetSpec | None = None  # the server's first target, once looked up
    if server is None:
        if not (own.get("source") or own.get("server")):
            raise TraceError("the trace names no target (its 'target' is null or has no "
                             "'server'); give one with --server NAME==VERSION or --server "
                             "PATH (replay, exhaust)")
        server = str(own.get("source") or own.get("server"))
        try:
            if not own.get("source") and entry(server).distribution is not None:
                server += f"=={own.get('version')}"  # a server with no releases: its name
            first = target_specs(server)[0]
        except InputError as exc:  # worded for a --server the user gave: this one is not
            why = str(exc).removeprefix(f"--server {server}: ").split(";")[0]
            raise TraceError(f"the trace was recorded on {server}, which cannot be used here "
                             f"({why}); replay it with --server NAME==VERSION or --server "
                             "PATH (replay, exhaust)") from None
    if http is None and first is not None and own.get("http") is not None \
            and own.get("http") not in first.entry.protocols:
        raise TraceError(f"the trace was recorded on {server} over http "
                         f"{own.get('http')!r}, which it does not have (it has "
                         f"{', '.join(first.entry.protocols)}); give one with --http")
    if http is None:  # the trace's protocol, where the other server has it
        impls = (first or target_specs(server)[0]).entry.protocols
        http = str(own.get("http")) if own.get("http") in impls else impls[0]
    spec = target_spec(server, http)
    if spec.source is not None:  # the same code: the same commit, or unedited copy
        return spec, (spec.source == own.get("source") and spec.http == own.get("http")
                      and source_key(spec.source) == own.get("key"))
    same = (spec.server == own.get("server") and spec.http == own.get("http")
            and not own.get("source")
            and (spec.version or "") in ("", own.get("version"))
            and spec.label == f"{own.get('server')}-{own.get('version')}-{own.get('http')}")
    return spec, same


def source_key(spec: str) -> str:
    return key_of(parse_source(spec))


def replay_trace_file(path: str | Path, server: str | None = None,
                      http: str | None = None, lenient: bool = False) -> dict[str, Any]:
    """Replay a trace file on `server` (default: the trace's own target).

    Strict on the trace's own release unless `lenient`, lenient on any other.
    Returns the verdict: failures, log, divergence."""
    return replay_trace(Trace.load(path), server, http, lenient)


def replay_trace(trace: Trace | str, server: str | None = None, http: str | None = None,
                 lenient: bool = False) -> dict[str, Any]:
    """replay_trace_file, of a trace or the text of a trace.json (a repro test that
    carries its trace, so it can travel without the file)."""
    trace = _trace(trace)
    spec, same = trace_target(trace, server, http)
    request = {"op": "replay", "trace": trace.to_json(), "strict": same and not lenient}
    return run(spec, request, lambda event, info: None)


def exhaust_trace(trace: Trace | str, server: str | None = None, deviations: int | str = 1,
                  http: str | None = None, max_runs: int | str | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the scenario of `trace` (a trace, or the text of a trace.json) in every ordering
    with at most `deviations` deviations from the ordinary run, as `harness exhaust`
    does, on `server` (default: the trace's own target), up to `max_runs` orderings
    (default, or None: harness exhaust's, EXHAUST_RUNS). `deviations` and `max_runs` may
    be text (an environment variable's). Returns "findings" (each failure in its first
    ordering: kind, signature, message, deviations, runs_to_find, trace), "runs", and
    "complete" (False: max_runs cut the walk short). `progress`, if given, is called with
    a line as each level of the walk begins and every few seconds within it, as
    `harness exhaust` prints them: tens of thousands of orderings take minutes."""
    count = whole(deviations, 0, "deviations", "the most deviations from the ordinary run "
                   "to try", "1")
    limit = EXHAUST_RUNS if max_runs is None else whole(
        max_runs, 1, "max_runs", "the most orderings to run", f"{EXHAUST_RUNS * 5}")
    if progress is not None and not callable(progress):  # else a TypeError mid-walk
        raise InputError(f"progress {progress!r}: must be a callable taking one line of "
                         "text (for example print), or None")
    trace = _trace(trace)
    spec, _ = trace_target(trace, server, http)
    request = {"op": "exhaust", "trace": trace.to_json(), "deviations": count,
               "max_runs": limit}
    return run(spec, request, walk_progress(progress) if progress is not None
               else lambda event, info: None)


def repro_settings(trace: Trace | str) -> tuple[str | None, int | None, int | None]:
    """A generated repro test's settings: HARNESS_SERVER (None: the trace's own target),
    HARNESS_DEVIATIONS (None: the trace's own ordering only) and HARNESS_MAX_RUNS (None:
    harness exhaust's limit), each checked, and the target installed, before anything
    runs. A bad one ends the pytest session as a usage error (exit 4, as a bad option
    does): a failed test would say the bug is still there."""
    server = os.environ.get("HARNESS_SERVER") or None
    deviations = os.environ.get("HARNESS_DEVIATIONS") or None
    max_runs = os.environ.get("HARNESS_MAX_RUNS") or None
    try:
        count = None if deviations is None else whole(
            deviations, 0, "HARNESS_DEVIATIONS", "the most deviations from the ordinary run "
            "to try", "1")
        limit = None if max_runs is None else whole(
            max_runs, 1, "HARNESS_MAX_RUNS", "the most orderings to run",
            f"{EXHAUST_RUNS * 5}")
        spec, _ = trace_target(_trace(trace), server)
        ensure_target_env(spec)  # a release that does not exist, an index out of reach
    except (InputError, EnvironmentFault) as exc:
        import pytest

        pytest.exit(f"harness: error: {_in_repro_terms(str(exc), server)}",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    return server, count, limit


def _in_repro_terms(message: str, server: str | None) -> str:
    """A target's error as a repro test's user should read it: they gave HARNESS_SERVER,
    not harness's --server."""
    text = re.sub(r"(?<![\w-])--server[ =]", "HARNESS_SERVER=", message)
    if server is not None and "HARNESS_SERVER" not in text:
        text = f"HARNESS_SERVER={text}" if text.startswith(server) else \
            f"HARNESS_SERVER={server}: {text}"
    return text


def whole(value: object, least: int, name: str, what: str, example: str) -> int:
    """`value` as a whole number, `least` or more: an int or its text (an environment
    variable's). A bool or a fraction is refused, not read as 1 or cut to a whole."""
    number = least - 1
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = int(value)
    if number < least:
        raise InputError(f"{name} {value!r}: {what} must be a whole number, {least} or more "
                         f"(for example {example})")
    return number


def _trace(trace: Trace | str) -> Trace:
    if isinstance(trace, Trace):
        return trace
    try:
        return Trace.from_json(json.loads(trace), "<the trace given as text>")
    except json.JSONDecodeError as exc:
        raise TraceError(f"the trace given as text is not valid JSON ({exc})") from None
