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
    shutdown_grace: float = 30.0  # seconds in-flight requests get once shutdown begins


class Shutdown:
    """Shared by one server's connections. Once begun, idle connections close at once
    and busy ones answer `Connection: close` and close after their response."""

    def __init__(self) -> None:
        self.begun = False
        self._idle: set[anyio.CancelScope] = set()

    def begin(self) -> None:
        self.begun = True
        for scope in list(self._idle):
            scope.cancel()

    @contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[None]:
        """While inside, beginning the shutdown cancels `scope` (an idle wait)."""
        self._idle.add(scope)
        try:
            yield
        finally:
            self._idle.discard(scope)
