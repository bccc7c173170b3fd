"""Working copies and git commits as targets: how they are named, keyed and recognised.

Fast tests on small trees made here; building and running real uvicorn source
is in tests/test_source_builds.py (slow)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.targets.registry import label_of, target_specs
from harness.targets.source import (
    SourceError,
    commits_between,
    content_key,
    distribution_name,
    is_source,
    parse_source,
)


def tree(root: Path, name: str = "uvicorn", how: str = "setup.py") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if how == "setup.py":
        (root / "setup.py").write_text(f"from setuptools import setup\nsetup(\n    name='{name}',"
                                       "\n    version='0.0.1',\n)\n")
    else:
        (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "1"\n')
    (root / name).mkdir(exist_ok=True)
    (root / name / "__init__.py").write_text("__version__ = '0.0.1'\n")
    return root


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(("text", "source"), [
    ("uvicorn", False), ("uvicorn==0.11.3", False), ("reference", False),
    ("./uvicorn", True), ("/src/uvicorn", True), ("~/uvicorn", True), (".", True),
    ("git+/src/uvicorn@abc", True), ("src/uvicorn", True),
])
def test_a_server_spec_names_a_release_or_a_source(text: str, source: bool):
    assert is_source(text) is source


def test_the_distribution_name_comes_from_the_trees_own_metadata(tmp_path: Path):
    assert distribution_name(tree(tmp_path / "a")) == "uvicorn"
    assert distribution_name(tree(tmp_path / "b", "Hypercorn", "pyproject")) == "hypercorn"
    assert distribution_name(tmp_path) is None


def test_a_working_copy_is_recognised_by_its_distribution(tmp_path: Path):
    specs = target_specs(str(tree(tmp_path / "uv")), "all")
    assert [(s.server, s.http) for s in specs] == [("uvicorn", "h11"), ("uvicorn", "httptools")]
    assert all(s.source == str(tmp_path / "uv") and s.version is None for s in specs)
    assert not specs[0].in_process()  # never the harness's own uvicorn
    assert specs[0].label == "uvicorn-wc.uv-h11"


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: tree(p / "x", "flask"), "the source of 'flask', which no registered server"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no pyproject.toml, setup.cfg or setup.py"),
])
def test_a_source_that_is_not_a_server_is_refused_by_name(tmp_path: Path, make, message: str):
    with pytest.raises(InputError, match=message):
        target_specs(str(make(tmp_path)))


def test_an_edit_changes_the_content_key_and_caches_do_not(tmp_path: Path):
    copy = tree(tmp_path / "uv")
    before = content_key(copy)
    (copy / "uvicorn" / "__pycache__").mkdir()
    (copy / "uvicorn" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (copy / "build").mkdir()
    (copy / "build" / "lib.py").write_text("built")
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref")
    assert content_key(copy) == before
    (copy / "uvicorn" / "__init__.py").write_text("__version__ = '0.0.2'\n")
    assert content_key(copy) != before
    # Where it lives is not what it is.
    other = tree(tmp_path / "elsewhere")
    (other / "uvicorn" / "__init__.py").write_text("__version__ = '0.0.2'\n")
    assert content_key(other) == content_key(copy)


def test_a_git_revision_resolves_to_its_commit_and_the_history_between(tmp_path: Path):
    repo = tree(tmp_path / "repo")
    git(repo, "init", "-q")
    first = commit_all(repo, "one")
    (repo / "uvicorn" / "a.py").write_text("a = 1\n")
    second = commit_all(repo, "two")
    git(repo, "tag", "v2")
    (repo / "uvicorn" / "a.py").write_text("a = 2\n")
    third = commit_all(repo, "three")
    assert parse_source(f"git+{repo}@v2").commit == second
    assert parse_source(f"git+file://{repo}").commit == third  # HEAD by default
    assert parse_source(f"git+{repo}@{first[:8]}").spec == f"git+{repo}@{first}"
    assert commits_between(repo, first, third) == [first, second, third]
    [spec] = target_specs(f"git+{repo}@v2")
    assert (spec.server, spec.source) == ("uvicorn", f"git+{repo}@{second}")
    assert label_of({"server": "uvicorn", "version": "0.0.1", "http": "h11",
                     "source": spec.source}) == f"uvicorn-0.0.1+git.{second[:10]}-h11"


@pytest.mark.parametrize(("rev", "message"), [
    ("nope", "'nope' is not a commit of"),
])
def test_a_bad_revision_or_repository_is_refused_by_name(tmp_path: Path, rev: str,
                                                         message: str):
    repo = tree(tmp_path / "repo")
    git(repo, "init", "-q")
    commit_all(repo, "one")
    with pytest.raises(SourceError, match=message):
        parse_source(f"git+{repo}@{rev}")
    with pytest.raises(SourceError, match="give the folder of a git repository"):
        parse_source(f"git+{tmp_path}@HEAD")
    with pytest.raises(SourceError, match="clone it first"):
        parse_source("git+https://github.com/encode/uvicorn@0.12.3")


def test_bisect_names_the_end_that_is_not_a_commit(tmp_path: Path, capsys):
    from harness.tools.cli import main

    repo = tree(tmp_path / "repo")
    git(repo, "init", "-q")
    commit_all(repo, "one")
    code = main(["bisect", "--server", f"git+{repo}", "--good", "HEAD", "--bad", "nope",
                 "--scenario", "keepalive"])
    err = capsys.readouterr().err
    assert code == 2 and "--bad nope: not a commit of" in err
    assert len(err.strip().splitlines()) == 1


def test_bisect_refuses_two_names_of_one_commit(tmp_path: Path, capsys):
    from harness.tools.cli import main

    repo = tree(tmp_path / "repo")
    git(repo, "init", "-q")
    head = commit_all(repo, "one")
    code = main(["bisect", "--server", f"git+{repo}", "--good", "HEAD", "--bad", head[:8],
                 "--scenario", "keepalive"])
    err = capsys.readouterr().err
    assert code == 2 and f"--good HEAD and --bad {head[:8]} are both commit {head[:12]}" in err
    assert len(err.strip().splitlines()) == 1
