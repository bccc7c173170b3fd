"""The hypercorn target: its registry entry, and an adapter that mounts the importable
hypercorn release through its own per-connection class.

hypercorn's asyncio worker (`hypercorn.asyncio.run.worker_serve`) builds one
app wrapper, one `Config` and one `WorkerContext` per worker, then serves
each connection with `asyncio.start_server(callback)`, whose callback awaits
`TCPServer(app, loop, config, context, ..., reader, writer)`. The adapter does
exactly that on the simulated loop: `asyncio.start_server` builds the stock
`StreamReader`/`StreamWriter` pair over the simulated transport, and hypercorn's
own code runs unmodified from there (its HTTP/1.1 protocol on h11, its task
group, its idle and read timers). Nothing of hypercorn is patched.

Graceful shutdown is not a callable of hypercorn's: it is the `finally` block
of `worker_serve`, which cannot run here whole (it opens real sockets). The
adapter keeps what that block uses, as `worker_serve` keeps it (the listening
server, the `WorkerContext`, the task serving each connection, which its
callback records), and `shutdown` runs that block's steps in the release's own
order: mark the context terminated (idle connections close on
it), close the listener, then wait for the connection tasks up to
`graceful_timeout` (0.13+; before, sleep that long). The lifespan is not
mounted, so its shutdown is left out.

Logging: `Config.errorlog` takes a `logging.Logger`; the adapter hands it the
"hypercorn.error" logger, which propagates to the root logger where the
oracles collect ERROR records. The access log is off.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

from harness.errors import TargetFault
from harness.sim.loop import SimLoop
from harness.targets.adapter import ReleaseAdapter, accepted
from harness.targets.registry import KnownBug, Setting, TargetEntry, VersionRange

_SERVE = ("and asyncio.start_server with a callback awaiting TCPServer({}, reader, writer), as "
          "hypercorn.asyncio.run.worker_serve does")
VERSIONS = (
    VersionRange(">=0.17", "worker", "Config, ASGIWrapper(app), WorkerContext(None), a lifespan "
                 "state dict, " + _SERVE.format("app, loop, config, context, state")),
    VersionRange(">=0.16,<0.17", "worker", "Config, ASGIWrapper(app), WorkerContext(None), "
                 + _SERVE.format("app, loop, config, context")),
    VersionRange(">=0.14,<0.16", "worker", "Config, ASGIWrapper(app), WorkerContext(), "
                 + _SERVE.format("app, loop, config, context")),
    VersionRange(">=0.13,<0.14", "worker", "Config, the bare ASGI app, WorkerContext(), "
                 + _SERVE.format("app, loop, config, context")),
    VersionRange(">=0.10,<0.13", "worker", "Config, the bare ASGI app, "
                 + _SERVE.format("app, loop, config"),
                 shims=("worker_serve passes loop= to asyncio.start_server (and gather), "
                        "which Python 3.10 removed; the adapter makes the same call without "
                        "it",)),
)

# Each found by the general search and confirmed on real asyncio over loopback TCP (the
# closing notes of this change have the reproductions). Signatures name where the
# server waits: hypercorn's receive() is a bare asyncio.Queue.get.
KNOWN_BUGS = (
    KnownBug("new: http.disconnect is queued once, so any later receive() (after the "
             "response, or after another receive() took it) blocks forever",
             "", ("h11",), "keepalive", "lost-disconnect", "blocked at asyncio/queues.py",
             bench=("", "h11")),
    KnownBug("new: ... and a receive() already waiting when another receive() of the app "
             "takes that one disconnect waits forever, though the body had arrived",
             "", ("h11",), "", "receive-hang", "blocked at asyncio/queues.py"),
    KnownBug("new: a full app queue (max_app_queue_size) parks hypercorn's put forever: "
             "the connection's task leaks", "", ("h11",), "", "leak",
             "hypercorn/protocol/http_stream.py"),
    KnownBug("new: ... and the connection's task group waits for an app parked in that put",
             "", ("h11",), "", "leak", "in TaskGroup.__aexit__"),
    KnownBug("new: ... and the keep-alive timer, armed meanwhile, closes the connection "
             "under a request it has already received", "", ("h11",), "",
             "premature-close", "in TCPServer._initiate_server_close"),
    # Found by rule-breaking clients, which are owed the requests before their break: with
    # the put parked the connection neither answers the requests behind it nor closes.
    KnownBug("new: ... and, parked there, the connection never answers the requests "
             "pipelined behind that one", "", ("h11",), "", "response-integrity",
             "request before the rule break never answered"),
    # The same park seen by a polite client (harness/http/oracles.py, unanswered_failures):
    # two GETs, pipelined or the second sent once the first response is whole,
    # max_app_queue_size 1, the first app leaving its request unread. Its final send()
    # never returns, its response is whole on the wire, the second request is read and
    # never dispatched, and the connection stays open. On real asyncio over loopback TCP
    # 0.18.0 does the same both ways (no byte for r1, the connection open past
    # keep_alive_timeout; with the queue size 10 both are answered). The shrunk trace
    # fails on 0.12.0, 0.16.0, 0.17.0 and 0.18.0; 0.13.0 diverges and passes, yet a 240 s
    # search of 0.13.0 finds the hang on a trace of its own (a POST, then a GET pipelined
    # behind it, queue size 1, no deviation), so the range stays every release.
    KnownBug("new: ... and a polite client's next request on that connection (pipelined, "
             "or sent once the response was whole) is never answered either, on a "
             "connection kept open", "", ("h11",), "",
             "response-integrity", "request never answered on an open connection"),
    # The same park under a response whose end is the close (an HTTP/1.0 POST whose app
    # left its 7-byte body unread, max_app_queue_size 1): the app's final send() never
    # returns, so the connection never closes and the body never ends. On real asyncio
    # over loopback TCP 0.18.0 does the same (the whole body, `Connection: close`, then
    # no EOF for 8 s; with the queue size 10 the EOF comes). The shrunk trace fails on
    # 0.12.0, 0.14.3, 0.16.0, 0.17.0 and 0.18.0; 0.13.0 diverges and passes, yet the same
    # 240 s search finds it there too (three HTTP/1.0 GETs, the first app sleeping 0.5 s
    # without reading, queue size 1, no deviation).
    KnownBug("new: ... and a response whose end is the close (Connection: close, an "
             "HTTP/1.0 client's) never ends: the connection is never closed", "", ("h11",),
             "", "response-integrity", "response never delivered on an open connection"),
    KnownBug("new: ... nor closes when a request asked it to, or it said it would",
             "", ("h11",), "", "leak", "connection left open after a close was due"),
    # One mechanism, two ways in: h11 raises "Got data when expecting EOF" on any byte
    # after a request or response that ends the connection, and hypercorn answers with a
    # 400 in the app's place (or, with the response already streaming, closes under it).
    # - Found by the rule-breaking clients of keepalive and pipelining (harness/http/
    #   client.py, RUDE): a request written after one that asked to close, or an empty
    #   line after an HTTP/1.0 request. Every release from 0.10.2 to 0.18.0 fails the
    #   0.18.0 trace; on real asyncio over loopback TCP 0.18.0 answers such a pipelined
    #   pair with one 400, and cuts a streaming response short when the request comes
    #   meanwhile. hypercorn#203 is the same h11 error escaping on trio.
    # - Found by a polite client once closes were signed by their frames: a request
    #   pipelined behind the response that reaches keep_alive_max_requests. Bisected over
    #   releases to 0.17.0, which added `connection: close` to that response (upstream
    #   PR #227), so the close is hypercorn's own announcement.
    KnownBug("new: a byte after a request or response that ends the connection (a request "
             "written after one that asked to close, an empty line after an HTTP/1.0 request, "
             "or, from 0.17.0, a request pipelined behind the response that reaches "
             "keep_alive_max_requests) is data h11 refuses: hypercorn answers 400 in the "
             "app's place or closes under the response still streaming (the class of "
             "uvicorn#2238)", "", ("h11",), "", "premature-close",
             "in H11Protocol._handle_events"),
    # Bisected by replaying the shrunk traces (harness bisect): introduced in 0.17.0.
    KnownBug("new: a pipelined request's reader waits on can_read forever once the response "
             "before it fails (the app raised mid-response): the connection's task leaks",
             ">=0.17", ("h11",), "pipelining", "leak", "in EventWrapper.wait"),
    # The same wait, reached when a write fails (the client reset): 0.13.0 to 0.14.3.
    KnownBug("new: a pipelined request's reader waits on can_read forever after a write to "
             "a reset client fails: the connection's task leaks", ">=0.13,<0.14.4", ("h11",),
             "", "leak", "in EventWrapper.wait", fixed="0.14.4"),
    KnownBug("new: closing with unread request bytes resets the connection, and the RST "
             "discards the end of a finished response (no staged close, RFC 9112 9.6)",
             "", ("h11",), "", "response-integrity", "response lost to the server's reset"),
    # Graceful shutdown (the shutdown family, worker_serve's finally block):
    KnownBug("new: ... and past graceful_timeout the connection's task group waits for the "
             "app parked in that put: the graceful shutdown never completes", "", ("h11",),
             "", "shutdown-hang", "a server task waits at hypercorn/asyncio/task_group.py"),
    # The same hang named by the app's side: its receive() after http.disconnect was taken
    # (queued once, above) is what still waits. Found once the search drew at random: the
    # shrunk trace (pipelined GETs, max_app_queue_size 1) hangs, and with the queue size
    # set to 10 the same replay's shutdown returns at graceful_timeout, leaving only the
    # lost-disconnect. Not yet replayed on real asyncio over loopback TCP.
    KnownBug("new: ... or, with an app still waiting in a receive() hypercorn never "
             "answers, the graceful shutdown never completes either", "", ("h11",), "",
             "shutdown-hang",
             "HypercornTarget.shutdown (an app waiting in receive() at asyncio/queues.py"),
    # worker_serve records a connection's task when its callback starts, so a connection
    # accepted as the shutdown begins is not waited for: the exit cancels it (the client
    # gets a FIN for its request), and Python 3.11's asyncio.streams logs the cancelled
    # callback task as an error ("Exception in callback ... CancelledError"). Replayed:
    # 0.13.2, 0.17.3 and 0.18.0 fail alike.
    KnownBug("new: a connection accepted as the graceful shutdown begins is not waited for; "
             "the exit cancels it, and asyncio logs that as an error", "", ("h11",), "",
             "server-error", "asyncio: CancelledError"),
    # The idle-connection close on `context.terminated` races a request arriving at that
    # moment: the connection closes, and the app is still called for the request.
    # harness bisect: introduced in 0.14.0 (where the idle task waits on terminated).
    KnownBug("new: the shutdown's close of an idle connection races a request arriving "
             "then: the connection closes and the app still runs for it, its response lost",
             ">=0.14", ("h11",), "", "premature-close",
             "close() at hypercorn/asyncio/tcp_server.py"),
    # The five failures a survey of 0.10.2 to 0.18.0 left unexplained, each bisected over
    # hypercorn's commits by replaying its shrunk trace (see the closing notes of this
    # change); unlike those above, only the two can_read leaks are yet reproduced on real
    # asyncio over TCP. The keep-alive timeout's close is the same race in every
    # release: from 0.14.0 it waits a few iterations longer (wait_for) and closes in
    # _initiate_server_close; a request held two or three polls makes 0.14.0 to 0.18.0
    # fail alike, so it has no fixed release.
    KnownBug("new: the keep-alive timeout's close races a request arriving at its "
             "deadline: the connection closes with the request read, and the app still "
             "runs for it, its response lost", "", ("h11",), "", "premature-close",
             "close() at hypercorn/asyncio/tcp_server.py"),
    # Up to 0.12.0 protocol_send re-armed the keep-alive timer after every event, Closed
    # included; fixed by "Bugfix eof and keep alive handling" (3de9b5b), which arms it only
    # when the connection goes idle.
    KnownBug("new: a response sent after the connection closed re-arms the keep-alive timer "
             "(at exit, an app finishing its 500 after the connection's task group gave up): "
             "the timer's task is left pending", "<0.13", ("h11",), "", "leak",
             "in _call_later", fixed="0.13.0"),
    # From 0.11.0 each write awaited the cancelled timer, a yield between the 500's parts;
    # a pipelined byte there makes hypercorn close (write_eof) and the next write raises.
    # Gone in 0.13.0 with that yield (3de9b5b); RuntimeError is caught from 0.14.0.
    KnownBug("new: the app's response written after hypercorn closed the connection for a "
             "pipelined byte raises RuntimeError (write() after write_eof()) out of the "
             "app's task, never retrieved", ">=0.11,<0.13", ("h11",), "", "server-error",
             "asyncio: RuntimeError", fixed="0.13.0"),
    # The shutdown hang above before 0.13.0 ("Improve the graceful shutdown", adfba66),
    # when the grace period was a plain sleep: the same trace hangs the process's exit.
    KnownBug("new: before 0.13.0, whose graceful shutdown only slept, the process's exit "
             "waits for an app parked in a full app queue's put", "<0.13", ("h11",), "",
             "shutdown-hang",
             "process exit waits for a task that will not end, at hypercorn/asyncio/task_group"),
    # keep_alive_max_requests (0.16.0) first closed without `connection: close`: h11 then
    # still pauses on the pipelined bytes behind. Fixed by hypercorn PR #227 (db586db).
    # Reproduced on real asyncio over loopback TCP (three pipelined GETs, the limit 1):
    # 0.16.0 left the connection's task at can_read 5 times in 5; 0.17.3 and 0.18.0 none.
    KnownBug("new: past keep_alive_max_requests the connection closes without saying so, "
             "and the reader of a request pipelined behind waits on can_read forever: the "
             "connection's task leaks", ">=0.16,<0.17", ("h11",), "", "leak",
             "in EventWrapper.wait", fixed="0.17.0"),
    # Gone with 3de9b5b in 0.13.0, like the timer re-arming above. Reproduced on real
    # asyncio over loopback TCP (the trace leak-8915be5b: a 7-byte POST and an empty line
    # written at once, the app answering after 6 s, keep_alive_timeout 5): 0.12.0 closes
    # without the response and leaves the connection's task at can_read; without the
    # empty line it closes the same way but nothing is left; 0.13.0 and 0.13.2 answer.
    # tests/traces/hypercorn-0.12.0-late-app-after-keepalive.json has a pipelined GET
    # behind the request instead: the same leak (tests/test_registry_fixes.py).
    KnownBug("new: with bytes behind a request whose app answers after the keep-alive "
             "timeout (a stray empty line, or a pipelined request), the connection closes "
             "without the response and its reader waits on can_read forever", "<0.13",
             ("h11",), "", "leak", "in EventWrapper.wait", fixed="0.13.0"),
    # The same scenario without the empty line (found once the oracles judged a finished
    # response lost to any close, not only a rule-breaking client's): 0.10.2 to 0.12.0
    # close without it, on real asyncio too (EOF, no byte); 0.13.0 and 0.13.2 deliver it.
    KnownBug("new: an app answering after the keep-alive timeout is let finish, and the "
             "connection closes without a byte of its response", "<0.13", ("h11",), "",
             "response-integrity", "response never arrived whole", fixed="0.13.0"),
    KnownBug("hypercorn#50: an EOF that arrives with the request's data is never passed on, "
             "so receive() waits for a body the client cannot send",
             "<0.14.4", ("h11",), "disconnect", "lost-disconnect", "after client EOF",
             fixed="0.14.4"),
    # Not benchmarked: the once-only disconnect above also shows as "after client EOF"
    # (0.14.4 found it 3 times in 3 searches), so only its trace (bisect) tells them apart.
)

TARGET = TargetEntry(
    name="hypercorn",
    adapter="servers.hypercorn_target:HypercornTarget",
    distribution="hypercorn",
    protocols=("h11",),
    protocol_modules={"h11": "hypercorn.asyncio.tcp_server"},
    # Settings that change how hypercorn handles an HTTP/1.1 connection, defaults first.
    settings=(
        Setting("keep_alive_timeout", (5, 1), "keep-alive-timeout"),
        Setting("keep_alive_max_requests", (1000, 1, 2), "max-requests", versions=">=0.16"),
        Setting("read_timeout", (None, 1), "read-timeout", versions=">=0.12"),
        Setting("h11_max_incomplete_size", (16 * 1024, 512), "max-incomplete-size"),
        Setting("max_app_queue_size", (10, 1), "receive-queue-size"),
        # Drawn only in the shutdown family (harness/http/strategies.py).
        Setting("graceful_timeout", (3.0, 1.0), "graceful-timeout"),
    ),
    versions=VERSIONS,
    known_bugs=KNOWN_BUGS,
    oldest="0.10.2",
    example="0.17.3",
    description="hypercorn on asyncio, HTTP/1.1 over h11",
)


def _worker_context() -> Any:
    """A new WorkerContext as worker_serve builds one (0.13+), or None before 0.13."""
    try:
        from hypercorn.asyncio.worker_context import WorkerContext
    except ImportError:
        return None
    return WorkerContext(**accepted(WorkerContext.__init__, {"max_requests": None}))


class HypercornTarget(ReleaseAdapter):
    entry = TARGET

    def __init__(self, http: str | None = None) -> None:
        super().__init__(http)
        self._builds: dict[tuple[tuple[str, Any], ...], tuple[Any, Any]] = {}  # by settings
        self._run_app: Any = None  # this run's app, which `_forward` calls

    def _config(self, settings: dict[str, Any]) -> Any:
        from hypercorn.config import Config

        config = Config()
        for key, value in settings.items():
            if not hasattr(config, key):
                raise TargetFault(f"hypercorn {self.version} has no setting {key!r}; fix "
                                  "the settings table in servers/hypercorn_target.py")
            setattr(config, key, value)
        config.errorlog = logging.getLogger("hypercorn.error")  # propagates to the root
        config.accesslog = None
        if hasattr(config, "include_date_header"):  # 0.14+: no wall-clock bytes on the wire
            config.include_date_header = False
        return config

    @staticmethod
    def _wrapper() -> Any:
        """hypercorn's ASGIWrapper (0.14+), or None: before 0.14 TCPServer calls the app."""
        try:
            return importlib.import_module("hypercorn.app_wrappers").ASGIWrapper
        except ImportError:
            return None

    def _app(self, app: Any) -> Any:
        wrapper = self._wrapper()
        return app if wrapper is None else wrapper(app)

    def _built(self, app: Any, settings: dict[str, Any]) -> tuple[Any, Any]:
        """The Config and the app TCPServer calls, built once per settings where exact.

        hypercorn's worker builds its Config and wraps its app once, at startup; no
        release from 0.10.2 to 0.18.0 writes to its Config while serving, and the wrapper
        (0.14+) holds only the app. So this adapter builds them once per settings and
        hands each run's app in through `_forward`, a plain function returning that app's
        coroutine (no frame is added to any await stack). Before 0.14 TCPServer calls the
        app itself, which gets each run's app as before; only the Config is kept."""
        key = tuple(sorted(settings.items()))
        if key not in self._builds:
            wrapper = self._wrapper()
            self._builds[key] = (self._config(settings),
                                 None if wrapper is None else wrapper(self._forward))
        config, wrapped = self._builds[key]
        if wrapped is None:
            return config, app
        self._run_app = app
        return config, wrapped

    def _forward(self, scope: Any, receive: Any, send: Any) -> Any:
        return self._run_app(scope, receive, send)

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        from hypercorn.asyncio.tcp_server import TCPServer

        config, served = self._built(app, settings)
        offered = {"app": served, "loop": loop, "config": config, "state": {}}
        context = _worker_context()
        if context is not None:  # 0.13+: one per worker, shared by its connections
            offered["context"] = context
        kwargs = accepted(TCPServer.__init__, offered)
        self._settings, self._context = config, offered.get("context")
        self._tasks: list[asyncio.Task[Any]] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # worker_serve's callback records its task (no done-callback here: one more
            # callback would add a loop iteration, and a poll, to every run)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.append(task)
            await TCPServer(reader=reader, writer=writer, **kwargs)

        self._server = await asyncio.start_server(serve, *address)

    def stock_protocol(self, app: Any) -> Callable[[Any], tuple[Any, Any]]:
        """The floor's stock side (harness/tools/floor.py): per loop, what
        `asyncio.start_server` makes per connection in worker_serve, a StreamReaderProtocol
        whose callback awaits TCPServer, and what to await once the client has closed. The
        Config and the app wrapper are built once, as at startup, with this adapter's
        settings (no access log, no Date header); the WorkerContext (0.13+) per loop,
        since its events bind to the loop, which is per run there.

        Once its client has closed, the connection's task still waits for its idle task:
        `keep_alive_timeout` (5 s) or the worker's `terminated` event. The harness's run
        lets that timer fire in virtual time; a stock loop would wait 5 s of real time,
        so there the event ends the wait (one wake-up either way)."""
        from hypercorn.asyncio.tcp_server import TCPServer

        config, wrapped = self._config({}), self._app(app)

        def make(loop: Any) -> tuple[Any, Any]:
            offered = {"app": wrapped, "loop": loop, "config": config, "state": {}}
            end = None
            context = _worker_context()
            if context is not None:
                offered["context"] = context
                terminated: Any = getattr(context, "terminated", None)
                if hasattr(terminated, "set"):  # 0.14+: an event whose set() is awaited
                    end = terminated.set
            kwargs = accepted(TCPServer.__init__, offered)

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await TCPServer(reader=reader, writer=writer, **kwargs)

            reader = asyncio.StreamReader(loop=loop)
            return asyncio.StreamReaderProtocol(reader, serve, loop=loop), end

        return make

    def shutdown_unsupported(self) -> str | None:
        return None

    async def shutdown(self) -> None:
        """worker_serve's `finally` block, step by step as the release has it."""
        context, config = self._context, self._settings
        terminated = getattr(context, "terminated", None)
        if terminated is not None and hasattr(terminated, "set"):  # 0.14+: an event
            await terminated.set()
        elif context is not None:  # 0.13: a flag
            context.terminated = True
        self._server.close()
        await self._server.wait_closed()
        if context is None:  # before 0.13: the grace period is a plain sleep
            await asyncio.sleep(config.graceful_timeout)
            return
        tasks = [t for t in self._tasks if not t.done()]
        gathered = asyncio.gather(*tasks)
        try:
            await asyncio.wait_for(gathered, config.graceful_timeout)
        except TimeoutError:
            pass
        finally:
            gathered.exception()  # as worker_serve: raises if the gather was cancelled
