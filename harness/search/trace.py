"""Traces: a scenario plus the decision list, as versioned JSON.

A trace is everything needed to repeat a run exactly (README, Rule 2):
which program ran (the scenario), against which target, with which
simulation settings, and every decision in order. `replay` runs it again
under a strict `ReplaySource`, so a run that asks a different question than
the one recorded stops with `TraceDivergence` instead of drifting silently.

Scenario kinds: "http" (an HttpScenario, replayed on a target by
harness/search/explore.py) and "program", an async function `module:function`
taking (loop, params), which `replay` here runs directly (the harness's own
determinism tests use it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.decisions import Decision, ReplaySource, TraceDivergence
from harness.errors import InputError, name_the_file
from harness.sim.run import Program, Settings, SimResult, simulate

FORMAT = "asgi-race-harness/trace"
VERSION = 1
# A run's trace is its scenario and one short entry per decision: a run cut by its
# 200,000-poll budget makes at most a few hundred thousand, well under this.
MAX_TRACE_BYTES = 256 * 2**20


class TraceError(InputError):
    """A trace file that cannot be used: malformed, unknown format, or from the future."""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _span(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


# What each simulation setting must be: a bad one read from a file is the trace's fault,
# and must not reach the simulated loop or network, whose errors would blame the harness
# (or, raised while mounting, the server).
_SETTING_RULES = {"max_latency": _span, "step_budget": _whole, "horizon": _span,
                  "window": _whole}
_SETTING_NEEDS = {"max_latency": "a number of seconds above 0",
                  "step_budget": "a whole number, 1 or more",
                  "horizon": "a number of seconds above 0",
                  "window": "a whole number of bytes, 1 or more"}


@dataclass
class Trace:
    scenario: dict[str, Any]
    decisions: list[Decision]
    settings: Settings = field(default_factory=Settings)
    target: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scenario": self.scenario,
            "target": self.target,
            "settings": dataclasses.asdict(self.settings),
            "decisions": [d.to_json() for d in self.decisions],
            "verdict": self.verdict,
            "meta": self.meta,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"

    def save(self, path: str | Path) -> None:
        write_atomically(Path(path), self.dumps())

    @classmethod
    def from_json(cls, data: Any, source: str = "<trace>") -> Trace:
        def bad(why: str) -> TraceError:
            return TraceError(f"{source}: not a usable trace: {why}")

        if not isinstance(data, dict):
            raise bad(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise bad(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int):
            raise bad(f"version is {version!r}, expected an integer")
        if version > VERSION:
            raise TraceError(
                f"{source}: trace format version {version} is newer than this harness "
                f"reads (up to {VERSION}); upgrade asgi-race-harness to replay it"
            )
        scenario = data.get("scenario")
        if not isinstance(scenario, dict) or "kind" not in scenario:
            raise bad("'scenario' must be an object with a 'kind'")
        raw = data.get("decisions")
        if not isinstance(raw, list):
            raise bad("'decisions' must be a list")
        decisions = []
        for i, item in enumerate(raw):
            shaped = (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item[1:])
            )
            if not shaped:
                raise bad(f"decision {i} is {item!r}; expected [what, options, choice]")
            if not 0 <= item[2] < item[1]:
                raise bad(f"decision {i} ({item[0]}) chooses {item[2]} of {item[1]} options; "
                          f"a choice is numbered from 0 to options - 1")
            decisions.append(Decision(item[0], item[1], item[2]))
        raw_settings = data.get("settings")
        raw_settings = {} if raw_settings is None else raw_settings
        if not isinstance(raw_settings, dict):
            raise bad(f"'settings' is {raw_settings!r}, expected an object")
        try:
            settings = Settings(**raw_settings)
        except TypeError as exc:
            raise bad(f"'settings' has unknown fields ({exc})") from None
        for name, value in raw_settings.items():
            if not _SETTING_RULES[name](value):
                raise bad(f"'settings.{name}' is {value!r}, expected "
                          f"{_SETTING_NEEDS[name]} (the default is {getattr(Settings, name)!r})")
        target = data.get("target")
        if target is not None and not (isinstance(target, dict) and all(
                isinstance(target.get(k), str) for k in ("server", "version", "http"))):
            raise bad("'target' must be null or an object with string 'server', 'version' "
                      "and 'http'")
        verdict = data.get("verdict")
        if verdict is not None and not (isinstance(verdict, dict) and all(
                isinstance(verdict.get(k), str) for k in ("kind", "signature"))):
            raise bad(f"'verdict' is {verdict!r}; expected null or an object with string "
                      "'kind' and 'signature'")
        meta = data.get("meta")
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise bad(f"'meta' is {meta!r}, expected an object")
        return cls(scenario, decisions, settings, target, verdict, meta)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        # Read with a bound: a device that never ends (/dev/zero) is not read for ever.
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_TRACE_BYTES + 1)
        except OSError as exc:
            inside = Path(path) / "trace.json"
            hint = f"; a report's trace is its trace.json: {inside}" if inside.is_file() else ""
            raise TraceError(f"{path}: cannot read trace ({exc.strerror}){hint}") from None
        if len(raw) > MAX_TRACE_BYTES:
            raise TraceError(f"{path}: larger than {MAX_TRACE_BYTES // 2**20} MiB, more than "
                             "any trace the harness writes; is this a trace.json?")
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise TraceError(f"{path}: not UTF-8 text; is this a trace.json?") from None
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: not valid JSON ({exc}); is this a trace.json?") from None
        except RecursionError:  # (json nests by recursion: 100,000 '[' exhaust the stack)
            raise TraceError(f"{path}: JSON nested too deep for a trace; is this a "
                             "trace.json?") from None
        return cls.from_json(data, str(path))


def build_program(scenario: dict[str, Any]) -> Program:
    """The program a "program" scenario names."""
    if scenario.get("kind") != "program":
        raise TraceError(f"a {scenario.get('kind')!r} scenario is replayed on a target "
                         "(harness replay TRACE), not as a program")
    ref = scenario.get("ref", "")
    module_name, _, func_name = str(ref).partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError, ValueError):
        raise TraceError(
            f"scenario program {ref!r} cannot be imported; expected 'module:function'"
        ) from None
    params = scenario.get("params", {})

    async def program(loop: Any) -> Any:
        return await func(loop, params)

    return program


def replay(trace: Trace, strict: bool = True) -> SimResult:
    """Run the trace's program again under its recorded decisions."""
    source = ReplaySource(trace.decisions, strict=strict)
    result = simulate(build_program(trace.scenario), source, trace.settings)
    if strict and source.unused():
        raise TraceDivergence(
            f"the replayed run ended after {source.index} decisions, but the trace "
            f"records {len(trace.decisions)}"
        )
    return result


def _umask() -> int:
    mask = os.umask(0)  # (the only way to read it is to set it)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: setting it later could race a thread's open()


def write_atomically(path: Path, text: str) -> None:
    """A temporary file renamed into place: a crash leaves the old file or the new one,
    and a reader (another job) sees all of it or nothing, never half. Through a symbolic
    link, the file it points to is replaced, not the link; what is no regular file (a
    device such as /dev/stdout, a pipe) is written to as it is: a rename would put a
    file in its place."""
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        try:
            with open(path, "w") as out:
                out.write(text)
        except BaseException as exc:
            name_the_file(exc, path)
            raise
        return
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # as open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        name_the_file(exc, path)
        raise
