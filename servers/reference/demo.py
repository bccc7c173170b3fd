"""A small ASGI app to try the reference server with: `harness serve servers.reference.demo:app`.

GET / says hello; POST /echo answers with the request body; GET /wait/<seconds>
answers after a pause (to watch a graceful shutdown let it finish).
"""

from __future__ import annotations

from typing import Any

import anyio


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan and websockets are not served by the reference server
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/echo":
        reply = body
    elif path.startswith("/wait/"):
        await anyio.sleep(float(path.removeprefix("/wait/") or 0))
        reply = b"waited\n"
    else:
        reply = b"hello from the reference server\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})
