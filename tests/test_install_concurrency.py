"""Installs are safe under concurrency: one install per release, whoever asks, and never a
half-made environment visible or left behind. These install a real release, so slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets.envs import ENV_FORMAT

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

INSTALL = """
import json, sys
from harness.targets.envs import ensure_env
from harness.targets.registry import entry
lines = []
env = ensure_env(entry("uvicorn"), "0.12.3", lines.append)
print(json.dumps({"log": lines, "installed": env.info.installed, "path": str(env.path)}))
"""


def test_two_processes_asking_for_one_new_release_share_one_install(tmp_path: Path):
    # What an interrupted install leaves: a hidden work folder, never renamed into place.
    (tmp_path / "envs" / ".uvicorn-0.12.3-killed" / "site").mkdir(parents=True)
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", INSTALL], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    installs = [r for r in results if any(line.startswith(("uv ", "pip ")) for line in r["log"])]
    assert len(installs) == 1, [r["log"] for r in results]
    assert results[0]["installed"] == results[1]["installed"]
    assert results[0]["installed"]["uvicorn"] == "0.12.3"
    left = sorted(p.name for p in (tmp_path / "envs").iterdir())
    assert left == ["uvicorn-0.12.3"]  # the leftover is gone, nothing half-made is visible
    info = json.loads((tmp_path / "envs" / "uvicorn-0.12.3" / "env.json").read_text())
    assert info["format"] == ENV_FORMAT and info["installer"].startswith("uv")


def test_two_jobs_of_one_explore_on_a_release_not_yet_installed_share_its_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from harness.tools.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    code = main(["explore", "--server", "uvicorn==0.12.3", "--jobs", "2", "--max-runs", "20",
                 "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert sorted(p.name for p in (tmp_path / "envs").iterdir()) == ["uvicorn-0.12.3"]
