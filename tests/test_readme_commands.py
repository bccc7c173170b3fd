"""Every command the README shows, run as written in a fresh clone (budgets made small).

The commands are read from the README's ```sh blocks when the test runs, so a
command added there is tested without editing this file. What is changed, and
why, is in SMALL (budgets), PLACES (placeholders and the reader's own paths)
and NOT_RUN (two commands this test cannot run from inside itself).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.sdists import unpack, uvicorn_history

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRACE_748 = "reports/uvicorn-0.11.3-h11/receive-hang-e2bf0886/trace.json"
SMALL = [(r"--budget \d+", "--budget 3"), (r"--scenario-budget \d+", "--scenario-budget 3"),
         (r"--race-budget \d+", "--race-budget 3"), (r"^make demo$", "make demo DEMO_BUDGET=3")]
PLACES = [("<trace.json>", TRACE_748)]
NOT_RUN = {
    "make test": "this test is part of it; CI runs it on a clean clone (.ci/run)",
    "make bench": "a benchmark of many minutes; `make bench` is itself the check",
}
# What "works" means: no usage or environment error (exit 2), and for most commands
# success; explore, replay, exhaust and survey exit 1 when they show a failure, their job.
ALLOWED = {"explore": {0, 1}, "replay": {0, 1}, "exhaust": {0, 1}, "survey": {0, 1}}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith((".venv/bin/", "make ", "pytest ")):
                commands.append(line)
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_commands_to_run():
    assert len(COMMANDS) >= 8, COMMANDS  # the parser still finds them


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh clone of this repository's committed state, the project's virtual
    environment beside it, and a home folder holding the reader's ~/src/uvicorn (a git
    history from 0.11.3 to 0.12.3, built from their source distributions)."""
    base = tmp_path_factory.mktemp("readme")
    checkout = base / "checkout"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    os.utime(ROOT / ".venv" / ".installed")  # made now: make must not rebuild the venv
    home = base / "home"
    sources = {v: unpack("uvicorn", v, base / "sdists") for v in ("0.11.3", "0.12.3")}
    uvicorn_history(sources, home / "src" / "uvicorn")
    env = {**os.environ, "HOME": str(home),
           "HARNESS_CACHE": os.environ.get("HARNESS_CACHE", str(ROOT / ".harness-cache")),
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return checkout, env


@pytest.fixture(scope="module")
def server_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the plugin's commands run (`pytest --race-server=.`, "from the server's
    root"): a working copy of uvicorn 0.54.0 from its sdist, its own test suite replaced
    by one test (the real suite needs uvicorn's test dependencies, not the harness's);
    its pytest options stay, strict ones and pytest-xdist's included, but with 2 workers
    for this machine's 2 cores instead of 8."""
    project = unpack("uvicorn", "0.54.0", tmp_path_factory.mktemp("server"))
    pyproject = project / "pyproject.toml"
    assert " -n 8" in pyproject.read_text()
    pyproject.write_text(pyproject.read_text().replace(" -n 8", " -n 2"))
    shutil.rmtree(project / "tests", ignore_errors=True)
    (project / "tests").mkdir()
    (project / "tests" / "test_own.py").write_text(
        "import uvicorn\n\n\ndef test_the_projects_own_test():\n"
        "    assert uvicorn.__version__ == '0.54.0'\n")
    return project


def as_run(command: str) -> str:
    for pattern, small in SMALL:
        command = re.sub(pattern, small, command)
    for placeholder, value in PLACES:
        command = command.replace(placeholder, value)
    return command


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in NOT_RUN])
def test_a_readme_command_works_as_written(clone, server_project, command: str):
    checkout, env = clone
    run = as_run(command)
    if " serve " in run:
        return serve(checkout, env, run)
    where = server_project if run.startswith("pytest ") else checkout
    demo = run.startswith("make demo")  # its reports go where git ignores them
    before = git_status(checkout) if demo else ""
    proc = subprocess.run(["bash", "-c", run], cwd=where, env=env, capture_output=True,
                          text=True, timeout=900)
    if demo:
        assert git_status(checkout) == before, "make demo changed what git tracks"
        assert (checkout / "reports" / "demo").is_dir()
    words = shlex.split(run)
    verb = words[1] if words[0].endswith("harness") else words[0]
    allowed = ALLOWED.get(verb, {0})
    assert proc.returncode in allowed, (
        f"{run!r} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def git_status(checkout: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                          cwd=checkout, capture_output=True, text=True, check=True).stdout


def serve(checkout: Path, env: dict[str, str], run: str) -> None:
    """A server command runs until stopped: it must answer a request, then stop on ^C."""
    port = int(re.search(r"--port (\d+)", run).group(1))  # type: ignore[union-attr]
    proc = subprocess.Popen(["bash", "-c", f"exec {run}"], cwd=checkout, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:  # it says where it listens once it does
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        assert f":{port} " in lines[-1], "".join(lines)
        reply = b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGINT, 130), out[-2000:]


def test_commands_not_run_are_still_in_the_readme():
    text = (ROOT / "README.md").read_text()
    assert all(f"`{c}`" in text or c in COMMANDS for c in NOT_RUN)  # an exemption goes with it


def test_make_test_stamps_the_sdists_where_they_are_fetched(tmp_path: Path):
    # tests/sdists.py fetches into $HARNESS_CACHE/sdists when it is set; the Makefile's
    # stamp must be there too, or `make test` fails touching a folder nobody made.
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path)}
    plan = subprocess.run(["make", "-n", "fixtures"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True).stdout
    assert "-m tests.sdists" in plan
    assert f"touch {tmp_path}/sdists/.fetched" in plan
