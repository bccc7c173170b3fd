"""The HTTP client model: what the search makes a client do on each connection.

A `ConnSpec` is data (JSON in traces); `ClientScript` plays it on a
`PeerConnection`. Requests go out pipelined in one write, or one after
another: each after a pause in virtual time counted from a moment its
`after` names: the previous response complete (the default), the previous
request sent, or the previous response's head arriving (so it overlaps a
response still streaming); then the client waits for the responses in order. The
connection can end by half-close, close or reset at a chosen moment: after
the responses, mid-headers, mid-body, as the response starts streaming, or
right after the requests are sent. Responses are parsed with h11 in the
client role, one request cycle at a time, so framing errors are h11's verdict,
not ours: always the harness's own h11, even in the worker of a release that
pins an older one (targets/worker.py imports this module before it mounts the
release), so a verdict never depends on the h11 of the release under test.

A client may break RFC 9112's rules as real clients do (`ConnSpec.rude`, one
named behaviour per connection, `RUDE`): "after-close" goes on writing requests
after one that asked to close (`Connection: close`, or HTTP/1.0 without
keep-alive) and after a response that said the server closes (9.6), pipelined
in the same write or later; "crlf" writes an empty line after every request
(2.2: a server SHOULD ignore one before a request line). The client records the
first request written at its own risk (`rude_from`): what a server owes it
stops there (harness/http/oracles.py).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import h11

from harness.net.peer import PeerConnection

END_ACTIONS = ("none", "half-close", "close", "reset")
# When a request after the first goes out (then its pause): the previous response complete,
# the previous request sent, the previous response's head arrived (its body still to come).
AFTER = ("response", "sent", "head")
END_MOMENTS = ("after-responses", "after-send", "mid-headers", "mid-body", "mid-response")
# Rule-breaking client behaviours, the polite one first (see the module docstring).
RUDE = ("none", "after-close", "crlf")
FRAMINGS = ("none", "length", "chunked")  # a request's body: none, Content-Length, chunked
CLIENT_READS = ("normal", "slow", "stop")  # as bytes come, 512 bytes a poll, or not at all
EXPECT_TIMEOUT = 1.0  # curl waits 1 s for "100 Continue" before sending the body anyway


@dataclass(frozen=True)
class RequestSpec:
    method: str = "GET"
    framing: str = "none"  # FRAMINGS
    body_size: int = 0
    body_chunks: int = 1
    expect_continue: bool = False
    http10: bool = False
    close: bool = False
    pause: float = 0.0  # virtual seconds the client waits before sending this request
    after: str = "response"  # the moment the pause counts from (AFTER); unused when pipelined

    def body(self, cid: int, index: int) -> bytes:
        if self.framing == "none":
            return b""
        pattern = f"<c{cid}r{index}>".encode()
        return (pattern * (self.body_size // len(pattern) + 1))[: self.body_size]

    def wants_close(self) -> bool:
        return self.close or self.http10


@dataclass(frozen=True)
class ConnSpec:
    requests: tuple[RequestSpec, ...] = (RequestSpec(),)
    pipelined: bool = False
    end: str = "none"
    end_moment: str = "after-responses"
    end_request: int = 0  # which request mid-headers/mid-body/mid-response refers to
    end_delay: float = 0.0
    read: str = "normal"  # CLIENT_READS
    start: float = 0.0
    rude: str = "none"  # a rule-breaking behaviour (RUDE)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for request in data["requests"]:  # left out when default: older traces stay identical
            if request["after"] == "response":
                del request["after"]
        if self.rude == "none":
            del data["rude"]
        return data


# h11's events are immutable and validated when built: build each request's once per
# process (the parser only learns from it what it expects back), not once per run.
END_OF_MESSAGE = h11.EndOfMessage()


@functools.lru_cache(maxsize=4096)
def _request_event(method: str, target: str, headers: tuple[tuple[str, str], ...]) -> h11.Request:
    return h11.Request(method=method, target=target, headers=list(headers))


def request_path(cid: int, index: int) -> str:
    return f"/c{cid}/r{index}"


def encode_request(spec: RequestSpec, cid: int, index: int) -> tuple[bytes, bytes]:
    """The request's head and body exactly as they go on the wire."""
    body = spec.body(cid, index)
    version = "HTTP/1.0" if spec.http10 else "HTTP/1.1"
    lines = [f"{spec.method} {request_path(cid, index)} {version}", "Host: example.org"]
    if spec.framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif spec.framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    if spec.expect_continue and spec.framing != "none":
        lines.append("Expect: 100-continue")
    if spec.close:
        lines.append("Connection: close")
    elif spec.http10:
        pass  # HTTP/1.0 without keep-alive: the server closes after the response.
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if spec.framing == "chunked":
        n = max(1, spec.body_chunks)
        size = -(-len(body) // n) if body else 0
        parts = [body[i : i + size] for i in range(0, len(body), size)] if body else []
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return head, wire
    return head, body


@dataclass
class Response:
    status: int
    body: bytearray = field(default_factory=bytearray)  # grows in place: bodies reach 640 KB
    complete: bool = False
    informational: list[int] = field(default_factory=list)
    closes: bool = False  # the server said it closes after it (Connection: close, HTTP/1.0)


def says_close(event: Any) -> bool:
    """Whether a response head says the server closes the connection after it."""
    tokens = b",".join(bytes(v).lower() for k, v in event.headers
                       if bytes(k).lower() == b"connection")
    keep = b"keep-alive" in tokens
    return b"close" in tokens or (bytes(event.http_version) == b"1.0" and not keep)


class ClientScript:
    """Plays one ConnSpec on one peer connection and parses what comes back."""

    def __init__(self, peer: PeerConnection, spec: ConnSpec) -> None:
        self.peer = peer
        self.spec = spec
        self.cid = peer.conn.cid
        self.loop = peer.loop
        self.responses: list[Response] = []
        self.protocol_error: str | None = None
        self.protocol_error_at = 0  # the request whose response the error was in
        self.reset = False  # the server's RST arrived: what was unread is gone
        self.ended = False  # the client performed its end action
        self.request_offsets: list[tuple[int, int]] = []  # (head end, body end) in the up stream
        # The first request written at the client's own risk (it broke a rule before or
        # in writing it), None while the client kept the rules; see RUDE.
        self.rude_from: int | None = None
        self._sent = 0
        self._next = 0  # next request to send
        self.fully_sent = 0  # requests wholly on the wire (bodies held for 100 excluded)
        self._scheduled: set[int] = set()  # requests whose send is scheduled or done
        self._awaiting_continue: int | None = None
        self._parser = h11.Connection(h11.CLIENT)
        self._parsing = 0  # index of the request whose response is being parsed
        self._current: Response | None = None
        peer.on_data = self._on_data
        peer.on_eof = self._on_eof
        peer.on_reset = self._on_reset
        peer.read_limit = {"normal": None, "slow": 512, "stop": 0}[spec.read]
        self.loop.network.at(self.loop.time() + spec.start, self._begin)

    # -- sending --------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if not self.peer.closed and not self.ended:
            self.peer.send(data)
            self._sent += len(data)

    def _begin(self) -> None:
        if self.spec.pipelined:
            while self._next < len(self.spec.requests) and not self.ended:
                self._send_request(self._next, pipelined=True)
            if self.spec.end_moment == "after-send" and self._next >= len(self.spec.requests):
                self._schedule_end()
        else:
            self._send_next()  # one request after another: _sent_last ends after the last

    def _send_next(self) -> None:
        i = self._next
        if i >= len(self.spec.requests) or self.ended or i in self._scheduled:
            return
        self._scheduled.add(i)  # one send per request, whichever moment came first
        pause = self.spec.requests[i].pause
        if pause > 0:
            self.loop.network.at(self.loop.time() + pause, lambda: self._send_request(i))
        else:
            self._send_request(i)

    def _send_request(self, i: int, pipelined: bool = False) -> None:
        if self.ended or self.peer.closed or i != self._next:
            return
        self._next = i + 1
        spec = self.spec.requests[i]
        if self._parsing == i - 1 and self._current is not None:
            self.loop.record("client-overlap", f"client[c{self.cid}] request {i} while "
                             f"response {i - 1} streams")
        self._note_rude_request(i)
        head, body = encode_request(spec, self.cid, i)
        cut = self.spec.end_request == i and self.spec.end_moment in ("mid-headers", "mid-body")
        if cut and self.spec.end_moment == "mid-headers":
            self._write(head[: len(head) // 2])
            self._end_now()
            return
        self._write(head)
        self.request_offsets.append((self._sent, self._sent + len(body)))
        if cut:
            self._write(body[: len(body) // 2])
            self._end_now()
            return
        if spec.expect_continue and spec.framing != "none" and not pipelined:
            self._awaiting_continue = i
            self.loop.network.at(self.loop.time() + EXPECT_TIMEOUT, lambda: self._send_body(i))
            return  # "after-send" means after the body: _send_body schedules the end
        self._write(body + self._after_request(i))
        self._sent_last(i)

    def _note_rude_request(self, i: int) -> None:
        """Log (and remember) request i going out where RFC 9112, 9.6 forbids it."""
        if self.spec.rude != "after-close":
            return
        asked = any(r.wants_close() for r in self.spec.requests[:i])
        told = any(r.closes for r in self.responses)  # a head that said so has arrived
        if not (asked or told):
            return
        why = " and ".join(w for flag, w in ((asked, "a request that asked to close"),
                                             (told, "the server's Connection: close")) if flag)
        self._broke_rules(i, f"request {i} after {why}")

    def _after_request(self, i: int) -> bytes:
        """What the client writes right after request i's last byte: an empty line, in
        "crlf" mode (the request after it is then at the client's risk)."""
        if self.spec.rude != "crlf":
            return b""
        self._broke_rules(i + 1, f"an empty line after request {i}")
        return b"\r\n"

    def _broke_rules(self, at_risk: int, what: str) -> None:
        if self.rude_from is None or at_risk < self.rude_from:
            self.rude_from = at_risk
        self.loop.record("client-rude", f"client[c{self.cid}] {what} ({self.spec.rude})")

    def _sent_last(self, i: int) -> None:
        """Request i is on the wire, body and all: the moment "after-send" ends after,
        and the one a next request with after="sent" counts its pause from."""
        self.fully_sent = i + 1
        if not self.spec.pipelined and self.spec.end_moment == "after-send" and i == len(
            self.spec.requests
        ) - 1:
            self._schedule_end()
        self._send_overlapping("sent")

    def _send_overlapping(self, moment: str) -> None:
        """Send the next request early if its `after` is this moment, the previous request
        is wholly sent and its response not yet complete (complete: _parse sends it)."""
        i = self._next
        if (self.spec.pipelined or i >= len(self.spec.requests) or i != self.fully_sent
                or self.spec.requests[i].after != moment):
            return
        if moment == "head":  # the previous response has started and is still streaming
            ready = self._parsing == i - 1 and self._current is not None
        else:  # its response cannot be complete before the request is sent
            ready = self._parsing < i
        if ready:
            self._send_next()

    def _send_body(self, i: int) -> None:
        if self._awaiting_continue != i:
            return
        self._awaiting_continue = None
        self._write(encode_request(self.spec.requests[i], self.cid, i)[1] + self._after_request(i))
        self._sent_last(i)

    # -- ending -----------------------------------------------------------------
    def _schedule_end(self) -> None:
        if self.spec.end == "none":
            return
        self.loop.network.at(self.loop.time() + self.spec.end_delay, self._end_now)

    def _end_now(self) -> None:
        if self.ended or self.spec.end == "none":
            return
        self.ended = True
        action = self.spec.end
        if action == "half-close":
            self.peer.shutdown_write()
        elif action == "close":
            self.peer.close()
        elif action == "reset":
            self.peer.reset()

    # -- receiving --------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        if self.spec.end_moment == "mid-response" and self._parsing == self.spec.end_request:
            self._schedule_end()
        if self.protocol_error is not None:
            return
        try:
            self._parser.receive_data(data)
            self._parse()
        except h11.RemoteProtocolError as exc:
            self.protocol_error = f"response {self._parsing}: {exc}"
            self.protocol_error_at = self._parsing
            return
        self._send_overlapping("head")

    def _on_eof(self) -> None:
        if self.protocol_error is not None:
            return
        try:
            self._parser.receive_data(b"")
            self._parse()
        except h11.RemoteProtocolError as exc:
            self.protocol_error = f"response {self._parsing}: {exc}"
            self.protocol_error_at = self._parsing
        if self.spec.end_moment == "after-responses":
            self._schedule_end()

    def _on_reset(self) -> None:
        self.reset = True

    def _start_parse_cycle(self) -> None:
        i = self._parsing
        spec = self.spec.requests[i]
        headers = [("Host", "example.org")]
        if spec.framing == "length":
            headers.append(("Content-Length", str(spec.body_size)))
        elif spec.framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        if spec.wants_close():
            headers.append(("Connection", "close"))
        self._parser.send(_request_event(spec.method, request_path(self.cid, i),
                                         tuple(headers)))
        if spec.framing != "none":  # (the bytes are not wanted: passed through, not joined)
            self._parser.send_with_data_passthrough(h11.Data(data=spec.body(self.cid, i)))
        self._parser.send(END_OF_MESSAGE)

    def _fresh_parser(self) -> h11.Connection:
        """A client-role parser for the next cycle of a connection h11 considers over (a
        close was asked or announced), holding the bytes the old one had not parsed."""
        data, closed = self._parser.trailing_data
        parser = h11.Connection(h11.CLIENT)
        if data:  # (b"" is h11's end of stream)
            parser.receive_data(data)
        if closed:
            parser.receive_data(b"")
        return parser

    def _parse(self) -> None:
        while self._parsing < len(self.spec.requests):
            if self._parser.our_state is h11.IDLE:
                self._start_parse_cycle()
            event = self._parser.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 100 and self._awaiting_continue == self._parsing:
                    self._send_body(self._parsing)
                continue
            if isinstance(event, h11.Response):
                if self._awaiting_continue == self._parsing:
                    # A final answer before "100 Continue": the framing still owes the
                    # body, so send it (RFC 9110, 10.1.1) before reusing the connection.
                    self._send_body(self._parsing)
                self._current = Response(event.status_code, closes=says_close(event))
                self.responses.append(self._current)
            elif isinstance(event, h11.Data) and self._current is not None:
                self._current.body += event.data
            elif isinstance(event, h11.EndOfMessage) and self._current is not None:
                self._current.complete = True
                self._current = None
                self._parsing += 1
                if self._parser.our_state is h11.DONE and self._parser.their_state is h11.DONE:
                    self._parser.start_next_cycle()
                elif self.spec.rude == "after-close" and self._parsing < len(self.spec.requests):
                    self._parser = self._fresh_parser()  # it goes on regardless
                else:
                    return  # the server closes after this response
                if self._parsing >= len(self.spec.requests):
                    if self.spec.end_moment == "after-responses":
                        self._schedule_end()
                elif not self.spec.pipelined and self._next == self._parsing:
                    self._send_next()  # not sent early: its predecessor's response is done
