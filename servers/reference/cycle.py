"""The sans-IO half of the reference server: one request/response cycle's ASGI state.

`Cycle` decides what `receive()` returns next from facts the I/O layer feeds
it (body bytes, end of body, the client gone, the response complete); it does
no I/O and never waits. Its invariants are the ones uvicorn #241 and #748
broke:

- each cycle owns its own wake-up: nothing one cycle does can consume another
  cycle's signal (the I/O layer keeps one `anyio.Event` per wait, per cycle);
- `http.disconnect` is the answer to every `receive()` once the response is
  complete or the client is gone, and a pending `receive()` is woken then; also
  once the body is cut short by end of stream (after what did arrive);
- the body is handed over in order, then exactly one final message with
  `more_body=False` (an empty body is still one `http.request`);
- once the server is shutting down, an app that has its whole body and has not
  started its response (a long poll) gets `http.disconnect`: only the end of
  the connection could still come. An app already responding is left to finish.
"""

from __future__ import annotations

from collections import deque
from typing import Any

DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class Cycle:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self.body_done = False  # the request's body has fully arrived
        self.body_delivered = False  # the app has had the more_body=False message
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.body_cut = False
        self.shutting_down = False  # the server is shutting down (graceful shutdown)

    # -- facts from the I/O layer ---------------------------------------------------
    def add_body(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self.buffered += len(data)

    def end_body(self) -> None:
        self.body_done = True

    def client_gone(self) -> None:
        self.disconnected = True

    def body_lost(self) -> None:
        """End of stream mid-body: the body can never complete, but a half-closed client
        may still read, so the response goes on."""
        self.body_cut = True

    # -- what receive() returns ------------------------------------------------------
    def next_message(self) -> dict[str, Any] | None:
        """The message receive() returns now, or None when it must wait."""
        if self.response_complete or self.disconnected:
            return DISCONNECT
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self.buffered = 0
            final = self.body_done
            self.body_delivered = final
            return {"type": "http.request", "body": data, "more_body": not final}
        if self.body_done and not self.body_delivered:
            self.body_delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.body_cut and not self.body_done:
            return DISCONNECT
        if self.shutting_down and self.body_delivered and not self.response_started:
            # A long poll: nothing but the end of the connection can come now, and the
            # shutdown will end it; waiting would hold the shutdown hostage.
            return DISCONNECT
        return None
