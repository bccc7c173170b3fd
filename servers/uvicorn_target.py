"""The uvicorn target: its registry entry, and an adapter that mounts whichever uvicorn
release is importable through that release's own construction path.

uvicorn has built its server three ways over its history (`VERSIONS` below);
the adapter follows the release's own construction, never patching its
internals. Logging: modern releases get `log_config=None` and old ones a
logger at ERROR, so ERROR records reach the root logger where the oracles
collect them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

from harness.errors import TargetFault
from harness.sim.loop import SimLoop
from harness.targets.adapter import InsertionOrderedSet, ReleaseAdapter, accepted, parameters
from harness.targets.registry import (
    KnownBug,
    Setting,
    TargetEntry,
    Unrunnable,
    VersionRange,
)

# Where each path begins was read from uvicorn's tags: Config.load and main.ServerState
# arrive in 0.3.32 (global_state.py goes), load() stops making its own loop in 0.4.4,
# ASGI 3 arrives in 0.7.0 and uvicorn.server in 0.12.0. Before 0.3.26 there is no
# uvicorn.config: each release's own main module builds its protocol (read from the
# releases' sources): from 0.2.21 run() hands every connection shared connections/tasks/
# state objects and its settings; from 0.2.2 to 0.2.20 a Server (or run()) gives each
# connection only the app, loop and logger; 0.1.x serves httptools alone, as its run.py's
# UvicornServer does.
_OLD_MODULES = (("h11", "uvicorn.protocols.http.h11"),
                ("httptools", "uvicorn.protocols.http.httptools"))
_PROTOCOL_CLASS = ("the class main.HTTP_PROTOCOLS names for the protocol, and "
                   "loop.create_server with a factory calling it with ")
_SERVER = (_PROTOCOL_CLASS + "the app, loop and a 'uvicorn' logger only, as "
           "Server.create_protocol does (modules h11.py and httptools.py)")
# A set of connections or tasks iterates by memory address, which no replay repeats.
_ORDERED = ("server_state.connections and .tasks iterate in insertion order, one order "
            "the real set can take, so a shutdown walking them replays",)
VERSIONS = (
    VersionRange(">=0.12", "modern",
                 "Config(...).load(), uvicorn.server.Server(config).server_state, and "
                 "loop.create_server with a factory for config.http_protocol_class, as "
                 "Server.startup does; shutdown: that Server's shutdown()", shims=_ORDERED),
    VersionRange(">=0.7,<0.12", "modern",
                 "Config(...).load(), uvicorn.main.Server(config).server_state, and "
                 "loop.create_server with a factory for config.http_protocol_class; "
                 "shutdown: that Server's shutdown()", shims=_ORDERED),
    VersionRange(">=0.4.4,<0.7", "modern",
                 "Config(...).load(), uvicorn.main.Server(config).server_state, and "
                 "loop.create_server with a factory for config.http_protocol_class; apps "
                 "are called in the ASGI 2 convention; shutdown: that Server's shutdown()",
                 asgi=2, shims=_ORDERED),
    # Until 0.4.3, Config.load() sets up a new event loop unless handed one.
    VersionRange(">=0.3.32,<0.4.4,!=0.4.0", "modern+loop",
                 "Config(..., loop=loop).load() (handed the running loop, as load() would "
                 "otherwise make its own), uvicorn.main.Server(config).server_state, and "
                 "loop.create_server with a factory for config.http_protocol_class; ASGI 2 "
                 "apps; shutdown (from 0.4.0): that Server's shutdown()", asgi=2,
                 shims=_ORDERED),
    VersionRange(">=0.3.26,<0.3.32", "early",
                 "Config(..., loop=loop) loads itself; protocols take a GlobalState; apps "
                 "are called in the ASGI 2 convention", asgi=2),
    VersionRange(">=0.2.21,<0.3.26", "run",
                 _PROTOCOL_CLASS + "the app, loop, a 'uvicorn' logger and the connections, "
                 "tasks and state objects run() shares among connections, plus the settings "
                 "it takes; ASGI 2 apps", asgi=2,
                 # 0.2.21-0.2.22's protocol modules subclass websockets.protocol.
                 # WebSocketCommonProtocol at import (0.3.x only in the websockets
                 # protocol, left off here); websockets 9 moved it, 8.1 is the last.
                 pins=(("websockets", "websockets==8.1"),)),
    VersionRange(">=0.2.17,<0.2.21", "server",
                 _PROTOCOL_CLASS + "the app, loop and a 'uvicorn' logger only, as "
                 "Server.create_protocol (run() from 0.2.20) does; ASGI 2 apps", asgi=2,
                 pins=(("websockets", "websockets==8.1"),)),
    VersionRange(">=0.2.16,<0.2.17", "server", _SERVER + "; ASGI 2 apps", asgi=2,
                 protocol_modules=_OLD_MODULES, pins=(("websockets", "websockets==8.1"),)),
    VersionRange(">=0.2.3,<0.2.16", "server", _SERVER + "; ASGI 2 apps", asgi=2,
                 protocol_modules=_OLD_MODULES),
    # It declares websockets==3.3, which installs but uses asyncio.coroutine (gone in
    # Python 3.11); 8.1 is the newest with the API it imports.
    VersionRange(">=0.2.2,<0.2.3", "server", _SERVER + "; ASGI 2 apps", asgi=2,
                 protocol_modules=_OLD_MODULES, pins=(("websockets", "websockets==8.1"),)),
    VersionRange(">=0.1,<0.2", "partial",
                 "loop.create_server with functools.partial(protocols.http.HttpProtocol, "
                 "consumer=app, loop=loop), as run.py's UvicornServer.create_server does; "
                 "httptools only; ASGI 2 apps", asgi=2,
                 protocol_modules=(("httptools", "uvicorn.protocols.http"),)),
)

UNRUNNABLE = (
    # Said of the range, not of "it": a version asked for here may not exist at all.
    Unrunnable("<0.1", "releases before 0.1.0 predate ASGI's scope/receive/send: their "
               "protocol calls consumer(message, channels) with a channels-style reply "
               "channel, an interface no harness app speaks"),
    Unrunnable(">=0.2.0,<0.2.2", "its sdist (the only file on PyPI) does not build: "
               "setup.py reads README.md, which the sdist lacks (FileNotFoundError)"),
    # Read from the tags: #144 gave HttpToolsProtocol.__init__ proxy_headers and root_path
    # but not its __slots__; #148 (0.2.21) dropped the slots.
    Unrunnable("==0.2.20", "its HttpToolsProtocol sets attributes its __slots__ lack "
               "(proxy_headers), so every connection fails with AttributeError before it is "
               "served", http=("httptools",)),
    # uvicorn/lifespan/ has no __init__.py in 0.4.0, so setup.py's package search leaves
    # it out (0.4.1 adds the file).
    Unrunnable("==0.4.0", "the published release lacks the uvicorn.lifespan package that "
               "uvicorn.config imports (ModuleNotFoundError)"),
)

KNOWN_BUGS = (
    # 0.1.x never sends http.disconnect: its receive() reads a queue that only the body
    # fills, and connection_lost only drops the transport. Found by the search on 0.1.1
    # (pending at the response's end, after the response, after a close; and, as a hang,
    # a receive() after the response whose body the client sends on seeing it, which
    # the closed cycle drops). The 0.2 rewrite (#84) brought the message; bisect over
    # releases says "between 0.1.1 and 0.2.2" (0.2.0 and 0.2.1 do not build).
    KnownBug("uvicorn 0.1.x: no http.disconnect at all (it came with the 0.2 rewrite, #84)",
             "<0.2", ("httptools",), "", "lost-disconnect", "in RequestResponseCycle.receive",
             fixed="0.2.0"),
    KnownBug("uvicorn 0.1.x: ... so a receive() whose body arrives after the response waits "
             "forever", "<0.2", ("httptools",), "", "receive-hang",
             "in RequestResponseCycle.receive", fixed="0.2.0"),
    # Found on 0.1.1: a response that ends the connection (HTTP/1.0, Connection: close)
    # completes after the client reset it, and on_response_complete calls close() on the
    # transport connection_lost set to None. Gone with the 0.2 rewrite (bisect: between
    # 0.1.1 and 0.2.2); no upstream issue names it.
    KnownBug("new: uvicorn 0.1.x closes the transport connection_lost already dropped "
             "(AttributeError on None)", "<0.2", ("httptools",), "", "server-error",
             "AttributeError", fixed="0.2.0"),
    # Upstream PR #126 (Quart's reading of ASGI) asked for both of the next two; #147
    # and #151 did them, in 0.2.21, which bisect names for each on h11 (on httptools it
    # says "between 0.2.19 and 0.2.21": 0.2.20's httptools protocol cannot run). The
    # search finds them on 0.2.2, 0.2.10, 0.2.15 and 0.2.20 within a few runs.
    KnownBug("uvicorn#126: receive() after the response raises RuntimeError instead of "
             "returning http.disconnect (fixed by #147)", ">=0.2,<0.2.21",
             ("h11", "httptools"), "", "lost-disconnect", "returned raised RuntimeError",
             fixed="0.2.21"),
    KnownBug("uvicorn#126: ... and the app passing that RuntimeError on is logged as an "
             "exception in the application", ">=0.2,<0.2.21", ("h11", "httptools"), "",
             "server-error", ": RuntimeError", fixed="0.2.21"),
    KnownBug("uvicorn#126: ... and closes the connection under the next keep-alive or "
             "pipelined request", ">=0.2,<0.2.21", ("h11", "httptools"), "",
             "premature-close", "in RequestResponseCycle.run_asgi", fixed="0.2.21"),
    KnownBug("uvicorn#126: after the body's end receive() answers at once with another "
             "empty http.request, so a disconnect watcher spins (fixed by #151)",
             ">=0.2,<0.2.21", ("h11", "httptools"), "", "stuck",
             "receive() answers at once with nothing new, after the body's end",
             fixed="0.2.21"),
    # A send() waiting for the transport to drain (the client stopped reading) is never
    # woken when the connection is lost: found by the search on 0.2.10 and 0.3.25, h11
    # and httptools. Bisect names 0.7.0 on both protocols (from 0.3.25), the release of
    # PR #340 for issue #336. From 0.2.21 to 0.3.2 the response timeout (#156, dropped
    # by #189 in 0.3.3) cancels the stuck task after 60 s and logs it instead (the 0.2.10
    # trace does so on 0.2.21, 0.2.22, 0.3.1 and 0.3.2, and leaks again on 0.3.3).
    KnownBug("uvicorn#336: a send() waiting for the transport to drain is never woken "
             "when the connection is lost", ">=0.2,<0.2.21", ("h11", "httptools"), "",
             "leak", "in RequestResponseCycle.send", fixed="0.7.0"),
    KnownBug("uvicorn#336: ... (there in FlowControl.drain)", ">=0.2.21,<0.7.0",
             ("h11", "httptools"), "", "leak", "in FlowControl.drain", fixed="0.7.0"),
    KnownBug("uvicorn#336: ... until the response timeout cancels it, logging the timeout",
             ">=0.2.21,<0.3.3", ("h11", "httptools"), "", "server-error",
             "Task exceeded response timeout", fixed="0.7.0"),
    KnownBug("uvicorn#336: ... and the CancelledError", ">=0.2.21,<0.3.3",
             ("h11", "httptools"), "", "server-error", ": CancelledError", fixed="0.7.0"),
    # The same fix, found by `pytest scenarios/` (flow) on 0.2.10 h11: the client closes
    # while send() waits for the drain; the close flushes the buffer, which wakes the
    # send, and it writes to the h11 connection connection_lost had closed. The trace
    # fails from 0.2.2 to 0.6.1 on h11 (httptools passes); bisect names 0.7.0.
    KnownBug("uvicorn#336: ... and on h11 a send() the close's last flush wakes writes to "
             "the closed connection (LocalProtocolError)", ">=0.2,<0.7.0", ("h11",), "",
             "server-error", "LocalProtocolError", fixed="0.7.0"),
    # "ASGI callable returned without starting/completing response." logged when the
    # client left and send() had quietly dropped the response. Found on 0.2.10 (h11 and
    # httptools); bisect names 0.2.12 (PR #124), then 0.2.21 as bringing it back (#149
    # logs before checking `disconnected`) and 0.3.7 as fixing it again (PR #208).
    KnownBug("uvicorn#124: an error is logged when the client disconnected before the "
             "response", ">=0.2,<0.2.12", ("h11", "httptools"), "", "server-error",
             "ASGI callable returned without", fixed="0.2.12"),
    KnownBug("uvicorn#124: ... again from 0.2.21 (#149) until PR #208",
             ">=0.2.21,<0.3.7", ("h11", "httptools"), "", "server-error",
             "ASGI callable returned without", fixed="0.3.7"),
    # Lower bounds of the bugs below, read from the tags: the keep-alive timer of #1637
    # arrives with #152, and receive() waiting on the event after the response (#241,
    # and #748's way into the hang on h11) with #147/#151, all in 0.2.21; before it
    # 0.2.x raises there (#126 above), and 0.1.x reads a queue per request (above).
    # Searched as pipelining and keepalive require, 0.1.1 and 0.2.10 find none of them.
    KnownBug("uvicorn#241: receive() after the response blocks until more input",
             ">=0.2.21,<0.3.27", ("h11", "httptools"), "keepalive", "lost-disconnect",
             "receive() after the response", bench=("0.3.26", "h11"), fixed="0.3.27"),
    # The same fix (0.3.27, bisected) also answers a receive() after an http.disconnect.
    KnownBug("uvicorn#241: ... and a receive() after an earlier http.disconnect blocks",
             ">=0.2.21,<0.3.27", ("h11", "httptools"), "", "lost-disconnect",
             "receive() after http.disconnect", fixed="0.3.27"),
    # The same fix again, found on 0.3.25 (h11 and httptools): the client half-closed,
    # one receive() got http.disconnect and the next, after the server's close, waits
    # on the event forever; bisect names 0.3.27.
    KnownBug("uvicorn#241: ... and a receive() after the server closed blocks",
             ">=0.2.21,<0.3.27", ("h11", "httptools"), "", "lost-disconnect",
             "receive() after close", fixed="0.3.27"),
    # Found by the search on 0.3.25 httptools (keepalive, a POST with Expect:
    # 100-continue): "100 Continue" goes out without the blank line that ends it, so the
    # client reads the final status line as a header. In every httptools release from
    # 0.2.22 (#166, which added 100-continue) to 0.3.25; bisect names 0.3.26, the release
    # of PR #279 "Fix 100 continue responses" (issue #250). keepalive finds it within 36
    # runs on 0.2.22 and 0.3.25 (5 seeds each), not in 500 on 0.3.26 (3 seeds).
    KnownBug("uvicorn#250: httptools sends '100 Continue' without its blank line",
             ">=0.2.22,<0.3.26", ("httptools",), "keepalive", "response-integrity",
             "malformed response", fixed="0.3.26"),
    KnownBug("uvicorn#748: request cycles share one wake-up event; receive() hangs",
             ">=0.2.21,<0.12.3", ("h11",), "pipelining", "receive-hang",
             "in RequestResponseCycle.receive", bench=("0.11.3", "h11", "httptools"),
             fixed="0.12.3"),
    # On httptools the keep-alive timer (#1637 below) closes the connection under the
    # pipelined request that hangs, so pipelining finds a premature close there, never
    # the hang (0 of 2 searches of 20 s on 0.11.3); flow and disconnect find the hang,
    # but near the end of a 5 s search (4 of 6), too rarely to require it.
    KnownBug("uvicorn#748: ... on httptools, where pipelining shows it as #1637's close",
             ">=0.2,<0.12.3", ("httptools",), "", "receive-hang",
             "in RequestResponseCycle.receive", fixed="0.12.3"),
    # The same fix again, found on 0.2.10 (h11 and httptools): a disconnect watcher's
    # receive() waits when the response completes, and the body the client sends on
    # seeing the response (Expect: 100-continue, never answered) is dropped as late, so
    # nothing wakes it. The traces fail on every release up to 0.12.2 and pass on 0.12.3
    # (bisected on both protocols), which sets the cycle's event as the response ends.
    # The entries above cover httptools and, from 0.2.21, h11; this one h11 before that.
    KnownBug("uvicorn#748: ... and a receive() waiting as the response completes, whose body "
             "then arrives and is dropped, is never woken", ">=0.2,<0.2.21", ("h11",), "",
             "receive-hang", "in RequestResponseCycle.receive", fixed="0.12.3"),
    # The same fix (0.12.3, bisected): a receive() pending when the response ends is
    # woken only when a timer or new input comes, or never if none does (0.12.3 sets the
    # cycle's event as the response completes; a trace where it never returns fails on
    # 0.12.2, in h11 and httptools, and passes on 0.12.3).
    KnownBug("uvicorn#748: ... and a receive() pending when the response ends gets "
             "http.disconnect only after time passes, or never", ">=0.2,<0.12.3",
             ("h11", "httptools"), "", "lost-disconnect",
             "receive() pending at the response's end", fixed="0.12.3"),
    # uvicorn#1637 (fixed by PR #2243 in 0.27.1, which harness bisect names): the
    # keep-alive timer is armed after a response even when a pipelined request is already
    # being served, fires under it, fails in h11 and closes the connection. httptools has
    # the same timer: two pipelined requests, the second app sleeping 6 s, are closed at
    # 5 s on httptools in 0.3.26, 0.8.4, 0.11.3, 0.12.3 and 0.27.0, and served on 0.27.1
    # and 0.54.0, as on h11.
    # Signed by where the close happens: on httptools the timer's own handler closes; on
    # h11 the handler's ConnectionClosed breaks h11's state, the app's next send() raises
    # inside the server, and run_asgi closes (with the LocalProtocolError below).
    KnownBug("uvicorn#1637: keep-alive timeout fires under a pipelined request",
             ">=0.2.21,<0.27.1", ("httptools",), "pipelining", "premature-close",
             "in HttpToolsProtocol.timeout_keep_alive_handler", fixed="0.27.1"),
    KnownBug("uvicorn#1637: ... on h11, where the send() it breaks makes run_asgi close",
             ">=0.2.21,<0.27.1", ("h11",), "pipelining", "premature-close",
             "in RequestResponseCycle.run_asgi", fixed="0.27.1"),
    KnownBug("uvicorn#1637: ... and the keep-alive handler raises LocalProtocolError",
             ">=0.2.21,<0.27.1", ("h11",), "pipelining", "server-error", "LocalProtocolError",
             fixed="0.27.1"),
    # The same failed handler leaves its connection open with h11 in ERROR, and the app's
    # next receive() raising: a graceful shutdown then waits for that connection forever
    # (0.4.6 to 0.27.0 fail the shrunk trace, 0.27.1 passes it).
    KnownBug("uvicorn#1637: ... and a graceful shutdown then waits forever for the "
             "connection that handler left open", "<0.27.1", ("h11",), "", "shutdown-hang",
             "(a connection left open with a request unanswered", fixed="0.27.1"),
    KnownBug("uvicorn#1637: ... where the app's receive() raises LocalProtocolError",
             "<0.27.1", ("h11",), "", "lost-disconnect",
             "receive() during shutdown: raised LocalProtocolError", fixed="0.27.1"),
    KnownBug("new: closing with unread request bytes resets the connection, and the RST "
             "discards the end of a finished response (no staged close, RFC 9112 9.6; the "
             "class of gunicorn#1644 and uvicorn#3047)", "", ("h11", "httptools"), "",
             "response-integrity", "response lost to the server's reset"),
    # Found by the search on 0.11.3 (concurrency and keepalive families): a request line
    # split inside its URL reaches httptools' on_url in pieces, the protocol keeps only the
    # last, and the app is called with a cut-off path. `harness bisect` over releases
    # names 0.17.5 (0.17.4 fails the trace, 0.17.5 passes), the release of upstream's PR
    # #1263, "Fix case where url is fragmented in httptools protocol" (issue #1262).
    KnownBug("uvicorn#1262: a request line split inside the URL gives the app a cut-off "
             "path (httptools keeps only the last on_url piece)", "<0.17.5", ("httptools",),
             "", "response-integrity", "response for a request the app never saw",
             fixed="0.17.5"),
    # The same split, where the later piece is no URL on its own ("c1/r0"): on_url's
    # parse_url raises, and the request is dropped: 0.1.x logs the parser's error from
    # data_received (found on 0.1.1), later releases log "Invalid HTTP request received"
    # and close under the request (a trace of 0.1.1 does so on 0.2.10, 0.3.25, 0.11.3
    # and 0.17.4, and passes on 0.17.5).
    KnownBug("uvicorn#1262: ... or, when the later piece is no URL alone, drops the request",
             "<0.17.5", ("httptools",), "", "premature-close", "data_received",
             fixed="0.17.5"),
    # Releases before 0.2.5 do not catch the parser's error at all (a 0.2.2 trace
    # bisects to 0.2.5, "Catch invalid http requests", PR #110), so asyncio logs it.
    KnownBug("uvicorn#1262: ... which releases before 0.2.5 log as the parser's error",
             "<0.2.5", ("httptools",), "", "server-error", "HttpParserCallbackError",
             fixed="0.2.5"),
    # Found by the pipelining family on 0.2.2: before 0.2.7 ("Support HTTP pipelining",
    # commit f257ea34) the httptools protocol starts an app for every request it parses,
    # so pipelined requests run at once and their responses go out in the order the apps
    # answer, interleaved or out of order. Three 0.2.2 traces (an earlier app that
    # raised, a wrong status, a response never whole) bisect to 0.2.7; h11 passes them.
    KnownBug("uvicorn before 0.2.7 (httptools): no pipelining: pipelined requests run at "
             "once and their responses go out in the order the apps answer", "<0.2.7",
             ("httptools",), "pipelining", "response-integrity", "", fixed="0.2.7"),
    # Graceful shutdown (the shutdown family). uvicorn's Server.shutdown() tells each
    # connection to finish, but a receive() already waiting (or called later) is never
    # answered: an app that waits on the client before it responds (a long poll, SSE)
    # keeps the shutdown waiting forever unless timeout_graceful_shutdown (0.22+) cuts it.
    # uvicorn#251 described it in 2018; 0.43.0 answered http.disconnect at shutdown
    # (PR #2829) and 0.45.0 reverted that on purpose (PR #2913): harness bisect names
    # 0.43.0 (fixed) and 0.45.0 (back) on the long-poll trace.
    KnownBug("uvicorn#251: a receive() waiting when the graceful shutdown begins never gets "
             "http.disconnect, so a long poll holds the shutdown forever (answered in 0.43.0 "
             "by PR #2829, reverted by design in 0.45.0 by PR #2913)",
             ">=0.4,!=0.43.*,!=0.44.*", ("h11", "httptools"), "shutdown", "shutdown-hang",
             "(an app waiting in receive() at uvicorn/protocols/http/"),
    KnownBug("uvicorn#251: ... and that receive() is left waiting", ">=0.4,!=0.43.*,!=0.44.*",
             ("h11", "httptools"), "", "lost-disconnect",
             "receive() during shutdown: blocked at uvicorn/protocols/http/"),
    # In 0.43.0 and 0.44.x the shutdown's http.disconnect reaches only the connections
    # shutdown() walks: one accepted as the shutdown begins (the accept race below) is
    # never told, serves on, and a long poll on it holds the shutdown as before.
    KnownBug("new (0.43.0-0.44.x): a connection accepted as the shutdown begins never hears "
             "of it, so PR #2829's http.disconnect misses a long poll on it",
             ">=0.43,<0.45", ("h11", "httptools"), "", "shutdown-hang",
             "(an app waiting in receive() at uvicorn/protocols/http/"),
    KnownBug("new (0.43.0-0.44.x): ... and that long poll's receive() is left waiting",
             ">=0.43,<0.45", ("h11", "httptools"), "", "lost-disconnect",
             "receive() during shutdown: blocked at uvicorn/protocols/http/"),
    # 0.43.0 and 0.44.x answer the long poll http.disconnect, then log the app's return
    # without a response as an error and send the client a 500.
    KnownBug("uvicorn#2829 (0.43.0-0.44.x): an app that returns after the shutdown's "
             "http.disconnect is logged as an error and answered 500",
             ">=0.43,<0.45", ("h11", "httptools"), "", "server-error",
             "ASGI callable returned without starting response", fixed="0.45.0"),
    # Two behaviours together, each real on its own (0.4.6 to 0.54.0, h11 and httptools,
    # replayed): a connection accepted as the shutdown begins (its connection_made not
    # yet run) is not in server_state.connections when shutdown() walks them, so it is
    # never told to close; and a request body that arrives after its response (the app
    # did not read it, Expect: 100-continue) cancels the keep-alive timer in
    # data_received, which nothing re-arms (the class of the unmerged PR #1192). The
    # shutdown then waits for that idle connection forever.
    KnownBug("new: a connection accepted as the graceful shutdown begins is never told to "
             "close, and a body arriving after its response cancels the keep-alive timer "
             "for good: the shutdown waits for the idle connection forever", ">=0.4",
             ("h11", "httptools"), "", "shutdown-hang", "(an idle connection left open)"),
    # Found through the shutdown family's long poll (0.22.0, then 0.54.0 h11 and httptools,
    # with or without a shutdown): the client sends its next request while the long poll
    # waits, uvicorn pauses reading (the request must wait its turn), and the client's
    # reset then arrives on a socket nobody reads; connection_lost never comes, so the
    # long poll never hears http.disconnect (and a graceful shutdown waits for it).
    KnownBug("new: once uvicorn pauses reading for a request sent while another is served, "
             "a client reset goes unseen: a receive() waiting for http.disconnect never gets "
             "it", "", ("h11", "httptools"), "", "lost-disconnect",
             "receive() after close: blocked at uvicorn/protocols/http/"),
    # Found by the rule-breaking clients of keepalive and pipelining (harness/http/client.py,
    # RUDE), not written for: a request after one that asked to close. h11 raises "Got data
    # when expecting EOF" on its bytes and uvicorn answers with a 400 in the place of the
    # close request's response, closing under its app. `harness bisect` over releases names
    # 0.30.4 for a request pipelined in the same write, the release of PR #2375 (issue
    # #2238), which stops reading events at the close request's end; bytes that arrive
    # later still reach the 400 on 0.54.0 (the entries after this one; on real asyncio over
    # loopback TCP, a request written 0.1 s after the close request gets the 400 in its
    # place, and one written while its response streams cuts that response after its
    # first chunk, with h11's LocalProtocolError logged). 0.2.22, 0.3.26 and 0.11.3 fail
    # both traces, closing inside handle_events itself.
    KnownBug("uvicorn#2238: a request pipelined after one that asked to close gets a 400 "
             "in that request's place, and the connection closes under its app",
             "<0.30.4", ("h11",), "", "premature-close", "in H11Protocol.handle_events",
             fixed="0.30.4"),
    KnownBug("new: ... and on every release, a request that arrives once the close request "
             "was read (written while its response streams, or later) still gets that 400",
             "", ("h11",), "", "premature-close", "in H11Protocol.send_400_response"),
    KnownBug("new: ... or, with the response under way, h11 refuses the 400 inside "
             "data_received (LocalProtocolError) and asyncio aborts the transport",
             "", ("h11",), "", "premature-close",
             "protocol.data_received() call failed (LocalProtocolError)"),
    KnownBug("new: ... and asyncio logs that LocalProtocolError", "", ("h11",), "",
             "server-error", "asyncio: LocalProtocolError"),
    KnownBug("uvicorn#2238: ... and the app's next send() raises LocalProtocolError, logged "
             "as an exception in the ASGI application", "", ("h11",), "", "server-error",
             "uvicorn.error: LocalProtocolError"),
    # PR #2375's first form, in 0.30.4 alone (bisected both ways; PR #2408 fixed it in
    # 0.30.5): it stops at the close request's end before marking its body complete.
    KnownBug("uvicorn 0.30.4: the app's receive() for a request that asked to close (or an "
             "HTTP/1.0 one) never returns", "==0.30.4", ("h11",), "", "receive-hang",
             "in RequestResponseCycle.receive", fixed="0.30.5"),
    # The httptools side, an upgrade skew: newer httptools refuse data after a close (0.9.0
    # does; 0.6.1 and 0.6.2, what 0.30.3 and 0.32.0 had in their time, pass the same
    # traces), and uvicorn answers that with the same 400. With httptools 0.9.0, bisected
    # to 0.32.1 (0.32.0 fails a pipelined trace and one written while the response
    # streams), the release of PR #2488, which turns on lenient_data_after_close.
    KnownBug("uvicorn#2238 (httptools, PR #2488): a request after one that asked to close "
             "gets a 400 in that request's place, and the connection closes under its app",
             "<0.32.1", ("httptools",), "", "premature-close",
             "in HttpToolsProtocol.data_received", fixed="0.32.1"),
    KnownBug("uvicorn#2238 (httptools): ... or the 400 lands inside that request's response",
             "<0.32.1", ("httptools",), "", "response-integrity", "malformed response",
             fixed="0.32.1"),
    # Found by the after-close client on 0.11.3: httptools releases before 0.13.4 judge
    # keep-alive by the HTTP version and the response's own headers only, so a request's
    # `Connection: close` is ignored and the connection stays open until the keep-alive
    # timer; any byte the client writes next cancels that timer in data_received, and
    # the connection is never closed. Bisected to 0.13.4, the release of PR #721, which
    # copies the request's `Connection: close` into the response (issue #720).
    KnownBug("uvicorn#720: httptools ignores a request's Connection: close; only the keep-"
             "alive timer closes, and a byte written after the close request cancels it, so "
             "the connection is never closed", "<0.13.4", ("httptools",), "", "leak",
             "connection left open after a close was due", fixed="0.13.4"),
    KnownBug("new: httptools connection_lost wakes only the newest pipelined cycle, so an "
             "earlier cycle's pending receive() never gets http.disconnect",
             ">=0.12.3", ("httptools",), "pipelining", "lost-disconnect",
             "httptools_impl.py", bench=("", "httptools")),
    # The same connection_lost before 0.12.3, where the cycles share one event: the earlier
    # cycle is woken but not marked disconnected, reads an empty http.request and waits
    # again. One trace (the first response fails mid-way under a pipelined request) fails
    # so on 0.3.26, 0.8.4, 0.11.3 and 0.12.2, and as above on 0.12.3 and 0.54.0.
    KnownBug("new: ... and before 0.12.3 that cycle is woken but not marked disconnected, "
             "reads an empty http.request and then waits forever", ">=0.2,<0.12.3",
             ("httptools",), "", "lost-disconnect",
             "receive() after close: blocked at uvicorn/protocols/http/httptools_impl.py"),
    KnownBug("new: ... and a graceful shutdown then waits forever for that app's task",
             ">=0.4", ("httptools",), "", "shutdown-hang", "after its connection closed"),
)

TARGET = TargetEntry(
    name="uvicorn",
    adapter="servers.uvicorn_target:UvicornTarget",
    distribution="uvicorn",
    protocols=("h11", "httptools"),
    protocol_modules={"h11": "uvicorn.protocols.http.h11_impl",
                      "httptools": "uvicorn.protocols.http.httptools_impl"},
    # Settings that change connection handling, defaults first (shrinking picks them).
    # limit_concurrency=2 makes a second connection get uvicorn's own 503.
    settings=(
        Setting("timeout_keep_alive", (5, 1), "keep-alive-timeout", versions=">=0.2.21"),
        Setting("limit_concurrency", (None, 2), "concurrency-limit", versions=">=0.2.21"),
        # h11's own default first; 64 bytes holds a whole GET head but not a POST's, so a
        # POST head that arrives in pieces is refused (400) mid-connection.
        Setting("h11_max_incomplete_event_size", (16 * 1024, 64), "max-incomplete-size",
                versions=">=0.18"),
        # Drawn only in the shutdown family (harness/http/strategies.py): it acts nowhere else.
        Setting("timeout_graceful_shutdown", (None, 1), "graceful-timeout",
                versions=">=0.22"),
    ),
    versions=VERSIONS,
    known_bugs=KNOWN_BUGS,
    unrunnable=UNRUNNABLE,
    example="0.11.3",
    description="uvicorn, on asyncio, with its h11 and httptools protocols",
    # make bench's load test (harness/tools/loadtest.py) serves a release with the apps of
    # this script, each bug's trigger named by the bug's label
    extra={"loadtest": "servers.uvicorn_loadtest"},
)


class UvicornTarget(ReleaseAdapter):
    entry = TARGET
    _server: Any = None  # the release's own Server, whose server_state the protocols share
    _listener: Any = None
    _app: Any = None  # this run's app, which the reused Configs' stand-in calls

    def __init__(self, http: str | None = None) -> None:
        super().__init__(http)
        self._configs: dict[tuple[tuple[str, Any], ...], Any] = {}  # by settings

    def stock_protocol(self, app: Any) -> Callable[[Any], tuple[Any, Any]]:
        """The floor's stock side (harness/tools/floor.py): per loop, the installed
        release's protocol for one connection as its Server builds it, with `app` and the
        Config loaded once, as at startup; nothing to await once the client has closed."""
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        config = Config(**self._options(app, {}))
        config.load()
        state = ServerState()
        protocol_class: Any = config.http_protocol_class
        return lambda loop: (protocol_class(config=config, server_state=state, app_state={},
                                            _loop=loop), None)

    def shutdown_unsupported(self) -> str | None:
        if not self.range.path.startswith("modern"):
            return (f"releases before 0.3.32 shut down inside their run loop ({self.version} "
                    "has no Server.shutdown to call)")
        if not hasattr(self._server_class(), "shutdown"):
            return f"uvicorn {self.version}'s Server has no shutdown() (it arrives in 0.4.0)"
        return None

    async def shutdown(self) -> None:
        """The release's own Server.shutdown(), on the Server whose server_state every
        connection shares, with what its run()/serve() sets before calling it: the
        listening servers, the lifespan (off), and before 0.12 its logger and loop."""
        server = self._server
        if server is None:
            raise TargetFault("uvicorn's shutdown was called before mount")
        config = server.config
        server.servers = [self._listener]
        server.lifespan = config.lifespan_class(config)
        if hasattr(config, "logger_instance"):  # 0.4 to 0.11: Server.run sets these
            server.logger = config.logger_instance
        if hasattr(config, "loop_instance"):
            server.loop = config.loop_instance
        await server.shutdown()

    @staticmethod
    def _server_class() -> Any:
        try:
            from uvicorn.server import Server
        except ImportError:  # before 0.12 it lived in uvicorn.main
            from uvicorn.main import Server  # type: ignore[attr-defined]
        return Server

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        path = self.range.path
        if path in ("run", "server", "partial"):
            await loop.create_server(self._before_config(path, app, settings, loop),
                                     *address)
            return
        from uvicorn.config import Config

        modern = path.startswith("modern")
        if modern != hasattr(Config, "load"):
            raise TargetFault(f"uvicorn {self.version} does not build as {self.range.path!r} "
                              "says (Config.load); fix VERSIONS in servers/uvicorn_target.py")
        if modern:
            config, state = self._modern(Config, app, settings, loop)
        else:
            config, state = self._early(Config, app, settings, loop)
        protocol_class: Any = config.http_protocol_class
        offered = {"config": config, "server_state": state, "global_state": state,
                   "app_state": {}}
        kwargs = accepted(protocol_class.__init__, offered)

        def factory() -> Any:
            return protocol_class(**kwargs)

        self._listener = await loop.create_server(factory, *address)

    def _before_config(self, path: str, app: Any, settings: dict[str, Any],
                       loop: SimLoop) -> Callable[[], Any]:
        """The protocol factory of a release without uvicorn.config, as its own main
        module (run.py for 0.1.x) builds it."""
        if path == "partial":
            http = importlib.import_module("uvicorn.protocols.http")
            return functools.partial(http.HttpProtocol, consumer=app, loop=loop)
        main = importlib.import_module("uvicorn.main")
        named = main.HTTP_PROTOCOLS[self.http]
        if isinstance(named, str):  # "module:Class" from 0.2.17, resolved as run() does
            module, _, attr = named.partition(":")
            named = getattr(importlib.import_module(module), attr)
        protocol_class: Any = named
        logger = logging.getLogger("uvicorn")
        logger.setLevel(logging.ERROR)  # run() sets the level given; ERROR reaches the root
        offered: dict[str, Any] = {"app": app, "loop": loop, "logger": logger}
        if path == "run":
            offered |= {"connections": set(), "tasks": set(), "state": {"total_requests": 0},
                        "ws_protocol_class": None, "access_log": False, **settings}
        kwargs = accepted(protocol_class.__init__, offered)
        if set(offered) - set(kwargs) - {"ws_protocol_class", "access_log"}:
            raise TargetFault(f"uvicorn {self.version}'s {protocol_class.__name__} does not "
                              f"take {sorted(set(offered) - set(kwargs))}, as the {path!r} "
                              "path says; fix VERSIONS in servers/uvicorn_target.py")
        return functools.partial(protocol_class, **kwargs)

    def _modern(self, config_class: Any, app: Any, settings: dict[str, Any],
                loop: SimLoop) -> tuple[Any, Any]:
        config = self._config(config_class, app, settings, loop)
        # The release's own Server: its server_state is what the protocols share and what
        # its shutdown() walks (before 0.4 it has no shutdown, but the same state).
        self._server = self._server_class()(config)
        state = self._server.server_state
        state.connections, state.tasks = InsertionOrderedSet(), InsertionOrderedSet()
        return config, state

    def _config(self, config_class: Any, app: Any, settings: dict[str, Any],
                loop: SimLoop) -> Any:
        """The loaded Config, built once per settings where that is exact.

        A server builds and loads its Config once and serves every connection with it;
        so does this adapter, across runs, when the Config holds nothing of a run: its
        app is `_forward`, a plain function that hands each call to this run's app
        (returning that app's coroutine, so no frame is added to any await stack), and
        the interface is named (asgi3) so load() does not inspect the stand-in. No
        protocol or Server writes to its Config; everything a run changes (the Server,
        its server_state, app_state) is built per run. A release that binds the loop
        into its Config (modern+loop), calls apps in ASGI 2, or has no `interface`
        builds its Config per run, as before."""
        options = self._options(app, settings)
        if self.range.path == "modern+loop":
            options["loop"] = loop
        reusable = (self.range.path == "modern" and self.asgi == 3
                    and "interface" in parameters(config_class.__init__))
        if not reusable:
            config = config_class(**accepted(config_class.__init__, options))
            config.load()
            return config
        self._app = app
        key = tuple(sorted(settings.items()))
        config = self._configs.get(key)
        if config is None:
            options |= {"app": self._forward, "interface": "asgi3"}
            config = config_class(**accepted(config_class.__init__, options))
            config.load()
            self._configs[key] = config
        return config

    def _options(self, app: Any, settings: dict[str, Any]) -> dict[str, Any]:
        """The Config's options for this protocol, quiet (no lifespan, websockets or
        logging set-up), with `settings` on top: the harness's run and the floor's stock
        side alike."""
        return {"app": app, "http": self.http, "ws": "none", "lifespan": "off",
                "log_config": None, "access_log": False, **settings}

    def _forward(self, scope: Any, receive: Any, send: Any) -> Any:
        return self._app(scope, receive, send)

    def _early(self, config_class: Any, app: Any, settings: dict[str, Any],
               loop: SimLoop) -> tuple[Any, Any]:
        state_class = importlib.import_module("uvicorn.global_state").GlobalState
        options = {"app": app, "http": self.http, "ws": "none", "loop": loop,
                   "log_level": "error", "access_log": False, "disable_lifespan": True,
                   "install_signal_handlers": False, **settings}
        config = config_class(**accepted(config_class.__init__, options))
        return config, state_class()
