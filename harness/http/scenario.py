"""An HTTP race scenario: client script + app behaviours + server settings, as data.

`HttpScenario` round-trips through JSON (it is the "scenario" of a trace), and
`run_http` plays it on a target: it mounts the server on a fresh SimLoop,
connects the scripted clients, runs to quiescence, and hands the
observations to the oracles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.decisions import DecisionSource
from harness.errors import HarnessFault, InputError, TargetFault
from harness.http.app import AppBehaviour, RecordingApp, asgi2
from harness.http.client import ClientScript, ConnSpec
from harness.http.failure import Failure
from harness.http.fields import FieldError, behaviour, connection, family
from harness.http.fields import net as checked_net
from harness.http.fields import shutdown as checked_shutdown
from harness.http.observations import ErrorCollector, Observations, observe
from harness.http.oracles import check
from harness.http.shutdown import ShutdownDriver, ShutdownSpec
from harness.net.network import DEFAULT_WINDOW
from harness.net.peer import PeerConnection
from harness.sim.loop import SimLoop
from harness.sim.run import Settings, SimResult, simulate

ADDRESS = ("127.0.0.1", 8000)


class Target(Protocol):
    """A server under test, as the harness mounts it (see servers/)."""

    name: str
    version: str
    http: str
    asgi: int  # 2 or 3: the calling convention the server expects of apps

    def settings_space(self) -> dict[str, list[Any]]:
        """Server settings the search may vary, each with its legal values (first: default)."""
        ...

    def setting_meanings(self) -> dict[str, str]:
        """Each setting's meaning (targets/registry.py MEANINGS), so the harness knows
        which arm a timer or set a grace period."""
        ...

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    # Optional, for the shutdown family (harness/http/shutdown.py):
    #   shutdown_unsupported() -> str | None: None if the target shuts down gracefully
    #     through its own path here, else why not;
    #   async shutdown() -> None: that graceful shutdown, as on SIGTERM, returning when the
    #     server's own shutdown routine returns.


def shutdown_unsupported(target: Target) -> str | None:
    """None if `target` can run shutdown scenarios, else why not."""
    why = getattr(target, "shutdown_unsupported", None)
    if why is None or not hasattr(target, "shutdown"):
        return f"the {target.name} adapter has no graceful shutdown"
    return why()  # type: ignore[no-any-return]


# Setting meanings (targets/registry.py MEANINGS) that arm a timer: the search places
# pauses on both sides of each.
TIMER_MEANINGS = ("keep-alive-timeout", "read-timeout", "graceful-timeout")


def values_meaning(target: Target, settings: dict[str, Any],
                   meanings: tuple[str, ...]) -> list[Any]:
    """The values `settings` give the settings of `target` with one of `meanings`: each
    one's chosen value, or its default where the scenario leaves it out."""
    means = target.setting_meanings()
    return [settings.get(name, values[0])
            for name, values in target.settings_space().items() if means.get(name) in meanings]


def timeouts(target: Target, settings: dict[str, Any]) -> tuple[float, ...]:
    """The timers (seconds) a run of `target` with these settings arms."""
    return tuple(sorted({float(v) for v in values_meaning(target, settings, TIMER_MEANINGS)
                         if v is not None}))


def grace_of(target: Target, settings: dict[str, Any]) -> float | None:
    """The grace period at shutdown the scenario's settings give `target` (None: none)."""
    found = values_meaning(target, settings, ("graceful-timeout",))
    return None if not found or found[0] is None else float(found[0])


# The network and transport parameters a scenario may set (`HttpScenario.net`), each with
# the value a run has when the scenario leaves it out: the ordinary one.
NET_DEFAULTS = {
    "window": DEFAULT_WINDOW,  # bytes one direction of a connection holds (kernel buffers)
    "write_high": 64 * 1024,  # the server transport's high-water mark (asyncio's default)
}


def net_settings(net: dict[str, Any]) -> dict[str, int]:
    """`net` with every default filled in; an unknown key or a bad value is a ValueError
    (a FieldError, naming it)."""
    return {**NET_DEFAULTS, **checked_net(net, NET_DEFAULTS)}


@dataclass(frozen=True)
class HttpScenario:
    family: str
    connections: tuple[ConnSpec, ...]
    behaviours: tuple[tuple[int, int, AppBehaviour], ...]
    server: dict[str, Any] = field(default_factory=dict)
    # Network window and the server transport's write-buffer limits; {}: the defaults.
    net: dict[str, int] = field(default_factory=dict)
    shutdown: ShutdownSpec | None = None  # when the server is told to shut down gracefully

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": "http",
            "family": self.family,
            "connections": [c.to_json() for c in self.connections],
            "behaviours": [[cid, i, b.to_json()] for cid, i, b in self.behaviours],
            "server": dict(self.server),
        }
        if self.net:  # left out when default, so older traces round-trip unchanged
            data["net"] = dict(self.net)
        if self.shutdown is not None:
            data["shutdown"] = self.shutdown.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HttpScenario:
        try:
            connections, behaviours = data["connections"], data["behaviours"]
            for name, value in (("connections", connections), ("behaviours", behaviours)):
                if not isinstance(value, (list, tuple)):
                    raise FieldError(f"{name} is {value!r}; expected a list")
            return cls(
                family=family(data["family"]),
                connections=tuple(connection(c, f"connections[{n}]")
                                  for n, c in enumerate(connections)),
                behaviours=tuple(behaviour(b, f"behaviours[{n}]")
                                 for n, b in enumerate(behaviours)),
                server=dict(data.get("server") or {}),
                net=checked_net(data.get("net") or {}, NET_DEFAULTS),
                shutdown=(None if data.get("shutdown") is None
                          else checked_shutdown(data["shutdown"])),
            )
        except FieldError as exc:  # its message names the field and what it must be
            raise ValueError(str(exc)) from None
        except KeyError as exc:
            raise ValueError(f"it has no {exc.args[0]!r}; an http scenario has 'family', "
                             "'connections' and 'behaviours'") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed http scenario: {exc!r}") from None


class ShutdownUnsupported(InputError):
    """A shutdown scenario for a target that has no graceful shutdown in the harness."""


UNSETTLED_TAIL = 12  # events of an unsettled run its error shows


class UnsettledRun(InputError):
    """A run its step budget cut while bytes still moved or time still passed: it was
    getting somewhere, so it is neither a livelock nor a pass, and cannot be judged.
    The search's own scenarios always settle (search/explore.py makes this a harness
    fault there); a trace's may not, and the user's budget is then too small."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass
class HttpRun:
    result: SimResult
    observations: Observations
    failures: list[Failure]


# Collectors not in use. A logging.Handler costs a lock and two process-wide registrations
# to build, more than some runs' requests; one is reused, emptied, by the next run.
_IDLE_COLLECTORS: list[ErrorCollector] = []


@contextmanager
def collect_errors() -> Iterator[ErrorCollector]:
    """ERROR records from every logger, including ones that do not propagate.

    The collector goes on the root and on each non-propagating logger that has handlers
    of its own, and stands in for `logging.lastResort`, which takes the records of a
    logger with no handler on its way up. It is never added to a logger without
    handlers: `hasHandlers()` would then say yes, and a server that asks (uvicorn decides
    so whether to build its access log lines) would run another path than it does in
    production, and another in a process's first run than in its later ones."""
    collector = _IDLE_COLLECTORS.pop() if _IDLE_COLLECTORS else ErrorCollector()
    collector.reset()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.propagate and lg.handlers
    ]
    for lg in loggers:
        lg.addHandler(collector)
    last_resort, logging.lastResort = logging.lastResort, collector
    try:
        yield collector
    finally:
        logging.lastResort = last_resort
        for lg in loggers:
            lg.removeHandler(collector)
        _IDLE_COLLECTORS.append(collector)


def http_program(scenario: HttpScenario, target: Target, state: dict[str, Any]) -> Any:
    net = net_settings(scenario.net)

    async def program(loop: SimLoop) -> None:
        network = loop.network
        if "errors" in state:  # when each ERROR record was logged, in virtual time
            state["errors"].clock = loop.time
        if scenario.net:  # connections made from here on have this window
            network.window = net["window"]
            # asyncio's own rule for a high-water mark alone: low = high // 4
            loop.write_buffer_limits = (net["write_high"], net["write_high"] // 4)

        def stamp(cid: int) -> tuple[float, int, int]:
            # cid -1 is a path the app model does not know: no connection's counters
            conns = network.connections
            reads = conns[cid - 1].up.reads if 1 <= cid <= len(conns) else 0
            return loop.now, reads, len(loop.log.entries)

        behaviours = {(c, i): b for c, i, b in scenario.behaviours}
        driver = None
        if scenario.shutdown is not None:
            driver = ShutdownDriver(loop, scenario.shutdown, target.shutdown,  # type: ignore[attr-defined]
                                    grace_of(target, scenario.server))
            state["shutdown"] = driver

        def record_and_tell(kind: str, detail: object) -> None:
            loop.record(kind, detail)
            if driver is not None and kind == "asgi":
                driver.on_asgi()

        # the loop's own record when no shutdown driver listens: one call less per message
        record = loop.record if driver is None else record_and_tell

        app = RecordingApp(behaviours, stamp, record, loop.iterations)
        state["app"] = app
        served = app if target.asgi == 3 else asgi2(app)
        await target.mount(loop, served, scenario.server, ADDRESS)
        if driver is not None:
            driver.arm()
        state["clients"] = [
            ClientScript(PeerConnection(loop, ADDRESS), spec) for spec in scenario.connections
        ]

    return program


def run_http(
    scenario: HttpScenario, target: Target, source: DecisionSource,
    settings: Settings | None = None,
) -> HttpRun:
    if scenario.shutdown is not None and (why := shutdown_unsupported(target)) is not None:
        raise ShutdownUnsupported(f"{target.name} {target.version} ({target.http}) cannot run "
                                  f"a shutdown scenario: {why}; use a target that can "
                                  "(harness explore --family shutdown names them)")
    state: dict[str, Any] = {}
    with collect_errors() as collector:
        state["errors"] = collector

        def inspect(loop: SimLoop) -> dict[str, Any]:
            driver = state.get("shutdown")
            return {"observations": observe(loop, state["app"], state.get("clients", []),
                                            collector,
                                            driver.facts() if driver is not None else None)}

        result = simulate(http_program(scenario, target, state), source, settings, inspect)
    if result.program_error is not None:
        raise TargetFault(
            f"mounting {target.name} {target.version} failed before any scenario ran: "
            f"{result.program_error!r}"
        ) from result.program_error
    if state["app"].faults:  # the harness's app model broke: nothing here is the server's
        raise HarnessFault(f"the app model failed on {target.name} {target.version}: "
                           + state["app"].faults[0])
    if result.outcome == "unsettled":
        budget = (settings or Settings()).step_budget
        # What kept it busy, in its last events: all a user sees of a run that never ends.
        entries = result.log.entries
        tail = "".join(f"\n    {e.line()}" for e in entries[-UNSETTLED_TAIL:])
        raise UnsettledRun(f"the run on {target.name} {target.version} was still under way "
                           f"when its step budget ran out ({result.detail}), so it cannot "
                           f"be judged; raise settings.step_budget (now {budget}) in the "
                           f"trace. Its last {min(len(entries), UNSETTLED_TAIL)} events of "
                           f"{len(entries):,}:{tail}", result.detail)
    obs: Observations = result.extras["observations"]
    return HttpRun(result, obs, check(obs))
