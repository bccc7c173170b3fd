"""What each field of a scenario's parts may hold, as tables, checked when a scenario
is read from JSON (a trace, an examples store, a worker's request).

A scenario the search drew always passes; one edited by hand, or damaged, may not, and a
bad value must be refused there, naming it: past this point it would fail somewhere in
the run, where it reads as a bug in the harness or, raised while the target is mounted,
as the server's fault.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from harness.http.app import RAISE_POINTS, READ_MODES, AppBehaviour
from harness.http.client import (
    AFTER,
    CLIENT_READS,
    END_ACTIONS,
    END_MOMENTS,
    FRAMINGS,
    RUDE,
    ConnSpec,
    RequestSpec,
)
from harness.http.families import FAMILIES
from harness.http.shutdown import ShutdownSpec


class FieldError(ValueError):
    """A field of a scenario read from JSON that the scenario cannot hold."""


Rule = tuple[Callable[[Any], bool], str]  # (does a value pass, what it must be)
T = TypeVar("T")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))  # JSON's list, or to_json's tuple unwritten


def _whole(least: int, most: int | None = None) -> Rule:
    if most is None:
        return (lambda v: _number(v) and isinstance(v, int) and v >= least,
                f"a whole number, {least} or more")
    return (lambda v: _number(v) and isinstance(v, int) and least <= v <= most,
            f"a whole number from {least} to {most:,}")


# What a count or a size may be: far above what the strategies draw (bodies up to 300 KB
# in at most 40 chunks of 64 KiB, a few yields), far below what would exhaust memory or
# the step budget before the scenario played out: a run the harness could not judge, or
# a MemoryError that would read as the harness's own fault.
MAX_BODY = 2**24  # bytes: 16 MiB
MAX_CHUNK = 2**20  # bytes: 1 MiB a chunk of the app's response
MAX_CHUNKS = 100  # chunks of a body or a response (the app's response: at most 100 MiB)
MAX_COUNT = 1_000  # yields, requests


def _one_of(values: tuple[str, ...]) -> Rule:
    return (lambda v: isinstance(v, str) and v in values,
            "one of " + ", ".join(repr(v) for v in values))


FLAG: Rule = (lambda v: isinstance(v, bool), "true or false")
# A wait is at most this long: the strategies draw a few seconds, and one near the run's
# horizon (an hour by default) would end the run before the scenario had played out.
MAX_SECONDS = 600.0
SECONDS: Rule = (lambda v: _number(v) and math.isfinite(v) and 0 <= v <= MAX_SECONDS,
                 f"a number of seconds from 0 to {MAX_SECONDS:g}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's token: a method's name
METHOD: Rule = (lambda v: isinstance(v, str) and _TOKEN.fullmatch(v) is not None,
                "an HTTP method's name, such as 'GET'")

REQUEST: dict[str, Rule] = {
    "method": METHOD, "framing": _one_of(FRAMINGS), "body_size": _whole(0, MAX_BODY),
    "body_chunks": _whole(1, MAX_CHUNKS), "expect_continue": FLAG, "http10": FLAG, "close": FLAG,
    "pause": SECONDS, "after": _one_of(AFTER),
}
CONNECTION: dict[str, Rule] = {
    "requests": (_sequence, "a list of requests"),
    "pipelined": FLAG, "end": _one_of(END_ACTIONS), "end_moment": _one_of(END_MOMENTS),
    "end_request": _whole(0, MAX_COUNT), "end_delay": SECONDS, "read": _one_of(CLIENT_READS),
    "start": SECONDS, "rude": _one_of(RUDE),
}
BEHAVIOUR: dict[str, Rule] = {
    "yields_before": _whole(0, MAX_COUNT), "sleep_before": SECONDS, "read": _one_of(READ_MODES),
    "watch_disconnect": FLAG, "raise_at": _one_of(RAISE_POINTS),
    "chunks": _whole(1, MAX_CHUNKS), "yields_between": _whole(0, MAX_COUNT),
    "sleep_after": SECONDS, "receive_after": FLAG, "chunk_size": _whole(0, MAX_CHUNK),
    "wait_disconnect": FLAG,
}
SHUTDOWN: dict[str, Rule] = {"after": _whole(0, MAX_COUNT), "delay": SECONDS}
TABLES: dict[type, dict[str, Rule]] = {
    RequestSpec: REQUEST, ConnSpec: CONNECTION, AppBehaviour: BEHAVIOUR, ShutdownSpec: SHUTDOWN}


def checked(cls: Callable[..., T], data: Any, where: str, **built: Any) -> T:
    """`cls(**data)`, each field first checked against its rule; `built` replaces fields
    already read (a connection's requests). A FieldError names `where` and the field."""
    _check(TABLES[cls], data, where)  # type: ignore[index]
    return cls(**{**data, **built})


def _check(rules: dict[str, Rule], data: Any, where: str) -> None:
    """`data` is an object whose every field is in `rules` and passes its rule."""
    if not isinstance(data, dict):
        raise FieldError(f"{where} is {data!r}; expected an object")
    unknown = sorted(set(data) - set(rules))
    if unknown:
        raise FieldError(f"{where} has unknown fields {unknown}; known: {sorted(rules)}")
    for name, value in data.items():
        _require(rules[name], value, f"{where}.{name}")


def _require(rule: Rule, value: Any, where: str) -> None:
    ok, needs = rule
    if not ok(value):
        raise FieldError(f"{where} is {value!r}; expected {needs}")


def connection(data: Any, where: str) -> ConnSpec:
    if not isinstance(data, dict):
        raise FieldError(f"{where} is {data!r}; expected an object")
    requests = data.get("requests", [])
    if not _sequence(requests):
        raise FieldError(f"{where}.requests is {requests!r}; expected a list of requests")
    return checked(ConnSpec, data, where, requests=tuple(
        checked(RequestSpec, r, f"{where}.requests[{i}]") for i, r in enumerate(requests)))


def behaviour(item: Any, where: str) -> tuple[int, int, AppBehaviour]:
    """A behaviours entry: [connection number, request index, the app's behaviour]."""
    if not (_sequence(item) and len(item) == 3
            and all(_number(x) and isinstance(x, int) and x >= 0 for x in item[:2])):
        raise FieldError(f"{where} is {item!r}; expected [connection, request, behaviour] "
                         "with two whole numbers, 0 or more")
    return item[0], item[1], checked(AppBehaviour, item[2], f"{where}[2]")


def family(data: Any, where: str = "family") -> str:
    """The family a scenario was drawn from: a label in reports, but one of FAMILIES."""
    _require(_one_of(FAMILIES), data, where)
    return str(data)


def shutdown(data: Any, where: str = "shutdown") -> ShutdownSpec:
    return checked(ShutdownSpec, data, where)


def net(data: Any, known: dict[str, int], where: str = "net") -> dict[str, int]:
    """The scenario's network parameters: names from `known`, each a positive size."""
    ok, needs = _whole(1)
    _check({name: (ok, f"{needs} (bytes)") for name in known}, data, where)
    return dict(data)


# Setting meanings (harness/targets/registry.py, MEANINGS) that count something:
# requests, bytes, connections, messages. The others are seconds.
COUNTED = frozenset({"max-requests", "max-incomplete-size", "concurrency-limit",
                     "receive-queue-size"})
# Meanings whose null is "no limit" on every server that has them, so a null carries
# across servers by meaning: uvicorn's timeout_graceful_shutdown defaults to null, and
# translation hands it to the reference server's shutdown_grace and hypercorn's
# graceful_timeout, whose searches never draw it but which wait as long as it takes.
UNLIMITED = frozenset({"graceful-timeout"})


def setting_rule(legal: list[Any], means: str = "") -> Rule:
    """What a server setting may be, given the values the search tries for it (the
    target's settings space) and what it `means`: a number of their kind, 0 or more,
    whole if it counts something; or null where the search tries null or the meaning
    takes it (UNLIMITED). Every setting the registry lists is a number (a size, a count,
    seconds)."""
    counted, nullable = means in COUNTED, None in legal or means in UNLIMITED
    numbers = [v for v in legal if v is not None]
    numeric = bool(numbers) and all(_number(v) for v in numbers)

    def ok(value: Any) -> bool:
        if value is None:
            return nullable
        return numeric and _number(value) and math.isfinite(value) and value >= 0 \
            and (not counted or float(value).is_integer())

    kind = "a whole number" if counted else "a number"
    return ok, f"{kind}, 0 or more" + (", or null" if nullable else "")


def setting_fits(value: Any, legal: list[Any], means: str = "") -> bool:
    return setting_rule(legal, means)[0](value)
