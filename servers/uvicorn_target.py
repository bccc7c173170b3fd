"""The uvicorn target: mounts the installed uvicorn release through its own public path.

Modern releases (0.7+) are built the way `uvicorn.Server.startup` builds them:
a `Config`, loaded, a `ServerState`, and `loop.create_server` with a factory
for `config.http_protocol_class`. Nothing inside the server is patched.
Logging config is off (`log_config=None`) so ERROR records reach the root
logger, where the oracles collect them.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

from harness.loop import SimLoop

PROTOCOLS = ("h11", "httptools")


class UvicornTarget:
    name = "uvicorn"

    def __init__(self, http: str = "h11") -> None:
        if http not in PROTOCOLS:
            raise ValueError(f"unknown uvicorn protocol {http!r}; use one of {PROTOCOLS}")
        self.http = http
        self.version = importlib.metadata.version("uvicorn")
        self.asgi = 3

    def settings_space(self) -> dict[str, list[Any]]:
        return {"timeout_keep_alive": [5, 1]}

    def describe(self) -> dict[str, Any]:
        return {"server": self.name, "version": self.version, "http": self.http}

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        from uvicorn.config import Config

        try:
            from uvicorn.server import ServerState
        except ImportError:  # before 0.12 it lived in uvicorn.main
            from uvicorn.main import ServerState  # type: ignore[no-redef]

        accepted = inspect.signature(Config.__init__).parameters
        options = {"app": app, "http": self.http, "ws": "none", "lifespan": "off",
                   "log_config": None, "access_log": False, **settings}
        config = Config(**{k: v for k, v in options.items() if k in accepted})
        config.load()
        state = ServerState()
        protocol_class: Any = config.http_protocol_class
        offered = {"config": config, "server_state": state, "app_state": {}}
        wanted = inspect.signature(protocol_class.__init__).parameters
        kwargs = {k: v for k, v in offered.items() if k in wanted}

        def factory() -> Any:
            return protocol_class(**kwargs)

        await loop.create_server(factory, *address)
