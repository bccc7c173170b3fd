"""Targets that are not releases on the index: a working copy, or a git commit.

A maintainer's question is about their own code: "does my branch still hang?",
"which commit fixed it?". Both spellings go wherever `--server` goes (explore,
replay, bisect, the pytest plugin), beside NAME and NAME==VERSION:

    ./uvicorn  /src/uvicorn  ~/uvicorn     a working copy, as it is on disk now
    git+/src/uvicorn@de213614              a commit of a local git repository
    git+file:///src/uvicorn@0.12.3         (any revision git understands)

Which server it is comes from the project's own metadata (its distribution
name), matched against the registry. Each is built and installed, with what
it declares, into its own cached environment (targets/envs.py), keyed by what
it is: a commit by its hash, a working copy by a digest of its files, so an
edit gives a new environment and an unchanged copy reuses the old one. The
copy is built from a snapshot in a temporary folder: building never writes
into the user's tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from harness.errors import InputError

# Never part of a working copy's content: VCS data, caches and build output.
SKIP_DIRS = {".git", ".hg", "__pycache__", ".tox", ".nox", ".venv", "venv", "build", "dist",
             "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".harness-cache",
             ".eggs"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")


class SourceError(InputError):
    """A working copy or commit that cannot be used as given; the message says why."""


@dataclass(frozen=True)
class Source:
    kind: str  # "path" (a working copy) or "git" (a commit of a local repository)
    location: Path  # the working copy, or the repository
    commit: str | None = None  # git: the full hash the revision resolved to

    @property
    def spec(self) -> str:
        """The canonical spelling: given back to --server, it names the same code."""
        return str(self.location) if self.kind == "path" else f"git+{self.location}@{self.commit}"

    def __str__(self) -> str:
        if self.kind == "path":
            return f"working copy {self.location}"
        assert self.commit is not None
        return f"{self.location} at commit {self.commit[:12]}"


def is_source(text: str) -> bool:
    """Does this --server value name a working copy or a git commit (not NAME[==X])?"""
    text = text.strip()
    return text.startswith(("git+", "/", "./", "../", "~")) or text in (".", "..") \
        or ("/" in text and "==" not in text)


def parse_source(text: str) -> Source:
    text = text.strip()
    if text.startswith("git+"):
        return _parse_git(text.removeprefix("git+"), text)
    path = Path(os.path.expanduser(text)).resolve()
    if not path.is_dir():
        what = "a file, not a folder" if path.exists() else "no such folder"
        raise SourceError(f"--server {text}: {what}; give the path of a working copy "
                          "(the folder holding its pyproject.toml or setup.py)")
    return Source("path", path)


def _parse_git(rest: str, text: str) -> Source:
    m = re.fullmatch(r"(.+?)(?:@([^@/]+))?", rest)
    assert m is not None
    repo, rev = m.group(1), m.group(2) or "HEAD"
    if re.match(r"^[a-z][a-z0-9+.-]*://", repo) and not repo.startswith("file://"):
        raise SourceError(f"--server {text}: only local repositories are supported; clone it "
                          f"first (git clone {repo} DIR) and give git+DIR@{rev}")
    path = Path(os.path.expanduser(repo.removeprefix("file://"))).resolve()
    top = _git(path, "rev-parse", "--show-toplevel", what=text, fix="give the folder of a "
               "git repository") if not (path / "HEAD").is_file() else str(path)
    path = Path(top)
    commit = _git(path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", what=text,
                  fix=f"{rev!r} is not a commit of {path}; see 'git -C {path} log --oneline'")
    return Source("git", path, commit)


def _git(repo: Path, *args: str, what: str, fix: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=120)
    except FileNotFoundError:
        raise SourceError(f"--server {what}: git is not installed; install git") from None
    if proc.returncode != 0:
        raise SourceError(f"--server {what}: {fix}")
    return proc.stdout.strip()


def commits_between(repo: Path, older: str, newer: str) -> list[str]:
    """The commits from `older` to `newer` (both included), oldest first, along the
    ancestry path: the history bisect walks."""
    out = _git(repo, "rev-list", "--reverse", "--topo-order", "--ancestry-path",
               f"{older}..{newer}", what=f"git+{repo}",
               fix=f"cannot list the commits from {older[:12]} to {newer[:12]}")
    return [older, *out.split()]


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    proc = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", older, newer],
                          capture_output=True, timeout=60)
    return proc.returncode == 0


def subject(repo: Path, commit: str) -> str:
    """One line for a commit: short hash, date, subject."""
    return _git(repo, "log", "-1", "--format=%h %ad %s", "--date=short", commit,
                what=f"git+{repo}@{commit}", fix="the commit is gone")


# -- what the code is ----------------------------------------------------------------
def distribution_name(tree: Path) -> str | None:
    """The distribution a source tree builds, from its own metadata."""
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file():
        try:
            name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
        except tomllib.TOMLDecodeError:
            name = None
        if isinstance(name, str):
            return canonicalize_name(name)
    for script, pattern in (("setup.cfg", r"^\s*name\s*=\s*([\w.-]+)"),
                            ("setup.py", r"\bname\s*=\s*['\"]([\w.-]+)['\"]")):
        path = tree / script
        if path.is_file():
            m = re.search(pattern, path.read_text(errors="replace"), re.M)
            if m:
                return canonicalize_name(m.group(1))
    return None


def content_key(tree: Path) -> str:
    """A digest of a working copy's files (names and bytes): what it is, not where."""
    digest = hashlib.sha256()
    for path in _files(tree):
        digest.update(str(path.relative_to(tree)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _files(tree: Path) -> list[Path]:
    out: list[Path] = []
    for folder, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(SKIP_SUFFIXES))
        out.extend(Path(folder) / f for f in sorted(files) if not f.endswith(SKIP_SUFFIXES))
    return [p for p in out if p.is_file()]


def key_of(source: Source) -> str:
    """What keys the cached environment: the commit, or the working copy's content."""
    if source.kind == "git":
        assert source.commit is not None
        return source.commit
    return content_key(source.location)


def snapshot(source: Source, dest: Path) -> None:
    """The code, copied into `dest` (which must not exist) for building."""
    if source.kind == "path":
        dest.mkdir(parents=True)
        for path in _files(source.location):
            target = dest / path.relative_to(source.location)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return
    dest.mkdir(parents=True)
    assert source.commit is not None
    archive = subprocess.run(["git", "-C", str(source.location), "archive", source.commit],
                             capture_output=True, timeout=300)
    if archive.returncode != 0:
        raise SourceError(f"git archive of {source} failed: "
                          f"{archive.stderr.decode(errors='replace').strip()}")
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout,
                           capture_output=True, timeout=300)
    if untar.returncode != 0:
        raise SourceError(f"unpacking {source} failed: "
                          f"{untar.stderr.decode(errors='replace').strip()}")


def tree_of(source: Source, scratch: Path) -> Path:
    """A folder holding the code's top level, to read its metadata from."""
    if source.kind == "path":
        return source.location
    for name in ("pyproject.toml", "setup.py", "setup.cfg"):
        assert source.commit is not None
        proc = subprocess.run(["git", "-C", str(source.location), "show",
                               f"{source.commit}:{name}"], capture_output=True, timeout=60)
        if proc.returncode == 0:
            scratch.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_bytes(proc.stdout)
    return scratch
