"""The seed's method, for `make bench` to compare with: a load test handed the trigger.

For a known find (`loads()`: each benchmarked bug of the registry whose server
names a load-test script, with an app for it), start its real release as a real
server process on 127.0.0.1 (an ephemeral port; the release's cached
environment, as a worker gets it) serving the app written to trigger that bug,
and load it with wrk (Debian's, installed by `make`) over keep-alive
connections, in windows of WINDOW seconds until the load test sees a hang or
the bound runs out. The hang is seen as a load-testing user sees it, from the
client side only: a request still unanswered TIMEOUT seconds after it was sent
(wrk 4.1 counts in its own `timeout` figure only responses that come late,
never one that does not come, so a small Lua script keeps the time each
connection's request went out; one connection per wrk thread), or a response
that came later than that.

The figures: seconds from the start of the load to the end of the first
window that reports a hang (the moment wrk prints it), and to the moment the
first request became overdue. `python -m harness.tools.loadtest [REPEATS
[BOUND]]` prints both for each find, and the same with the app changed by one
await (`<label> one await fewer`), which hangs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.errors import EnvironmentFault, HarnessError, HarnessFault, InputError
from harness.sim.interrupts import interrupts_held
from harness.targets.envs import ensure_target_env
from harness.targets.registry import entries, target_specs

WRK = "wrk"
CONNECTIONS = 4  # one per wrk thread, so the script can pair each request with its response
WINDOW = 2  # seconds per wrk run (whole seconds: wrk's -d)
TIMEOUT = 1  # seconds a request may go unanswered (wrk's --timeout; whole seconds)
BOUND = 30.0  # seconds of load per try
READY_WITHIN = 60.0  # seconds for the server to answer its first request


@dataclass(frozen=True)
class Load:
    """A release (a --server spec) and protocol to serve, the script that serves it, and
    the script's app that triggers the find."""
    server: str
    http: str
    script: str  # a module run as a script in the release's environment
    app: str


def loads() -> dict[str, Load]:
    """For each benchmarked known bug (labelled as make bench labels it) whose server's
    registry entry names a load-test script (extra["loadtest"]) holding an app of that
    label: its bench release, on the first protocol bench names."""
    out: dict[str, Load] = {}
    for name, entry in entries().items():
        script = entry.extra.get("loadtest")
        if script is None:
            continue
        apps = importlib.import_module(script).APPS
        for bug in entry.known_bugs:
            label = bug.name.split(":")[0]
            if len(bug.bench) > 1 and label in apps and label not in out:
                server = f"{name}=={bug.bench[0]}" if bug.bench[0] else name
                out[label] = Load(server, bug.bench[1], script, label)
    return out

# The Lua script: per connection (thread), when its request went out and what came back.
# CLOCK_MONOTONIC (1) is Python's time.monotonic, so the parent can place the moments.
LUA = """\
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } loadtest_timespec;
int clock_gettime(int clock, loadtest_timespec *ts);
]]
local ts = ffi.new("loadtest_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
timeout, answered, late, first_late, sent_at = 1, 0, 0, 0, 0

function setup(thread) table.insert(threads, thread) end
function init(args) timeout = tonumber(args[1]) end

function request()
  sent_at = now()
  return wrk.format()
end

function response(status, headers, body)
  local waited = now() - sent_at
  if waited > timeout then
    if late == 0 then first_late = sent_at + timeout end
    late = late + 1
  end
  answered, sent_at = answered + 1, 0
end

function done(summary, latency, requests)
  local t = now()
  for i, thread in ipairs(threads) do
    local sent = thread:get("sent_at")
    local pending = sent > 0 and t - sent or 0
    io.write(string.format(
      "loadtest: connection %d answered %d late %d first_late %.6f pending %.6f since %.6f\\n",
      i, thread:get("answered"), thread:get("late"), thread:get("first_late"), pending, sent))
  end
end
"""

_CONNECTION = re.compile(
    r"^loadtest: connection (\d+) answered (\d+) late (\d+) first_late ([\d.]+) "
    r"pending ([\d.]+) since ([\d.]+)$", re.M)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class Connection:
    answered: int
    late: int  # responses that came more than the timeout after their request
    first_late: float  # monotonic moment the first of them became overdue; 0 if none
    pending: float  # seconds its last request had waited when wrk stopped; 0 if answered
    since: float  # monotonic moment that request went out; 0 if answered


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run printed."""
    requests: int
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout
    non_2xx: int = 0
    connections: tuple[Connection, ...] = ()

    def overdue(self, timeout: float) -> list[float]:
        """The moments requests were seen unanswered `timeout` seconds after they went out:
        late responses, and requests still waiting at the end."""
        out = [c.first_late for c in self.connections if c.late]
        out += [c.since + timeout for c in self.connections if c.pending > timeout]
        return sorted(out)

    def hung(self, timeout: float) -> bool:
        return bool(self.errors.get("timeout") or self.overdue(timeout))


def parse_wrk(text: str) -> WrkResult:
    """wrk's report and the script's per-connection lines; a report without its request
    count is not wrk's (HarnessFault, with the text)."""
    found = _REQUESTS.search(text)
    if found is None:
        raise HarnessFault(f"wrk printed no request count; its output was: {text.strip()!r}")
    errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if (socket_errors := _SOCKET.search(text)) is not None:
        errors = dict(zip(errors, map(int, socket_errors.groups()), strict=True))
    status = _STATUS.search(text)
    connections = tuple(
        Connection(int(m[2]), int(m[3]), float(m[4]), float(m[5]), float(m[6]))
        for m in _CONNECTION.finditer(text))
    return WrkResult(int(found[1]), errors, int(status[1]) if status else 0, connections)


def wrk_path() -> str:
    found = shutil.which(WRK)
    if found is None:
        raise EnvironmentFault("wrk is not installed; run `make wrk` (it installs Debian's "
                               "wrk package with apt-get)")
    return found


@contextlib.contextmanager
def serving(load: Load, app: str | None = None) -> Iterator[int]:
    """A real server process for `load` serving its app (or `app`) on 127.0.0.1, ready for
    load; yields its port. The process is killed however the block ends."""
    spec = target_specs(load.server, load.http)[0]
    module = importlib.import_module(load.script)
    assert module.__file__ is not None
    env = ensure_target_env(spec)
    if env is not None and spec.http not in env.info.protocols:
        raise EnvironmentFault(f"{spec} has no importable {spec.http} protocol on this Python "
                               f"(importable: {', '.join(env.info.protocols) or 'none'})")
    child_env = dict(os.environ, PYTHONNOUSERSITE="1")
    child_env.pop("PYTHONPATH", None)
    if env is not None:  # the release's own folder first, as a worker has it
        child_env["PYTHONPATH"] = str(env.site)
    version = env.info.version if env is not None else ""
    # The server's stderr goes to a file, not a pipe: a pipe nobody reads fills up under
    # load and stops the server, which would look like the hang.
    with tempfile.TemporaryDirectory(prefix="harness-loadtest-") as tmp, \
            open(Path(tmp) / "stderr", "w+") as stderr:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        proc: subprocess.Popen[bytes] | None = None
        try:
            # An interrupt between starting the server and this `try` would leave it
            # running: it is held until the server is known to the `finally`.
            with interrupts_held():
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-P", module.__file__, str(listener.fileno()),
                         spec.http, app or load.app, version], pass_fds=[listener.fileno()],
                        env=child_env, stdout=subprocess.DEVNULL, stderr=stderr)
                finally:
                    listener.close()  # the server holds it: if it dies, connections fail
            _wait_ready(proc, port, stderr)
            yield port
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, stderr: IO[str]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr.seek(0)
            tail = stderr.read().strip().splitlines()[-5:]
            raise EnvironmentFault(f"the load test's server exited ({proc.returncode}) "
                                   "before serving: " + " | ".join(tail))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                    timeout=5) as probe:
            probe.sendall(b"GET /ready HTTP/1.1\r\nhost: loadtest\r\nconnection: close\r\n\r\n")
            if probe.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise EnvironmentFault(f"the load test's server did not answer on port {port} within "
                           f"{READY_WITHIN:g}s")


def run_wrk(port: int, seconds: int, timeout: int = TIMEOUT,
            connections: int = CONNECTIONS) -> WrkResult:
    """One wrk run of `seconds` against 127.0.0.1:`port`, one connection per thread."""
    with tempfile.TemporaryDirectory(prefix="harness-loadtest-") as tmp:
        script = Path(tmp) / "loadtest.lua"
        script.write_text(LUA)
        proc = subprocess.run(
            [wrk_path(), "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s",
             "--timeout", f"{timeout}s", "-s", str(script), f"http://127.0.0.1:{port}/",
             "--", str(timeout)], capture_output=True, text=True, timeout=seconds + 30)
    if proc.returncode != 0:
        raise EnvironmentFault(f"wrk failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()}")
    return parse_wrk(proc.stdout)


@dataclass(frozen=True)
class Detection:
    """One bounded try: when the load test first reported a hang, if it did."""
    seconds: float | None  # start of load to the end of the window that reported it
    overdue: float | None  # start of load to the moment the first request became overdue
    requests: int  # answered over the whole try
    windows: int


def detect(port: int, bound: float = BOUND, window: int = WINDOW,
           timeout: int = TIMEOUT) -> Detection:
    """Load the server in windows until one reports a hang or `bound` seconds have passed."""
    start = time.monotonic()
    requests = windows = 0
    while time.monotonic() - start < bound:
        result = run_wrk(port, window, timeout)
        requests, windows = requests + result.requests, windows + 1
        if result.hung(timeout):
            overdue = result.overdue(timeout)
            return Detection(time.monotonic() - start,
                             overdue[0] - start if overdue else None, requests, windows)
    return Detection(None, None, requests, windows)


def median(values: list[float | None]) -> float | None:
    """The median, a try that detected nothing counting as later than any that did;
    None when the median is such a try (or between one and a try that detected)."""
    value = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(value) else value


def compare(find_name: str, repeats: int = 10, bound: float = BOUND,
            app: str | None = None) -> dict[str, Any]:
    """`repeats` bounded tries of the load test on `find_name` (a key of loads(), as make
    bench labels finds), each on a fresh server process; `app` serves another app of the
    script (f"{find_name} one await fewer", say). Per try, "seconds" and "overdue" are
    None when it saw no hang within `bound`; each median counts such a try as later than
    any other, and is None when half or more saw nothing."""
    known = loads()
    if find_name not in known:
        raise InputError(f"no load test for {find_name!r}; known: {', '.join(known)}")
    load = known[find_name]
    apps = importlib.import_module(load.script).APPS
    if app is not None and app not in apps:
        raise InputError(f"{load.script} has no app {app!r}; its apps: {', '.join(apps)}")
    wrk_path()
    tries = []
    for _ in range(repeats):
        with serving(load, app) as port:
            tries.append(detect(port, bound))
    return {"find": find_name, "target": f"{load.server} {load.http}", "app": app or load.app,
            "bound": bound, "window": WINDOW, "timeout": TIMEOUT, "connections": CONNECTIONS,
            "seconds": [t.seconds for t in tries], "overdue": [t.overdue for t in tries],
            "requests": [t.requests for t in tries],
            "detected": sum(t.seconds is not None for t in tries),
            "median": median([t.seconds for t in tries]),
            "median_overdue": median([t.overdue for t in tries])}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tools.loadtest",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="tries per find (10)")
    parser.add_argument("--bound", type=float, default=BOUND,
                        help=f"seconds of load per try ({BOUND:g})")
    parser.add_argument("--changed-repeats", type=int, default=1,
                        help="tries with the app changed by one await (1; 0: none)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give at least one try")
    if not (math.isfinite(args.bound) and args.bound > 0):  # (NaN fails every comparison)
        parser.error(f"--bound {args.bound:g}: give a number of seconds above 0")
    if args.changed_repeats < 0:
        parser.error(f"--changed-repeats {args.changed_repeats}: give 0 or more tries")
    try:
        _table(args.repeats, args.bound, args.changed_repeats)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def _table(repeats: int, bound: float, changed_repeats: int) -> None:
    print(f"load test (wrk, {CONNECTIONS} keep-alive connections, windows of {WINDOW}s, "
          f"timeout {TIMEOUT}s), tries of at most {bound:g}s; medians")
    print(f"{'find':14} {'target':22} {'app':30} {'found':>6} {'s to report':>11} "
          f"{'s to overdue':>12}")
    for name, load in loads().items():
        apps = importlib.import_module(load.script).APPS
        changed = f"{load.app} one await fewer"
        runs = [(load.app, repeats)] + ([(changed, changed_repeats)]
                                         if changed in apps and changed_repeats > 0 else [])
        for app, tries in runs:
            result = compare(name, tries, bound, app)
            found = f"{result['detected']}/{tries}"
            print(f"{name:14} {result['target']:22} {app:30} {found:>6} "
                  f"{_seconds(result['median']):>11} {_seconds(result['median_overdue']):>12}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
