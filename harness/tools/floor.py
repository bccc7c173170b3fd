"""The per-run floor: the harness's ordinary run against a stock asyncio loop.

Both sides serve one scenario with the installed release of one server (uvicorn,
hypercorn, or the reference server): one keep-alive connection, two plain GETs written
one after the other (each once the previous response is complete), a reference app
that reads the body and answers with one chunk, then the client closes.

- **stock**: the server's per-connection protocol on a plain `asyncio.new_event_loop()`
  (a new loop per run, as the harness makes one per run), over `MemoryTransport` (an
  in-memory transport, no socket), with an h11 client. Each server's adapter builds it
  (`stock_protocol`, in servers/): uvicorn's protocol class, the reference server's
  `ProtocolStream`, or for hypercorn the `StreamReaderProtocol` that
  `asyncio.start_server` makes per connection, calling hypercorn's `TCPServer`.
  What a server builds once at startup (uvicorn's loaded Config, hypercorn's Config and
  app wrapper, the reference server's Config) is built once per process.
- **ordinary**: `run_http` of the same scenario (`HttpScenario` "keepalive") on the
  server's target adapter, under `OrdinarySource` (choice 0 everywhere): everything the
  harness does for one run of a search, decisions aside.

`compare()` measures CPU time per run of each (`time.process_time`, the median of
several batches of many runs) and their ratio; with `instructions=True` it also
counts instructions per run under valgrind's callgrind, from two child processes
that differ only in their number of runs (so start-up and imports cancel out).
`--phases` counts, the same way, what four parts of the ordinary run cost on their own
(`PHASES`: its oracles, its observations, making and closing its loop, its error
collection), each as what a second pass of it adds, and leaves the rest.
Run it as `python -m harness.tools.floor [--server NAME] [--http H] [--instructions]
[--phases]`: without --server, every server whose adapter has a stock side.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import h11

from harness.errors import EnvironmentFault, HarnessError, InputError

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


class MemorySocket:
    """The socket a stream server asks its transport for (hypercorn reads its family and
    addresses): an IPv4 pair, nothing more."""

    family = socket.AF_INET

    def getpeername(self) -> tuple[str, int]:
        return PEER

    def getsockname(self) -> tuple[str, int]:
        return HOST


class MemoryTransport(asyncio.Transport):
    """The server's end of an in-memory connection: writes go straight to the client."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: StockClient) -> None:
        super().__init__()
        self._loop = loop
        self._client = client
        self._closing = False
        self._protocol: Any = None
        self._socket = MemorySocket()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": HOST, "peername": PEER, "socket": self._socket}.get(name, default)

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
        self.transport: MemoryTransport | None = None  # the server's end, once made
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
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.done.set_result(None)


# A stock side: per loop, the protocol for one connection, and what to await once the
# client has closed (None: nothing), for a server whose connection would otherwise
# wait out a timer in real time. Each server's adapter builds its own
# (`stock_protocol(app)`, in servers/): the floor names no server.
Ending = Callable[[], Awaitable[None]] | None
Stock = Callable[[asyncio.AbstractEventLoop], tuple[Any, Ending]]
SETTLE = 20  # loop iterations after the client's close within which every task must end


def stock_servers() -> tuple[str, ...]:
    """The registered servers whose adapter offers a stock side."""
    from harness.targets.registry import entries

    return tuple(name for name in entries() if _has_stock_side(name))


def _has_stock_side(server: str) -> bool:
    from harness.targets.registry import entry

    module, _, cls = entry(server).adapter.partition(":")
    return hasattr(getattr(importlib.import_module(module), cls), "stock_protocol")


def _adapter(server: str, http: str) -> Any:
    """The installed release's adapter, refusing a server without a stock side."""
    from harness.targets.registry import entry, target_specs
    from harness.targets.runner import make_target

    protocols = entry(server).protocols  # (an unknown server: the registry's message)
    if http not in protocols:
        raise InputError(f"{server} has no protocol {http!r}; use one of "
                         f"{', '.join(protocols)}")
    if not _has_stock_side(server):
        raise InputError(f"{server}'s adapter has no stock side (stock_protocol) for the "
                         f"floor; use one of {', '.join(stock_servers())}")
    return make_target(target_specs(server, http)[0])


class StockServer:
    """One server's per-connection protocol, on whatever loop runs it."""

    def __init__(self, server: str, http: str) -> None:
        self.make_protocol: Stock = _adapter(server, http).stock_protocol(reference_app)

    def run_once(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            protocol, end = self.make_protocol(loop)
            client = StockClient(loop, protocol)
            transport = client.transport = MemoryTransport(loop, client)
            transport._protocol = protocol
            # As asyncio's accept does: connection_made in a callback of the loop.
            loop.call_soon(protocol.connection_made, transport)
            client.send_next()
            loop.run_until_complete(client.done)
            if end is not None:
                loop.run_until_complete(end())
            for _ in range(SETTLE):  # connection_lost, then the connection's tasks end
                loop.run_until_complete(asyncio.sleep(0))
                if not asyncio.all_tasks(loop):
                    break
            left = asyncio.all_tasks(loop)
            if client.responses != REQUESTS or left:
                raise AssertionError(f"the stock run served {client.responses} of {REQUESTS} "
                                     f"requests, {len(left)} tasks left")
        finally:
            loop.close()


def ordinary_runner(server: str, http: str) -> Callable[[], None]:
    """One ordinary harness run of the same scenario, on the installed release."""
    from harness.decisions import OrdinarySource, Recorder
    from harness.http.app import AppBehaviour
    from harness.http.client import ConnSpec, RequestSpec
    from harness.http.scenario import HttpScenario, run_http
    from harness.search.explore import SETTINGS

    target = _adapter(server, http)
    scenario = HttpScenario(
        "keepalive", (ConnSpec((RequestSpec(),) * REQUESTS, end="close"),),
        tuple((1, i, AppBehaviour()) for i in range(REQUESTS)))

    def run_once() -> None:
        run = run_http(scenario, target, Recorder(OrdinarySource()), SETTINGS)
        if run.failures:
            raise AssertionError(f"the ordinary run failed: {run.failures[0]}")

    return run_once


def runner(which: str, server: str, http: str) -> Callable[[], None]:
    if which == "stock":
        return StockServer(server, http).run_once
    if which == "ordinary":
        return ordinary_runner(server, http)
    raise InputError(f"unknown floor side {which!r}; use 'stock' or 'ordinary'")


# The parts of an ordinary run that can be counted on their own: each reads the run and
# makes something new, so running it twice changes nothing but the count, and what a
# second pass adds is exactly its cost. (The simulation, the mount and the teardown
# act on the run, so they are only the rest: the ordinary run less these.)
PHASE_NAMES = {"oracles": "the oracles", "observations": "the observations",
               "loop": "making and closing the loop", "errors": "error collection"}
PHASES = tuple(PHASE_NAMES)


def run_twice(phase: str) -> None:
    """Make every ordinary run in this process do `phase` twice (a --child's setting)."""
    from contextlib import contextmanager

    from harness.http import scenario
    from harness.sim import run

    def called_twice(once: Callable[..., Any]) -> Callable[..., Any]:
        def twice(*args: Any, **kwargs: Any) -> Any:
            once(*args, **kwargs)
            return once(*args, **kwargs)
        return twice

    def made_twice(make: Callable[..., Any]) -> Callable[..., Any]:
        def twice(*args: Any, **kwargs: Any) -> Any:
            make(*args, **kwargs).close()
            return make(*args, **kwargs)
        return twice

    def entered_twice(collect: Callable[[], Any]) -> Callable[[], Any]:
        @contextmanager
        def twice() -> Iterator[Any]:
            with collect():
                pass
            with collect() as collector:
                yield collector
        return twice

    # phase: (module, the name a run calls it by there, its doubling)
    doubled: dict[str, tuple[Any, str, Callable[[Any], Any]]] = {
        "oracles": (scenario, "check", called_twice),
        "observations": (scenario, "observe", called_twice),
        "loop": (run, "SimLoop", made_twice),
        "errors": (scenario, "collect_errors", entered_twice),
    }
    if phase not in doubled:
        raise InputError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    module, name, double = doubled[phase]
    setattr(module, name, double(getattr(module, name)))


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


def instructions_per_run(which: str, server: str, http: str, runs: int = 20,
                         twice: str | None = None) -> float:
    """Instructions per run under callgrind: (count(2n runs) - count(n runs)) / n; with
    `twice`, of ordinary runs that do that phase twice."""
    if not os.access(VALGRIND, os.X_OK):
        raise EnvironmentFault(f"no valgrind at {VALGRIND}: install Debian's valgrind "
                               "(apt-get install valgrind) or leave instructions off")
    counts = [_callgrind_total(which, server, http, n, twice) for n in (runs, 2 * runs)]
    return (counts[1] - counts[0]) / runs


def phase_instructions(server: str, http: str, runs: int = 20,
                       say: Callable[[str], None] = lambda line: None,
                       ordinary: float | None = None) -> dict[str, float]:
    """Instructions per ordinary run: "ordinary" in all (counted here unless given), each
    of PHASES, and "rest"."""
    if ordinary is None:
        ordinary = instructions_per_run("ordinary", server, http, runs)
    out = {"ordinary": ordinary}
    for phase in PHASES:
        say(f"counting {PHASE_NAMES[phase]}")
        out[phase] = instructions_per_run("ordinary", server, http, runs, phase) - ordinary
    out["rest"] = ordinary - sum(out[p] for p in PHASES)
    return out


def _callgrind_total(which: str, server: str, http: str, runs: int,
                     twice: str | None = None) -> int:
    folder = tempfile.mkdtemp(prefix="floor-callgrind-")
    out = os.path.join(folder, "callgrind.out")
    try:
        subprocess.run(
            [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-m", "harness.tools.floor", "--child", which, "--server", server,
             "--http", http, "--runs", str(runs)] + (["--twice", twice] if twice else []),
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


def compare(server: str, http: str, runs: int = 300,
            instructions: bool = False) -> dict[str, Any]:
    """The stock loop and the ordinary run on one scenario: CPU µs per run and their
    ratio (and, with `instructions`, instructions per run and their ratio)."""
    stock = cpu_per_run(runner("stock", server, http), runs)
    ordinary = cpu_per_run(runner("ordinary", server, http), max(1, runs // 3))
    out: dict[str, Any] = {"server": server, "http": http, "stock_us": stock * 1e6,
                           "ordinary_us": ordinary * 1e6, "ratio": ordinary / stock}
    if instructions:
        stock_i = instructions_per_run("stock", server, http)
        ordinary_i = instructions_per_run("ordinary", server, http)
        out |= {"stock_instructions": stock_i, "ordinary_instructions": ordinary_i,
                "instruction_ratio": ordinary_i / stock_i}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tools.floor",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", help="whose installed release serves both sides "
                        "(default: every server whose adapter has a stock side)")
    parser.add_argument("--http", help="the server's protocol implementation (default: "
                        "its first; without --server, only servers that have it)")
    parser.add_argument("--runs", type=int, default=300, help="stock runs per batch")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per run with valgrind's callgrind")
    parser.add_argument("--phases", action="store_true",
                        help="also count, with callgrind, the instructions of the ordinary "
                        "run's oracles, observations, loop and error collection")
    parser.add_argument("--child", choices=("stock", "ordinary"), help=argparse.SUPPRESS)
    parser.add_argument("--twice", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except HarnessError as exc:
        print(f"floor: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _main(args: argparse.Namespace) -> int:
    from harness.targets.registry import entry

    if args.runs < 1:
        raise InputError(f"--runs must be at least 1, got {args.runs}")
    if args.server and "==" in args.server:
        raise InputError(f"--server {args.server}: the floor measures the release installed "
                         f"beside the harness; give --server {args.server.partition('==')[0]}")
    if args.server:
        servers = [args.server]
    else:  # every server with a stock side (that has the protocol asked for)
        servers = [s for s in stock_servers() if args.http in (None, *entry(s).protocols)]
        if not servers:
            raise InputError(f"no server with a stock side has the protocol {args.http!r}; "
                             "leave --http off, or name a server with --server")
    chosen = [(s, args.http or entry(s).protocols[0]) for s in servers]
    for server, http in chosen:
        _adapter(server, http)  # every refusal before any measurement
    if args.child:  # one side, `--runs` times, for callgrind to count
        if args.twice:
            run_twice(args.twice)
        run_once = runner(args.child, *chosen[0])
        for _ in range(args.runs):
            run_once()
        return 0
    for server, http in chosen:
        result = compare(server, http, args.runs, args.instructions)
        print(f"floor ({server} {http}, {REQUESTS} GETs on one keep-alive connection): "
              f"stock loop {result['stock_us']:.0f} us/run, ordinary run "
              f"{result['ordinary_us']:.0f} us/run: {result['ratio']:.2f}x", flush=True)
        if args.instructions:
            print(f"  instructions: stock {result['stock_instructions'] / 1e6:.2f} M/run, "
                  f"ordinary {result['ordinary_instructions'] / 1e6:.2f} M/run: "
                  f"{result['instruction_ratio']:.2f}x", flush=True)
        if args.phases:
            counts = phase_instructions(server, http, say=lambda line: print(
                f"  ({line})", file=sys.stderr, flush=True),
                ordinary=result.get("ordinary_instructions"))  # counted once, with both
            print("  " + phases_line(counts), flush=True)
    return 0


def phases_line(counts: dict[str, float]) -> str:
    parts = [f"{PHASE_NAMES[p]} {counts[p] / 1e6:.3f} M" for p in PHASES]
    return (f"of the ordinary run's {counts['ordinary'] / 1e6:.3f} M instructions: "
            + ", ".join(parts) + f"; the rest (simulation, mount, teardown) "
            f"{counts['rest'] / 1e6:.3f} M")


if __name__ == "__main__":
    sys.exit(main())
