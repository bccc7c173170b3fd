"""What one reference server shares with its connections: the app, its limits and
timers (`Config`), and the shutdown signal. Read by connection.py and exchange.py,
importing neither."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Config:
    keep_alive: float = 5.0  # seconds an idle connection waits for its next request
    max_header_bytes: int = 16 * 1024  # a longer request head is answered 431
    max_body_bytes: int = 1024 * 1024  # a longer request body is answered 413
    read_size: int = 64 * 1024
    buffer_limit: int = 64 * 1024  # unconsumed request bytes before reading pauses
    # seconds in-flight requests get once shutdown begins; None: as long as they take
    shutdown_grace: float | None = 30.0


class Shutdown:
    """Shared by one server's connections. Once begun, idle connections close at once
    and busy ones answer `Connection: close` and close after their response; an app
    waiting for the client before it responds (a long poll) hears http.disconnect."""

    def __init__(self) -> None:
        self.begun = False
        # Dicts, not sets: a set iterates in address order, so which connection hears the
        # shutdown first would depend on memory layout, and a replay could differ.
        self._idle: dict[anyio.CancelScope, None] = {}
        self._busy: dict[Callable[[], None], None] = {}

    def begin(self) -> None:
        self.begun = True
        for scope in list(self._idle):
            scope.cancel()
        for tell in list(self._busy):
            tell()

    @contextmanager
    def tells(self, callback: Callable[[], None]) -> Iterator[None]:
        """While inside, beginning the shutdown calls `callback` (an exchange in progress);
        if it has begun already, it is called at once."""
        if self.begun:
            callback()
        self._busy[callback] = None
        try:
            yield
        finally:
            self._busy.pop(callback, None)

    @contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[None]:
        """While inside, beginning the shutdown cancels `scope` (an idle wait)."""
        self._idle[scope] = None
        try:
            yield
        finally:
            self._idle.pop(scope, None)
