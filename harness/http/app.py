"""The ASGI app behaviour model, and the recorder that is the oracles' eyes.

An `AppBehaviour` is data: what one request's handler does, in a fixed order
whose steps the search switches on and sizes:

    yield n times / sleep; read the body (all, one message, or none);
    start a disconnect watcher (the Starlette pattern: a task that keeps
    calling receive() until http.disconnect); or, as a long poll, wait in
    receive() for http.disconnect and return without responding; raise
    before the response;
    send the response start; raise after it; send the body in chunks (of a
    few bytes, or up to 64 KiB, enough to fill the window) with yields
    between; sleep; call receive() again after the response.

The model's own loops over receive() (the body, the watcher, the long poll) never spin: a
server whose receive() answers at once with nothing new (an http.request after the
body's end, or an empty one that does not end it) would keep such a loop from ever
giving control back to the loop. Nothing can change while the loop does not run, so
after `SPIN_ANSWERS` such answers in a row with no loop iteration between call and
answer the model stops that loop and records a "spin" event, which the oracles report
as the stuck run a real app (Starlette's disconnect listener) would be. Without it the
wall-clock watchdog would stop the spin at whatever point the alarm found it, and the
run would depend on the machine's speed (README, Rule 2).

`RecordingApp` runs the behaviour for each request (chosen by its path,
/c<conn>/r<index>) and records every ASGI call with the virtual time and
the number of server reads of that connection so far: the oracles see only
these ASGI events and the wire (README, Rule 4). The app is ASGI 3; `asgi2`
wraps it in the ASGI 2 calling convention for releases older than uvicorn 0.7.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

from harness.sim.quiescence import Frame, short_path

READ_MODES = ("all", "one", "none")
RAISE_POINTS = ("never", "before-response", "after-start")

# Answers in a row that bring nothing new and come back without a loop iteration: a
# loop over receive() that got this many is spinning (one could be a stale message).
SPIN_ANSWERS = 3


# Marks an exception the server's receive() or send() raised into the app model, which
# passes it on as any app would; any other exception out of the model is its own fault.
SERVER_RAISED = "_harness_raised_by_the_server"


class AppRaised(Exception):
    """The exception a behaviour raises on purpose; a server logging it is expected."""


@dataclass(frozen=True)
class AppBehaviour:
    yields_before: int = 0
    sleep_before: float = 0.0
    read: str = "all"
    watch_disconnect: bool = False
    raise_at: str = "never"
    chunks: int = 1
    yields_between: int = 0
    sleep_after: float = 0.0
    receive_after: bool = False
    # Bytes per body chunk; 0: just the chunk's label (a few bytes). Large chunks fill
    # the network window and the transport's write buffer, so back-pressure is reached.
    chunk_size: int = 0
    # A long poll: after the body, call receive() until http.disconnect, then return
    # without a response (only the shutdown family draws it: nothing else ends it).
    wait_disconnect: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("chunk_size", "wait_disconnect"):
            if not data[name]:
                del data[name]  # traces written before the field existed stay identical
        return data

    def response_body(self, cid: int, index: int) -> list[bytes]:
        labels = [f"c{cid}r{index}:{k};".encode() for k in range(max(1, self.chunks))]
        if self.chunk_size <= 0:
            return labels
        return [label + b"." * max(0, self.chunk_size - len(label)) for label in labels]


class AsgiEvent(NamedTuple):
    """One ASGI interaction of one request, as the oracles see it. Immutable; a named
    tuple, built in C (see RecordingApp._note): a run notes every ASGI message."""

    time: float
    reads: int  # server reads (recv calls) on this connection before this event
    kind: str  # call | receive | received | send | sent | raised | returned | watch | spin
    message: dict[str, Any]
    call: int = 0  # which receive() call of this request, to pair receive/received
    seq: int = 0  # position among this request's events
    tick: int = 0  # position in the run's event log


class AsgiLine(tuple[str, str, int, dict[str, Any]]):
    """The event log's detail of one ASGI event, (label, kind, call, message summary):
    formatted only when the log is read (see harness/sim/eventlog.py's Entry)."""

    __slots__ = ()

    def __str__(self) -> str:
        label, kind, call, summary = self
        shown = str(summary.get("type", summary.get("path", "")))
        if "body_len" in summary:
            shown += f" {summary['body_len']}B more_body={summary.get('more_body', False)}"
        if "status" in summary:
            shown += f" {summary['status']}"
        if call:
            return f"{label} {kind} #{call} {shown}".rstrip()
        return f"{label} {kind} {shown}".rstrip()


@dataclass
class RequestRecord:
    cid: int
    index: int
    behaviour: AppBehaviour
    events: list[AsgiEvent] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)  # grows in place: bodies reach 300 KB
    body_complete: bool = False
    response_sent: bool = False  # the final body message was sent (send returned)
    receive_calls: int = 0
    idle_answers: int = 0  # answers in a row with nothing new and no loop iteration
    spun: bool = False  # the model stopped its receive() loop: it would have spun
    # receive() calls still waiting, and the task each waits in: at quiescence the
    # task's await stack is the hang's signature.
    waiting: dict[int, asyncio.Task[Any]] = field(default_factory=dict)
    # where each receive() that raised was waiting when it raised (its traceback's
    # frames, outermost first): a receive() a shutdown cancels is signed by that
    raised_at: dict[int, tuple[Frame, ...]] = field(default_factory=dict)
    label: str = ""  # request_label(cid, index), built once for every event it names

    def expected_body(self) -> bytes:
        """The whole body the app's behaviour answers this request with."""
        return b"".join(self.behaviour.response_body(self.cid, self.index))

    def snapshot(self, events: list[AsgiEvent]) -> RequestRecord:
        """A copy holding `events` and no waiting tasks (dataclasses.replace, without its
        per-call look at the fields: every field is an init field)."""
        copy = RequestRecord.__new__(RequestRecord)
        copy.__dict__.update(self.__dict__)
        copy.events = events
        copy.waiting = {}
        return copy


# cid -> (virtual time, server reads (recv calls) on that connection so far, the place in
# the run's event log of the next entry): what each event notes, asked in one call.
Stamp = Callable[[int], tuple[float, int, int]]


def callable_place(fn: Any) -> str:
    """Where a callable's code is ("uvicorn/protocols/http/h11.py in Cycle.receive"),
    through bound methods and partials; its type's name when it has no code."""
    while hasattr(fn, "func") and not hasattr(fn, "__code__"):
        fn = fn.func  # functools.partial
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return type(fn).__qualname__
    return f"{short_path(code.co_filename)} in {code.co_qualname}"


def request_label(cid: int, index: int) -> str:
    return f"/c{cid}/r{index}"


class RecordingApp:
    def __init__(
        self,
        behaviours: dict[tuple[int, int], AppBehaviour],
        stamp: Stamp,
        record: Callable[[str, object], None] = lambda kind, detail: None,
        iterations: Callable[[], int] = lambda: 0,
    ) -> None:
        self.stamp = stamp
        self.iterations = iterations  # the loop's iterations so far: did a call suspend?
        self.behaviours = behaviours
        self.record = record  # the run's event log: ASGI messages belong in it too
        self.records: dict[tuple[int, int], RequestRecord] = {}
        self.unknown_paths: list[str] = []
        self.faults: list[str] = []  # the app model's own errors, with their tracebacks

    def _note(self, rec: RequestRecord, kind: str, message: dict[str, Any], call: int = 0) -> None:
        summary = dict(message)  # a copy: the server may reuse its message dicts
        if "body" in summary:
            summary["body_len"] = len(summary.pop("body"))  # last, as before the copy
        # tuple.__new__: the named tuple's own __new__ is a Python function, one more frame
        time, reads, tick = self.stamp(rec.cid)
        rec.events.append(tuple.__new__(AsgiEvent, (
            time, reads, kind, summary, call, len(rec.events), tick)))
        self.record("asgi", tuple.__new__(AsgiLine, (rec.label, kind, call, summary)))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not part of these scenarios
        path = scope.get("path", "")
        try:
            _, c, r = path.split("/")
            key = (int(c[1:]), int(r[1:]))
        except ValueError:
            key = (-1, -1)
        behaviour = self.behaviours.get(key)
        if behaviour is None:
            self.unknown_paths.append(path)
            behaviour = AppBehaviour()
        rec = RequestRecord(key[0], key[1], behaviour, label=request_label(*key))
        self.records[key] = rec
        self._note(rec, "call", {"path": path})
        try:
            await self._run(rec, receive, send)
        except AppRaised:
            self._note(rec, "raised", {})
            raise
        except Exception as exc:
            # Not the scripted raise: the app model itself broke. The run is the harness's
            # fault and must not be judged as the server's (run_http raises it).
            if not getattr(exc, SERVER_RAISED, False):
                self.faults.append(f"{request_label(rec.cid, rec.index)}: "
                                   + "".join(traceback.format_exception(exc)).strip())
            raise
        self._note(rec, "returned", {})

    async def _receive(self, rec: RequestRecord, receive: Any) -> dict[str, Any]:
        rec.receive_calls += 1
        call = rec.receive_calls
        self._note(rec, "receive", {"after_response": rec.response_sent,
                                    "body_complete": rec.body_complete}, call)
        task = asyncio.current_task()
        if task is not None:
            rec.waiting[call] = task
        ended, iteration = rec.body_complete, self.iterations()
        try:
            message: dict[str, Any] = await receive()
        except BaseException as exc:  # cancelled, or the server raised: not a hang
            rec.waiting.pop(call, None)
            rec.raised_at[call] = _frames(exc.__traceback__)
            self._note(rec, "received", {"type": f"raised {type(exc).__name__}"}, call)
            _mark_server_raised(exc)
            raise
        rec.waiting.pop(call, None)
        self._note(rec, "received", message, call)
        kind = message.get("type")
        news = kind == "http.disconnect" or (kind == "http.request" and not ended and (
            bool(message.get("body")) or not message.get("more_body", False)))
        if kind == "http.request":
            rec.body += message.get("body", b"")
            if not message.get("more_body", False):
                rec.body_complete = True
        at_once = self.iterations() == iteration
        rec.idle_answers = rec.idle_answers + 1 if at_once and not news else 0
        if rec.idle_answers >= SPIN_ANSWERS and not rec.spun:
            rec.spun = True
            self._note(rec, "spin", {"receive": callable_place(receive),
                                     "answer": str(kind), "after_body": ended}, call)
        return message

    async def _send(self, rec: RequestRecord, send: Any, message: dict[str, Any]) -> None:
        self._note(rec, "send", message)
        try:
            await send(message)
        except BaseException as exc:  # the server refused it (closed, or a bad message)
            _mark_server_raised(exc)
            raise
        self._note(rec, "sent", message)

    async def _watch(self, rec: RequestRecord, receive: Any) -> None:
        try:
            while not rec.spun:
                message = await self._receive(rec, receive)
                if message.get("type") == "http.disconnect":
                    return
        except Exception as exc:
            # No task awaits the watcher, so it keeps no exception: one left on the task
            # would be reported when the garbage collector frees it, at a moment the
            # process's allocations decide. The server's raise is already recorded
            # ("received raised ...") for the oracles; the model's own is its fault.
            if not getattr(exc, SERVER_RAISED, False):
                self.faults.append(f"{request_label(rec.cid, rec.index)} (watcher): "
                                   + "".join(traceback.format_exception(exc)).strip())

    async def _run(self, rec: RequestRecord, receive: Any, send: Any) -> None:
        b = rec.behaviour
        for _ in range(b.yields_before):
            await asyncio.sleep(0)
        if b.sleep_before:
            await asyncio.sleep(b.sleep_before)
        if b.read == "one":
            await self._receive(rec, receive)
        elif b.read == "all":
            while not rec.body_complete and not rec.spun:
                message = await self._receive(rec, receive)
                if message.get("type") != "http.request":
                    break
        if b.watch_disconnect:
            self._note(rec, "watch", {})
            asyncio.get_running_loop().create_task(self._watch(rec, receive))
        if b.wait_disconnect:
            while not rec.spun and (
                    await self._receive(rec, receive)).get("type") != "http.disconnect":
                pass
            return
        if b.raise_at == "before-response":
            raise AppRaised("raised before the response, on purpose")
        await self._send(rec, send, {"type": "http.response.start", "status": 200,
                                     "headers": [(b"content-type", b"text/plain")]})
        if b.raise_at == "after-start":
            raise AppRaised("raised after the response started, on purpose")
        parts = b.response_body(rec.cid, rec.index)
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            await self._send(rec, send, {"type": "http.response.body", "body": part,
                                         "more_body": not last})
            if not last:
                for _ in range(b.yields_between):
                    await asyncio.sleep(0)
        rec.response_sent = True
        if b.sleep_after:
            await asyncio.sleep(b.sleep_after)
        if b.receive_after:
            await self._receive(rec, receive)


def asgi2(app: Callable[[dict[str, Any], Any, Any], Awaitable[None]]) -> Any:
    """The same app in the ASGI 2 convention: app(scope) -> instance(receive, send)."""

    def instantiate(scope: dict[str, Any]) -> Any:
        async def instance(receive: Any, send: Any) -> None:
            await app(scope, receive, send)

        return instance

    return instantiate


def _frames(tb: TracebackType | None) -> tuple[Frame, ...]:
    out = []
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append(Frame(short_path(code.co_filename), tb.tb_lineno, code.co_qualname))
        tb = tb.tb_next
    return tuple(out)


def _mark_server_raised(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError):  # an exception type without a __dict__
        setattr(exc, SERVER_RAISED, True)
