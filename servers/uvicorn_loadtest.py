"""A real uvicorn serving one of a few ASGI apps on an inherited socket, for make
bench's load test (harness/tools/loadtest.py; the registry entry names this module).

Run as a script by loadtest.py with the release's environment first on
PYTHONPATH, so it imports only the standard library and that uvicorn:

    python -P servers/uvicorn_loadtest.py FD HTTP APP VERSION

FD is a listening TCP socket the parent bound on 127.0.0.1 (port 0); HTTP is
uvicorn's --http; APP names an entry of APPS; VERSION is the uvicorn release
expected ("" for whichever imports). The server runs on the stock asyncio loop,
the loop the harness simulates, with logging at warning, no lifespan and no
websockets.

Every app answers GET /ready at once (the parent's readiness probe); every
other request goes to the named app. The apps are written as ASGI 2 (a
function of the scope returning the coroutine), which every uvicorn release
runs: 0.3.x knows no other interface.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Receive, Send], Awaitable[None]]

_TASKS: set[asyncio.Task[None]] = set()  # disconnect watchers, kept from the collector


async def _read_request(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _respond(send: Send, *parts: bytes, yield_between: bool = False) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(sum(map(len, parts))).encode())]})
    for i, part in enumerate(parts):
        if i and yield_between:
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": part,
                    "more_body": i < len(parts) - 1})


async def _watch_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def plain(receive: Receive, send: Send) -> None:
    """A correct app: read the request, answer it."""
    await _read_request(receive)
    await _respond(send, b"ok")


async def silent(receive: Receive, send: Send) -> None:
    """Never answers: waits for the client to leave (a hang any load test must see)."""
    await _watch_disconnect(receive)


def watcher_app(yield_between: bool) -> App:
    """uvicorn #748's trigger on h11 (reports/uvicorn-0.11.3-h11): a yield first, then read
    the request, start a task that watches for http.disconnect, and send the body in two
    parts. With a yield between the parts the watcher's receive() is waiting when the
    response completes; up to 0.12.2 it stays waiting on the connection's one wake-up
    event, takes the next request's wake-up, and that request's receive() (after its own
    first yield) waits forever. Without that yield (one await fewer) the watcher starts
    after the response and returns at once: nothing hangs."""

    async def app(receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)
        await _read_request(receive)
        task = asyncio.ensure_future(_watch_disconnect(receive))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        await _respond(send, b"part 1,", b"part 2", yield_between=yield_between)

    return app


def after_response_app(yield_first: bool) -> App:
    """uvicorn #241's trigger (0.2.21 to 0.3.26): after its response the app calls
    receive() for the http.disconnect it is owed; there receive() waits on the
    connection's wake-up event until more input comes. A client never sees that wait
    itself: it sees the next request on the connection hang, when that request's app
    yields once before reading (yield_first) and so lets the waiting receive() take the
    wake-up first. Without that yield the new request reads first and nothing hangs."""

    async def app(receive: Receive, send: Send) -> None:
        if yield_first:
            await asyncio.sleep(0)
        await _read_request(receive)
        await _respond(send, b"ok")
        await receive()

    return app


APPS: dict[str, App] = {
    "plain": plain,
    "silent": silent,
    "uvicorn#748": watcher_app(yield_between=True),
    "uvicorn#748 one await fewer": watcher_app(yield_between=False),
    "uvicorn#241": after_response_app(yield_first=True),
    "uvicorn#241 one await fewer": after_response_app(yield_first=False),
}


def asgi2(app: App) -> Callable[[dict[str, Any]], App]:
    def instance(scope: dict[str, Any]) -> App:
        if scope["type"] != "http":
            raise ValueError(f"no {scope['type']} here")  # lifespan is off; say so if not
        if scope["path"] == "/ready":
            return plain
        return app

    return instance


def serve(sock: socket.socket, http: str, app: App) -> None:
    """Run uvicorn on `sock` until killed, in whichever way this release takes a socket."""
    # Looked up, not imported by name: each release has its own signatures (Any here).
    Config: Any = importlib.import_module("uvicorn.config").Config
    Server: Any = importlib.import_module("uvicorn.main").Server
    params = inspect.signature(Config).parameters
    # ws "none": the websockets of an old release's time does not import on Python 3.11.
    options: dict[str, Any] = {"http": http, "ws": "none", "loop": "asyncio",
                               "log_level": "warning", "access_log": False}
    if "lifespan" in params:
        options["lifespan"] = "off"
    else:  # 0.3.x
        options["disable_lifespan"] = True
    if "interface" in params:
        options["interface"] = "asgi2"
    config = Config(asgi2(app), **options)
    if "sockets" in inspect.signature(Server.run).parameters:
        Server(config).run(sockets=[sock])
        return
    # 0.3.x: Server takes the socket from its config (its own `fd` option would wrap it
    # as a Unix socket).
    config.sock = sock
    Server(config, importlib.import_module("uvicorn.global_state").GlobalState()).run()


def main(argv: list[str]) -> int:
    fd, http, name, version = int(argv[0]), argv[1], argv[2], argv[3]
    import uvicorn

    have = getattr(uvicorn, "__version__", "?")
    if version and have != version:
        print(f"error: expected uvicorn {version} but imported {have} from "
              f"{uvicorn.__file__}", file=sys.stderr)
        return 2
    serve(socket.socket(fileno=fd), http, APPS[name])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
