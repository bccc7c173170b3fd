"""The reference server on a real TCP socket, with graceful shutdown.

Each accepted connection is served by `serve_connection` (connection.py); the
`Shutdown` they share lets `serve` close idle connections at once and busy
ones after their response.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc

from servers.reference.config import App, Config, Shutdown
from servers.reference.connection import serve_connection


async def serve(app: App, host: str = "127.0.0.1", port: int = 8000,
                config: Config | None = None,
                ready: Callable[[int], None] | None = None,
                stop: anyio.Event | None = None) -> None:
    """Serve on a real TCP socket; `ready(port)` once listening.

    When `stop` is set the shutdown is graceful: the listener closes, idle
    connections close, in-flight requests get `shutdown_grace` seconds to finish
    (their responses say `Connection: close`), then whatever is left is cancelled."""
    config = config or Config()
    shutdown = Shutdown()
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await serve_connection(stream, app, config, shutdown)

    async with anyio.create_task_group() as connections:
        async with listener, anyio.create_task_group() as accepting:
            accepting.start_soon(listener.serve, handle, connections)
            if ready is not None:
                ready(listener.extra(anyio.abc.SocketAttribute.local_port))
            await (stop.wait() if stop is not None else anyio.sleep_forever())
            accepting.cancel_scope.cancel()
        shutdown.begin()
        if config.shutdown_grace is not None:
            connections.cancel_scope.deadline = anyio.current_time() + config.shutdown_grace
