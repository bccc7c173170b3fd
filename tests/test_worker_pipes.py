"""The worker's pipes: a target that writes a lot to stderr cannot deadlock the run, and
an interrupt ends the worker before its pipes close, so it cannot deadlock either."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario
from harness.targets.envs import Env
from harness.targets.runner import _run_worker

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), ((1, 0, AppBehaviour()),))


class SiteEnv(Env):
    """The harness's own environment, plus a sitecustomize the worker runs first."""

    def __init__(self, folder: Path, code: str) -> None:
        current = Env.current()
        super().__init__(current.path, current.info)
        (folder / "sitecustomize.py").write_text(code)
        self.folder = folder

    def python_env(self) -> dict[str, str]:
        env = super().python_env()
        env["PYTHONPATH"] = f"{self.folder}:{env['PYTHONPATH']}"
        return env


# 1 MB to stderr before the worker reads its request: far more than a pipe buffers.
NOISY = "import sys\nsys.stderr.write('x' * 1024 * 1024 + '\\nlast words\\n')\n"
# The process ended by code it imports, as by a server module that does so on import.
EXITING = "import os\nos._exit(0)\n"


def test_a_target_that_floods_stderr_still_gets_its_run(tmp_path: Path):
    request = {"op": "run", "server": "reference", "version": None, "http": "h11",
               "scenario": SCENARIO.to_json(), "seed": 0}
    outcome: dict[str, Any] = {}

    def call() -> None:
        outcome["result"] = _run_worker(SiteEnv(tmp_path, NOISY), request, lambda e, i: None)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=120)  # a deadlock would hang here, not forever
    if worker.is_alive():
        pytest.fail("the worker deadlocked on a full stderr pipe")
    assert outcome["result"]["failures"] == []
    assert outcome["result"]["responses"]["1"][0]["status"] == 200


def test_a_worker_ended_by_the_code_under_test_without_an_answer_is_the_target_s_fault(
        tmp_path: Path):
    from harness.errors import HarnessFault, TargetFault

    request = {"op": "run", "server": "reference", "version": None, "http": "h11",
               "scenario": SCENARIO.to_json(), "seed": 0}
    with pytest.raises(TargetFault, match=r"the worker for reference ended \(exit 0\) "
                       "without an answer: the code under test ended the process") as info:
        _run_worker(SiteEnv(tmp_path, EXITING), request, lambda e, i: None)
    assert not isinstance(info.value, HarnessFault)


def test_a_pipe_closed_under_its_reader_ends_the_drain_quietly():
    # A stream closed under the drain thread (the worker's Popen used to close stderr
    # on an interrupt) raised ValueError there, printing a traceback over the
    # interrupt's own message.
    import collections
    import io

    from harness.targets.runner import drain_into

    lines: collections.deque[str] = collections.deque()
    drain_into(io.StringIO("one\ntwo\n"), lines)
    assert list(lines) == ["one\n", "two\n"]
    closed = io.StringIO("three\n")
    closed.close()
    drain_into(closed, lines)  # raised ValueError before
    assert list(lines) == ["one\n", "two\n"]


# Run in a process of its own, so that a hang is bounded by the test's timeout and
# "no child left" speaks of this worker alone.
INTERRUPTED_WORKER = """
import json, os, platform, sys, threading
from harness.targets import runner
from harness.targets.envs import Env

READ = {"x86_64": "0", "aarch64": "63"}[platform.machine()]  # the read system call

class InterruptedSend:  # json, as the runner uses it, but an interrupt ends the send
    loads = staticmethod(json.loads)
    @staticmethod
    def dumps(obj):
        # Once the drain thread is blocked reading the worker's stderr: where leaving
        # `with Popen` deadlocked.
        [drain] = [t for t in threading.enumerate() if t is not threading.main_thread()]
        syscall = f"/proc/self/task/{drain.native_id}/syscall"
        while open(syscall).read().split()[0] != READ:
            pass
        raise KeyboardInterrupt

def progress(event, info):
    raise KeyboardInterrupt

if sys.argv[1] == "before-the-request":
    runner.json = InterruptedSend
request = {"op": "explore", "server": "reference", "version": None, "http": "h11",
           "families": ["keepalive"], "budget": 600, "seed": 0, "strategy": "random"}
try:
    runner._run_worker(Env.current(), request, progress)
except KeyboardInterrupt:
    pass
try:
    os.waitpid(-1, os.WNOHANG)
    print("a child is left")
except ChildProcessError:
    print("no child left, listed:", len(runner._LIVE))
"""


@pytest.mark.parametrize("when", ["before-the-request", "at-the-first-progress-event"])
def test_an_interrupt_stops_and_reaps_the_worker_before_its_pipes_close(when: str):
    # Before the fix, an interrupt before the request was sent hung the harness: leaving
    # `with Popen` closed stderr first, which waits for the drain thread's read, which
    # waited for a worker that was itself waiting for its request.
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_WORKER, when],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no child left, listed: 0\n", done.stdout + done.stderr
