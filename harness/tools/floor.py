"""The per-run floor: the harness's ordinary run against a stock asyncio loop.

Both sides serve one scenario with the installed uvicorn's protocol class: one
keep-alive connection, two plain GETs written one after the other (each once the
previous response is complete), a reference app that reads the body and answers
with one chunk, then the client closes.

- **stock**: uvicorn's protocol class on a plain `asyncio.new_event_loop()` (a new
  loop per run, as the harness makes one per run), over `MemoryTransport` (an
  in-memory transport, no socket), with an h11 client. The Config is built and
  loaded once per process, as a real server does at startup.
- **ordinary**: `run_http` of the same scenario (`HttpScenario` "keepalive") on
  `UvicornTarget`, under `OrdinarySource` (choice 0 everywhere): everything the
  harness does for one run of a search, decisions aside.

`compare()` measures CPU time per run of each (`time.process_time`, the median of
several batches of many runs) and their ratio; with `instructions=True` it also
counts instructions per run under valgrind's callgrind, from two child processes
that differ only in their number of runs (so start-up and imports cancel out).
Run it as `python -m harness.tools.floor [--http h11] [--instructions]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import h11

from harness.errors import EnvironmentFault, InputError

REQUESTS = 2
HOST = ("127.0.0.1", 8000)
PEER = ("127.0.0.1", 50000)
BATCHES = 5
VALGRIND = "/usr/bin/valgrind"


def _request(index: int) -> bytes:
    # What the harness's client writes for the same request (harness/http/client.py).
    return f"GET /c1/r{index} HTTP/1.1\r\nHost: example.org\r\n\r\n".encode()


async def reference_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The reference behaviour (AppBehaviour()): read the whole body, answer one chunk."""
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["path"][1:].encode() + b":0;"})


class MemoryTransport(asyncio.Transport):
    """The server's end of an in-memory connection: writes go straight to the client."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: StockClient) -> None:
        super().__init__()
        self._loop = loop
        self._client = client
        self._closing = False
        self._protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": HOST, "peername": PEER}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # The bytes arrive at the client in a later callback, as over a socket.
        self._loop.call_soon(self._client.received, bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class StockClient:
    """An h11 client: writes each GET once the previous response is complete, then
    closes (EOF) after the last one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
        self.loop = loop
        self.protocol = protocol
        self.conn = h11.Connection(h11.CLIENT)
        self.sent = 0
        self.responses = 0
        self.done = loop.create_future()

    def send_next(self) -> None:
        self.conn.send(h11.Request(method="GET", target=f"/c1/r{self.sent}",
                                   headers=[("Host", "example.org")]))
        self.conn.send(h11.EndOfMessage())
        data = _request(self.sent)
        self.sent += 1
        self.loop.call_soon(self.protocol.data_received, data)

    def received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.EndOfMessage):
                self.responses += 1
                if self.sent < REQUESTS:
                    self.conn.start_next_cycle()
                    self.send_next()
                else:
                    self.loop.call_soon(self.finish)
                return

    def finish(self) -> None:
        self.protocol.eof_received()  # the client's FIN, then the socket goes
        transport = self.protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        self.done.set_result(None)


class StockServer:
    """uvicorn's protocol class as its Server builds it, on whatever loop runs it."""

    def __init__(self, http: str) -> None:
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        self.config = Config(reference_app, http=http, ws="none", lifespan="off",
                             log_config=None, access_log=False)
        self.config.load()
        self.state = ServerState()

    def run_once(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            protocol_class: Any = self.config.http_protocol_class
            protocol = protocol_class(
                config=self.config, server_state=self.state, app_state={}, _loop=loop)
            client = StockClient(loop, protocol)
            transport = MemoryTransport(loop, client)
            transport._protocol = protocol
            protocol.connection_made(transport)
            client.send_next()
            loop.run_until_complete(client.done)
            loop.run_until_complete(asyncio.sleep(0))  # connection_lost runs
            if client.responses != REQUESTS or self.state.tasks:
                raise AssertionError(f"the stock run served {client.responses} of {REQUESTS} "
                                     f"requests, {len(self.state.tasks)} tasks left")
        finally:
            loop.close()


def ordinary_runner(http: str) -> Callable[[], None]:
    """One ordinary harness run of the same scenario, on the installed uvicorn."""
    from harness.decisions import OrdinarySource, Recorder
    from harness.http.app import AppBehaviour
    from harness.http.client import ConnSpec, RequestSpec
    from harness.http.scenario import HttpScenario, run_http
    from harness.search.explore import SETTINGS
    from servers.uvicorn_target import UvicornTarget

    target = UvicornTarget(http)
    scenario = HttpScenario(
        "keepalive", (ConnSpec((RequestSpec(),) * REQUESTS, end="close"),),
        tuple((1, i, AppBehaviour()) for i in range(REQUESTS)))

    def run_once() -> None:
        run = run_http(scenario, target, Recorder(OrdinarySource()), SETTINGS)
        if run.failures:
            raise AssertionError(f"the ordinary run failed: {run.failures[0]}")

    return run_once


def runner(which: str, http: str) -> Callable[[], None]:
    if which == "stock":
        return StockServer(http).run_once
    if which == "ordinary":
        return ordinary_runner(http)
    raise InputError(f"unknown floor side {which!r}; use 'stock' or 'ordinary'")


def cpu_per_run(run_once: Callable[[], None], runs: int, batches: int = BATCHES) -> float:
    """Median over `batches` of CPU seconds per run, each batch `runs` runs."""
    for _ in range(max(3, runs // 10)):  # warm up: imports, caches, first-call costs
        run_once()
    per_batch = []
    for _ in range(batches):
        start = time.process_time()
        for _ in range(runs):
            run_once()
        per_batch.append((time.process_time() - start) / runs)
    return statistics.median(per_batch)


def instructions_per_run(which: str, http: str, runs: int = 20) -> float:
    """Instructions per run under callgrind: (count(2n runs) - count(n runs)) / n."""
    if not os.access(VALGRIND, os.X_OK):
        raise EnvironmentFault(f"no valgrind at {VALGRIND}: install Debian's valgrind "
                               "(apt-get install valgrind) or leave instructions off")
    counts = [_callgrind_total(which, http, n) for n in (runs, 2 * runs)]
    return (counts[1] - counts[0]) / runs


def _callgrind_total(which: str, http: str, runs: int) -> int:
    folder = tempfile.mkdtemp(prefix="floor-callgrind-")
    out = os.path.join(folder, "callgrind.out")
    try:
        subprocess.run(
            [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-m", "harness.tools.floor", "--child", which, "--http", http,
             "--runs", str(runs)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        with open(out) as f:
            found = re.search(r"^(?:summary|totals):\s*(\d+)", f.read(), re.MULTILINE)
        if found is None:
            raise EnvironmentFault(f"callgrind wrote no instruction total to {out}")
        return int(found.group(1))
    except subprocess.CalledProcessError as exc:
        raise EnvironmentFault(f"valgrind failed ({exc.returncode}): "
                               f"{exc.stderr.decode(errors='replace')[-400:]}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(http: str = "h11", runs: int = 300, instructions: bool = False) -> dict[str, Any]:
    """The stock loop and the ordinary run on one scenario: CPU µs per run and their
    ratio (and, with `instructions`, instructions per run and their ratio)."""
    stock = cpu_per_run(runner("stock", http), runs)
    ordinary = cpu_per_run(runner("ordinary", http), max(1, runs // 3))
    out: dict[str, Any] = {"http": http, "stock_us": stock * 1e6, "ordinary_us": ordinary * 1e6,
                           "ratio": ordinary / stock}
    if instructions:
        stock_i = instructions_per_run("stock", http)
        ordinary_i = instructions_per_run("ordinary", http)
        out |= {"stock_instructions": stock_i, "ordinary_instructions": ordinary_i,
                "instruction_ratio": ordinary_i / stock_i}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tools.floor",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    from servers.uvicorn_target import TARGET

    parser.add_argument("--http", default="h11", choices=TARGET.protocols)
    parser.add_argument("--runs", type=int, default=300, help="stock runs per batch")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per run with valgrind's callgrind")
    parser.add_argument("--child", choices=("stock", "ordinary"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        raise InputError(f"--runs must be at least 1, got {args.runs}")
    if args.child:  # one side, `--runs` times, for callgrind to count
        run_once = runner(args.child, args.http)
        for _ in range(args.runs):
            run_once()
        return 0
    result = compare(args.http, args.runs, args.instructions)
    print(f"floor ({result['http']}, {REQUESTS} GETs on one keep-alive connection): "
          f"stock loop {result['stock_us']:.0f} us/run, ordinary run "
          f"{result['ordinary_us']:.0f} us/run: {result['ratio']:.2f}x")
    if args.instructions:
        print(f"  instructions: stock {result['stock_instructions'] / 1e6:.2f} M/run, "
              f"ordinary {result['ordinary_instructions'] / 1e6:.2f} M/run: "
              f"{result['instruction_ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
