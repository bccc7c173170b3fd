"""Real uvicorn source as a target: a working copy, and bisect over a git history.

The history is built here from two releases' source distributions (fetched by
`make fixtures` before the tests, so the tests themselves fetch nothing):
0.11.3, then the changes up to 0.12.3 in four commits grouped by what they
touch. Only the commit that brings 0.12.3's h11_impl.py carries uvicorn's fix
of #748 (upstream PR #848), and bisect must find it by the verdicts alone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.api import replay_trace_file
from harness.targets.envs import ensure_source_env
from harness.targets.registry import entry, target_specs
from harness.tools.cli import main
from tests.sdists import unpack, uvicorn_history

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HANG_748 = next((ROOT / "reports" / "uvicorn-0.11.3-h11").glob("receive-hang-*/trace.json"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sdists")
    return {v: unpack("uvicorn", v, root) for v in ("0.11.3", "0.12.3")}


def test_a_working_copy_of_0_11_3_hangs_and_one_of_0_12_3_does_not(sources):
    old = replay_trace_file(HANG_748, str(sources["0.11.3"]))
    assert [f["kind"] for f in old["failures"]] == ["receive-hang"]
    assert old["target"]["source"] == str(sources["0.11.3"])
    assert old["target"]["version"] == "0.11.3"
    new = replay_trace_file(HANG_748, str(sources["0.12.3"]))
    assert new["failures"] == []


def test_a_working_copy_gets_a_new_environment_when_it_is_edited(sources, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(sources["0.12.3"], copy)
    uvicorn = entry("uvicorn")
    first = ensure_source_env(uvicorn, str(copy))
    assert ensure_source_env(uvicorn, str(copy)).path == first.path  # cached
    assert any("build tools" in note for note in first.info.fallbacks)  # pre-PEP 440 metadata
    with open(copy / "uvicorn" / "main.py", "a") as f:
        f.write("\n# an edit\n")
    second = ensure_source_env(uvicorn, str(copy))
    assert second.path != first.path and second.info.key != first.info.key
    assert not list(copy.rglob("*.egg-info")) or (sources["0.12.3"] / "uvicorn.egg-info").exists()
    assert not (copy / "build").exists()  # built from a snapshot, never in the user's tree


def test_bisect_over_a_git_history_names_the_commit_that_fixed_748(
        sources, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    repo = tmp_path / "uvicorn"
    commits = uvicorn_history(sources, repo)
    code = main(["bisect", "--server", f"git+{repo}", "--good", "HEAD",
                 "--bad", commits["uvicorn 0.11.3"], "--trace", str(HANG_748)])
    out = capsys.readouterr().out
    assert code == 0, out
    verdicts = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(verdicts) >= 3  # both ends, and at least one commit between
    assert all(("fails" in v or "passes" in v) for v in verdicts), out
    named = re.search(r"first commit where the behaviour changed: (\w+) \S+ (.+?) \(fixed there",
                      out)
    assert named is not None, out
    assert commits["h11_impl"].startswith(named.group(1)) and named.group(2) == "h11_impl"


def test_bisect_refuses_ends_that_do_not_behave_as_named(sources, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]):
    repo = tmp_path / "uvicorn"
    commits = uvicorn_history(sources, repo)
    code = main(["bisect", "--server", f"git+{repo}", "--good", commits["uvicorn 0.11.3"],
                 "--bad", "HEAD", "--trace", str(HANG_748)])
    err = capsys.readouterr().err
    assert code == 2
    assert "the good end" in err and "fails, but a good end must pass" in err


def test_a_working_copy_spec_names_its_server_from_the_source(sources):
    [spec] = target_specs(str(sources["0.11.3"]), "h11")
    assert (spec.server, spec.source) == ("uvicorn", str(sources["0.11.3"]))


def test_a_worker_started_in_a_servers_own_tree_runs_the_release_not_the_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The plugin runs from a maintainer's checkout, where ./uvicorn is their code: the
    worker for uvicorn==0.11.3 must still import 0.11.3 from its environment."""
    (tmp_path / "uvicorn").mkdir()
    (tmp_path / "uvicorn" / "__init__.py").write_text("raise ImportError('the tree')\n")
    monkeypatch.chdir(tmp_path)
    verdict = replay_trace_file(HANG_748, "uvicorn==0.11.3")
    assert [f["kind"] for f in verdict["failures"]] == ["receive-hang"]
