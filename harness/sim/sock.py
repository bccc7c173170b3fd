"""SimSocket: what `transport.get_extra_info("socket")` returns in simulation.

The stock transport hands out an `asyncio.trsock.TransportSocket`, a wrapper
that lets a server ask about the socket (its family, its addresses, its
options) but not do I/O on it. Servers use it (hypercorn reads the peer's
address from it, uvicorn prefers it to "peername"), so the simulated transport
offers the same questions with the simulated connection's answers. Anything
that would reach a real file descriptor is an escape, named as such.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, NoReturn


class SimSocket:
    def __init__(self, local: tuple[str, int], peer: tuple[str, int],
                 escape: Callable[[str, str], NoReturn]) -> None:
        self._local = local
        self._peer = peer
        self._escape = escape
        self._options: dict[tuple[int, int], Any] = {}
        self.family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        self.type = socket.SOCK_STREAM
        self.proto = socket.IPPROTO_TCP

    def getpeername(self) -> tuple[str, int]:
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        return self._local

    def gettimeout(self) -> float:
        return 0.0  # non-blocking, as every socket under an asyncio transport

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        # Options tune the kernel's behaviour; they are remembered (getsockopt answers
        # them) and change nothing, except SO_LINGER (on, 0 s): the transport's close is
        # then a RST (harness/sim/transport.py).
        self._options[(level, option)] = value

    def getsockopt(self, level: int, option: int, *rest: Any) -> Any:
        return self._options.get((level, option), 0)

    def fileno(self) -> int:
        self._escape("transport.get_extra_info('socket').fileno()",
                     "a real file descriptor would be read or written")

    def __repr__(self) -> str:
        return f"<SimSocket {self._local} -> {self._peer}>"
