"""The worker's pipes: a target that writes a lot to stderr cannot deadlock the run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario
from harness.targets.envs import Env
from harness.targets.runner import _run_worker

SCENARIO = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), ((1, 0, AppBehaviour()),))


class NoisyEnv(Env):
    """The harness's own environment, plus a sitecustomize that writes 1 MB to stderr
    before the worker reads its request: far more than a pipe buffers."""

    def __init__(self, folder: Path) -> None:
        current = Env.current()
        super().__init__(current.path, current.info)
        (folder / "sitecustomize.py").write_text(
            "import sys\nsys.stderr.write('x' * 1024 * 1024 + '\\\\nlast words\\\\n')\n")
        self.folder = folder

    def python_env(self) -> dict[str, str]:
        env = super().python_env()
        env["PYTHONPATH"] = f"{self.folder}:{env['PYTHONPATH']}"
        return env


def test_a_target_that_floods_stderr_still_gets_its_run(tmp_path: Path):
    request = {"op": "run", "server": "reference", "version": None, "http": "h11",
               "scenario": SCENARIO.to_json(), "seed": 0}
    outcome: dict[str, Any] = {}

    def call() -> None:
        outcome["result"] = _run_worker(NoisyEnv(tmp_path), request, lambda e, i: None)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=120)  # a deadlock would hang here, not forever
    if worker.is_alive():
        pytest.fail("the worker deadlocked on a full stderr pipe")
    assert outcome["result"]["failures"] == []
    assert outcome["result"]["responses"]["1"][0]["status"] == 200


def test_a_pipe_closed_under_its_reader_ends_the_drain_quietly():
    # An interrupt unwinds the worker's Popen, which closes stderr while the drain
    # thread still iterates it; that thread's ValueError used to print a traceback over
    # the interrupt's own message.
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
