"""`harness serve`: the reference server as a command, on asyncio and trio."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest

from harness.tools.cli import main


def http_get(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_answers_real_requests_and_stops_gracefully_on_sigint(backend: str):
    with subprocess.Popen(
        [sys.executable, "-m", "harness.tools.cli", "serve", "servers.reference.demo:app",
         "--port", "0", "--backend", backend],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+) \((\w+)\)", banner)
        assert found, banner + (proc.stderr.read() if proc.stderr else "")
        port = int(found.group(1))
        assert found.group(2) == backend
        hello = http_get(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        echo = http_get(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                              b"Connection: close\r\n\r\nping")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert hello.startswith(b"HTTP/1.1 200 OK\r\n")
    assert hello.endswith(b"hello from the reference server\n")
    assert echo.endswith(b"\r\n\r\nping")
    assert "shutting down gracefully" in out and out.rstrip().endswith("stopped")
    assert proc.returncode == 0, err


@pytest.mark.parametrize(("app", "message"), [
    ("servers.reference.demo", "is not MODULE:ATTRIBUTE"),
    ("no_such_module_here:app", "cannot import 'no_such_module_here'"),
    ("servers.reference.demo:nope", "has no attribute 'nope'"),
    ("servers.reference.exchange:logger", "not an ASGI app"),
])
def test_serve_names_a_bad_app_and_the_fix(app: str, message: str,
                                           capsys: pytest.CaptureFixture[str]):
    assert main(["serve", app, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("harness: error: ")


def test_serve_names_a_busy_port(capsys: pytest.CaptureFixture[str]):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "servers.reference.demo:app", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert err.count("\n") == 1


def test_serve_rejects_an_impossible_port(capsys: pytest.CaptureFixture[str]):
    assert main(["serve", "servers.reference.demo:app", "--port", "70000"]) == 2
    assert "--port must be 0..65535, got 70000" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (["--keep-alive", "nan"], "--keep-alive must be a positive number of seconds, got nan"),
    (["--keep-alive", "0"], "--keep-alive must be a positive number of seconds, got 0"),
    (["--shutdown-grace", "nan"], "--shutdown-grace must be a number of seconds, 0 or more, "
                                  "got nan"),
    (["--shutdown-grace", "-1"], "--shutdown-grace must be a number of seconds, 0 or more, "
                                 "got -1"),
    (["--max-body-bytes", "-5"], "--max-body-bytes must be a whole number, 0 or more, got -5"),
    (["--max-header-bytes", "0"], "--max-header-bytes must be a whole number, 1 or more, "
                                  "got 0"),
])
def test_serve_names_a_setting_it_cannot_serve_with_before_it_listens(
        option: list[str], message: str, capsys: pytest.CaptureFixture[str]):
    # NaN passed the old `<= 0` checks, and the first request then crashed the server.
    assert main(["serve", "servers.reference.demo:app", "--port", "0", *option]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_names_an_app_module_that_exits_as_it_is_imported(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["serve", "exits_on_import:app", "--port", "0"]) == 2
    assert "importing 'exits_on_import' called sys.exit(3)" in capsys.readouterr().err
