"""`harness serve MODULE:APP`: the reference server on a real socket, asyncio or trio.

The first SIGINT or SIGTERM begins a graceful shutdown (no new connections,
idle ones closed, in-flight requests finish within `--shutdown-grace`); a
second one stops at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import signal
import sys
from typing import Any

import anyio

from harness.errors import InputError
from servers.reference.config import App, Config
from servers.reference.server import serve

BACKENDS = ("asyncio", "trio")


class ServeError(InputError):
    pass


def load_app(spec: str) -> App:
    """The ASGI app named by MODULE:ATTRIBUTE, importable from the current folder."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ServeError(f"app {spec!r} is not MODULE:ATTRIBUTE; "
                         "write e.g. servers.reference.demo:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ServeError(f"cannot import {module_name!r} ({exc}); run from the folder that "
                         "holds it or add that folder to PYTHONPATH") from None
    except Exception as exc:
        raise ServeError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}; "
                         "fix the module") from None
    except SystemExit as exc:  # the module ended the process as it was imported
        raise ServeError(f"importing {module_name!r} called sys.exit({exc.code!r}); an app's "
                         "module must not exit when imported") from None
    app = getattr(module, attribute, None)
    if app is None:
        raise ServeError(f"module {module_name!r} has no attribute {attribute!r}; "
                         "name the ASGI app after the colon")
    if not callable(app):
        raise ServeError(f"{spec!r} is a {type(app).__name__}, not an ASGI app (a callable "
                         "taking scope, receive, send)")
    return app  # type: ignore[no-any-return]


def run(app: App, host: str, port: int, backend: str, config: Config) -> None:
    def say(text: str) -> None:
        print(text, flush=True)

    async def main() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for received in signals:
                        if stop.is_set():
                            say("second signal: stopping now")
                            tg.cancel_scope.cancel()
                            return
                        say(f"{signal.Signals(received).name}: shutting down gracefully "
                            f"(up to {config.shutdown_grace:g}s; again to stop now)")
                        stop.set()

            tg.start_soon(on_signals)
            try:
                await serve(app, host, port, config, stop=stop, ready=lambda p: say(
                    f"reference server on http://{host}:{p} ({backend}); Ctrl-C to stop"))
            except OSError as exc:
                raise ServeError(f"cannot listen on {host}:{port}: "
                                 f"{exc.strerror or exc}; choose another --host or --port"
                                 ) from None
            tg.cancel_scope.cancel()
        say("stopped")

    try:
        anyio.run(main, backend=backend)
    except BaseExceptionGroup as group:  # the task group wraps what main() raised
        error: BaseException | None = group.subgroup(ServeError)
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        if error is not None:
            raise error from None
        raise


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be 0..65535, got {args.port}")
    # (flag, value, whether it serves, what it must be); NaN fails no `<` test, hence
    # isfinite for the seconds (argparse's int() makes no NaN of the byte counts).
    for flag, value, ok, need in (
        ("--keep-alive", args.keep_alive, math.isfinite(args.keep_alive)
         and args.keep_alive > 0, "a positive number of seconds"),
        ("--shutdown-grace", args.shutdown_grace, math.isfinite(args.shutdown_grace)
         and args.shutdown_grace >= 0, "a number of seconds, 0 or more"),
        ("--max-header-bytes", args.max_header_bytes, args.max_header_bytes >= 1,
         "a whole number, 1 or more"),
        ("--max-body-bytes", args.max_body_bytes, args.max_body_bytes >= 0,
         "a whole number, 0 or more"),
    ):
        if not ok:
            raise ServeError(f"{flag} must be {need}, got {value:g}")
    app = load_app(args.app)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = Config(keep_alive=args.keep_alive, max_header_bytes=args.max_header_bytes,
                    max_body_bytes=args.max_body_bytes, shutdown_grace=args.shutdown_grace)
    run(app, args.host, args.port, args.backend, config)
    return 0


def add_parser(sub: Any) -> None:
    defaults = Config()
    sp = sub.add_parser("serve", help="serve an ASGI app with the reference server")
    sp.add_argument("app", help="MODULE:ATTRIBUTE, e.g. servers.reference.demo:app")
    sp.add_argument("--host", default="127.0.0.1", help="the address to listen on "
                    "(default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    sp.add_argument("--backend", choices=BACKENDS, default="asyncio",
                    help="the event loop to run on (default asyncio)")
    sp.add_argument("--keep-alive", type=float, default=defaults.keep_alive, metavar="SECONDS",
                    help="how long an idle connection waits for its next request "
                         "(default %(default)g)")
    sp.add_argument("--max-header-bytes", type=int, default=defaults.max_header_bytes,
                    metavar="N", help="a longer request head is answered 431 "
                                      "(default %(default)d)")
    sp.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                    metavar="N", help="a longer request body is answered 413 "
                                      "(default %(default)d)")
    sp.add_argument("--shutdown-grace", type=float, default=defaults.shutdown_grace,
                    metavar="SECONDS", help="once a shutdown begins, how long requests in "
                                            "flight get to finish (default %(default)g)")
    sp.set_defaults(func=cmd_serve)
