"""A failure the oracles report, and where a blocked await waits (shared by oracles.py and
shutdown_oracle.py).

A failure's `signature` is what makes two runs "the same bug"; for anything blocked
it is the await stack's frame inside the server, found here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.sim.quiescence import Frame

# Frames that are never the answer to "where is the server waiting": the app model,
# and the async libraries the wait bottoms out in.
APP_FRAMES = ("harness/http/app.py", "asyncio/", "anyio/", "trio/")


@dataclass(frozen=True)
class Failure:
    kind: str
    signature: str
    message: str
    request: str = ""

    def key(self) -> tuple[str, str]:
        return (self.kind, self.signature)


def server_frame(stack: tuple[Frame, ...]) -> str:
    """The deepest frame outside the app and asyncio: where the server is waiting."""
    outside = [f for f in stack if not f.file.startswith(APP_FRAMES)]
    if outside:
        return str(outside[-1])
    return str(stack[-1]) if stack else "?"


def receive_frame(stack: tuple[Frame, ...]) -> str:
    """Where a blocked receive() waits: the deepest server frame inside the receive
    callable (below the app model's last frame), or, when the server's receive is a
    bare library call (hypercorn's is an asyncio.Queue's get), that call's frame. The
    frames above the app model (who called the app) are not where it waits, and
    whether the app awaited receive() in its own task or a helper's must not change
    the signature."""
    last_app = max((i for i, f in enumerate(stack) if f.file.startswith(APP_FRAMES[0])),
                   default=-1)
    inside = stack[last_app + 1:]
    return server_frame(inside) if inside else server_frame(stack)
