"""The uvicorn target: mounts whichever uvicorn release is importable, through its own path.

uvicorn has built its server three ways over its history; the adapter follows
the release's own construction, never patching its internals:

- 0.7+ (`Config.load` exists): a `Config`, loaded, a `ServerState` (in
  `uvicorn.main` before 0.12), and `loop.create_server` with a factory for
  `config.http_protocol_class`, as `Server.startup` does;
- before that: `Config.__init__` does the loading, the loop is passed in as
  `loop=`, and protocols take a `GlobalState`;
- releases before 0.7 call apps in the ASGI 2 convention (`asgi = 2`).

Logging: modern releases get `log_config=None` and old ones a logger at
ERROR, so ERROR records reach the root logger where the oracles collect them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from typing import Any

from packaging.version import Version

from harness.sim.loop import SimLoop

PROTOCOLS = ("h11", "httptools")
ASGI3_SINCE = Version("0.7.0")


def _accepted(func: Any, offered: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(func).parameters
    return {k: v for k, v in offered.items() if k in params}


class UvicornTarget:
    name = "uvicorn"

    def __init__(self, http: str = "h11") -> None:
        if http not in PROTOCOLS:
            raise ValueError(f"unknown uvicorn protocol {http!r}; use one of {PROTOCOLS}")
        self.http = http
        self.version = importlib.metadata.version("uvicorn")
        self.asgi = 3 if Version(self.version) >= ASGI3_SINCE else 2

    def settings_space(self) -> dict[str, list[Any]]:
        # Settings that change connection handling, defaults first (shrinking picks them).
        # limit_concurrency=2 makes a second connection get uvicorn's own 503
        return {"timeout_keep_alive": [5, 1], "limit_concurrency": [None, 2]}

    def describe(self) -> dict[str, Any]:
        return {"server": self.name, "version": self.version, "http": self.http}

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        from uvicorn.config import Config

        if hasattr(Config, "load"):
            config, state = self._modern(Config, app, settings)
        else:
            config, state = self._early(Config, app, settings, loop)
        protocol_class: Any = config.http_protocol_class
        offered = {"config": config, "server_state": state, "global_state": state,
                   "app_state": {}}
        kwargs = _accepted(protocol_class.__init__, offered)

        def factory() -> Any:
            return protocol_class(**kwargs)

        await loop.create_server(factory, *address)

    def _modern(self, config_class: Any, app: Any, settings: dict[str, Any]) -> tuple[Any, Any]:
        try:
            from uvicorn.server import ServerState
        except ImportError:  # before 0.12 it lived in uvicorn.main
            from uvicorn.main import ServerState  # type: ignore[no-redef]
        options = {"app": app, "http": self.http, "ws": "none", "lifespan": "off",
                   "log_config": None, "access_log": False, **settings}
        config = config_class(**_accepted(config_class.__init__, options))
        config.load()
        return config, ServerState()

    def _early(self, config_class: Any, app: Any, settings: dict[str, Any],
               loop: SimLoop) -> tuple[Any, Any]:
        state_class = importlib.import_module("uvicorn.global_state").GlobalState
        options = {"app": app, "http": self.http, "ws": "none", "loop": loop,
                   "log_level": "error", "access_log": False, "disable_lifespan": True,
                   "install_signal_handlers": False, **settings}
        config = config_class(**_accepted(config_class.__init__, options))
        return config, state_class()
