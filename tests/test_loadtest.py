"""make bench's load test (harness/tools/loadtest.py): wrk's report is read right, the
windows stop at the first hang or at the bound, and the real wrk against a real server on
loopback counts what a load-testing user would. `make unit` installs wrk (`make wrk`).

How soon a hang is seen is a bench figure, never asserted here: the windows' clock is a
fake one, and the real runs assert only counts.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from harness.errors import EnvironmentFault, HarnessFault, InputError
from harness.tools import loadtest
from harness.tools.loadtest import (
    CONNECTIONS,
    TIMEOUT,
    Connection,
    Load,
    WrkResult,
    compare,
    detect,
    loads,
    median,
    parse_wrk,
    run_wrk,
    serving,
)

# What wrk 4.1.0 and the script printed for a correct server (one connection's request
# still out, for 2.6 ms, when the run stopped).
HEALTHY = """\
Running 1s test @ http://127.0.0.1:37481/
  2 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   396.30us  638.26us   8.35ms   93.77%
    Req/Sec     3.60k   631.96     4.65k    55.00%
  7185 requests in 1.00s, 842.11KB read
Requests/sec:   7159.30
Transfer/sec:    839.10KB
loadtest: connection 1 answered 4088 late 0 first_late 0.000000 pending 0.002649 since 44219.685005
loadtest: connection 2 answered 3097 late 0 first_late 0.000000 pending 0.000000 since 0.000000
"""

# wrk's lines for socket errors and error statuses, as its printf writes them.
ERRORS = HEALTHY.replace(
    "Requests/sec:",
    "  Socket errors: connect 1, read 2, write 3, timeout 4\n"
    "  Non-2xx or 3xx responses: 5\nRequests/sec:")


def test_a_healthy_report_reads_as_no_hang():
    result = parse_wrk(HEALTHY)
    assert result.requests == 7185
    assert result.errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.non_2xx == 0
    assert result.connections == (Connection(4088, 0, 0.0, 0.002649, 44219.685005),
                                  Connection(3097, 0, 0.0, 0.0, 0.0))
    assert result.overdue(1.0) == []
    assert not result.hung(1.0)


def test_socket_errors_and_statuses_are_read_and_wrk_timeouts_are_a_hang():
    result = parse_wrk(ERRORS)
    assert result.errors == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert result.non_2xx == 5
    assert result.hung(1.0)


def test_text_that_is_not_a_wrk_report_is_a_harness_fault():
    with pytest.raises(HarnessFault, match="no request count"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_late_responses_and_requests_still_out_past_the_timeout_are_overdue():
    result = WrkResult(3, connections=(
        Connection(1, 1, 50.5, 0.0, 0.0),  # a response 1 s late: overdue at 50.5
        Connection(1, 0, 0.0, 2.5, 48.0),  # out for 2.5 s at the end: overdue at 49.0
        Connection(1, 0, 0.0, 0.5, 49.9),  # out for 0.5 s: not yet
    ))
    assert result.overdue(1.0) == [49.0, 50.5]
    assert result.hung(1.0)
    assert not WrkResult(3, connections=result.connections[2:]).hung(1.0)


def test_the_median_counts_a_try_that_saw_nothing_as_the_latest():
    assert median([2.0, None, 1.0]) == 2.0
    assert median([2.0, 1.0]) == 1.5
    assert median([None, None, 1.0]) is None
    assert median([1.0, None]) is None  # half saw nothing


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(loadtest.time, "monotonic", fake)
    return fake


def fake_windows(monkeypatch: pytest.MonkeyPatch, clock: FakeClock,
                 results: Iterator[WrkResult]) -> list[int]:
    """run_wrk replaced: each window takes its seconds on `clock` and returns the next
    result; the list holds each window's length."""
    windows: list[int] = []

    def run(port: int, seconds: int, timeout: int = TIMEOUT) -> WrkResult:
        windows.append(seconds)
        clock.now += seconds
        return next(results)

    monkeypatch.setattr(loadtest, "run_wrk", run)
    return windows


def test_windows_run_until_one_reports_a_hang(monkeypatch, clock):
    calm = WrkResult(500, connections=(Connection(500, 0, 0.0, 0.0, 0.0),))
    hung = WrkResult(1, connections=(Connection(1, 0, 0.0, 1.5, 104.5),))
    windows = fake_windows(monkeypatch, clock, iter([calm, calm, hung]))
    found = detect(port=1, bound=30.0, window=2, timeout=1)
    assert windows == [2, 2, 2]
    assert (found.seconds, found.overdue, found.requests, found.windows) == (6.0, 5.5, 1001, 3)


def test_windows_stop_at_the_bound_when_nothing_hangs(monkeypatch, clock):
    calm = WrkResult(500, connections=(Connection(500, 0, 0.0, 0.0, 0.0),))
    windows = fake_windows(monkeypatch, clock, iter([calm] * 10))
    found = detect(port=1, bound=5.0, window=2, timeout=1)
    assert windows == [2, 2, 2]  # started at 0, 2 and 4 s
    assert (found.seconds, found.overdue, found.requests) == (None, None, 1500)


def test_the_benchmarked_finds_each_have_their_trigger():
    assert loads() == {
        "uvicorn#748": Load("uvicorn==0.11.3", "h11", "servers.uvicorn_loadtest",
                            "uvicorn#748"),
        "uvicorn#241": Load("uvicorn==0.3.26", "h11", "servers.uvicorn_loadtest",
                            "uvicorn#241"),
    }


def test_an_unknown_find_or_app_is_the_users_error():
    with pytest.raises(InputError, match="no load test for 'uvicorn#1'; known: "):
        compare("uvicorn#1", repeats=1)
    with pytest.raises(InputError, match="has no app 'nothing'; its apps: plain, "):
        compare("uvicorn#748", repeats=1, app="nothing")


@pytest.mark.parametrize(("args", "message"), [
    (["--repeats", "0"], "--repeats 0: give at least one try"),
    (["--bound", "nan"], "--bound nan: give a number of seconds above 0"),  # NaN passed `<= 0`
    (["--bound", "-1"], "--bound -1: give a number of seconds above 0"),
    (["--changed-repeats", "-1"], "--changed-repeats -1: give 0 or more tries"),
])
def test_bad_options_exit_2_naming_the_option(capsys, args: list[str], message: str):
    with pytest.raises(SystemExit) as exited:
        loadtest.main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_wrk_exits_2_with_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(loadtest.shutil, "which", lambda name: None)
    assert loadtest.main(["--repeats", "1"]) == 2
    assert "error: wrk is not installed; run `make wrk`" in capsys.readouterr().err


# -- the real wrk against a real server (uvicorn installed beside the harness) -----------

def installed(app: str) -> Load:
    return Load("uvicorn", "h11", "servers.uvicorn_loadtest", app)


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Temporary files go to a folder of the test's own, which must end empty."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
    assert list(tmp_path.iterdir()) == []


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_wrk_loads_a_correct_server_and_sees_no_hang(scratch):
    with serving(installed("plain")) as port:
        result = run_wrk(port, seconds=1)
    assert result.requests > 0
    assert len(result.connections) == CONNECTIONS
    assert all(c.answered > 0 for c in result.connections)
    assert result.errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.non_2xx == 0
    assert not result.hung(TIMEOUT)
    assert refused(port)  # the server process is gone


def test_wrk_sees_every_request_of_a_server_that_never_answers_still_out(scratch):
    with serving(installed("silent")) as port:
        result = run_wrk(port, seconds=1)
    assert result.requests == 0
    assert [c.answered for c in result.connections] == [0] * CONNECTIONS
    assert all(c.pending > 0 for c in result.connections)
    assert len(result.overdue(0.0)) == CONNECTIONS
    assert refused(port)


def test_the_server_is_killed_when_the_load_fails(scratch):
    with pytest.raises(RuntimeError, match="mid-load"), serving(installed("plain")) as port:
        raise RuntimeError("mid-load")
    assert refused(port)


def test_the_server_is_killed_when_an_interrupt_comes_as_it_starts(monkeypatch):
    # The moment between starting the server and knowing to kill it: the listener's close.
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def noted(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(popen(*args, **kwargs))
        return started[-1]

    class Listener:
        def __init__(self, real: socket.socket) -> None:
            self.real = real

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

        def close(self) -> None:
            self.real.close()
            raise KeyboardInterrupt

    create_server = socket.create_server
    monkeypatch.setattr(loadtest.subprocess, "Popen", noted)
    monkeypatch.setattr(loadtest.socket, "create_server",
                        lambda *a, **k: Listener(create_server(*a, **k)))
    with pytest.raises(KeyboardInterrupt), serving(installed("plain")):
        pass
    assert len(started) == 1 and started[0].poll() is not None


def test_a_server_that_dies_before_serving_is_an_environment_fault():
    with pytest.raises(EnvironmentFault, match="exited .* before serving: .*KeyError"), \
            serving(installed("no such app")):
        pass
