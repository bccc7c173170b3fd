"""The source distributions the working-copy and bisect tests build from.

Fetched once by the Makefile (`make fixtures`, before the tests), from the
package index's simple API with its published sha256 checked, so the tests
themselves never reach for the network to get them. Run as
`python -m tests.sdists` to fetch what is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path(os.environ.get("HARNESS_CACHE", ROOT / ".harness-cache")) / "sdists"
INDEX = "https://pypi.org/simple"
WANTED = [("uvicorn", "0.11.3"), ("uvicorn", "0.12.3"), ("uvicorn", "0.54.0")]


def path_of(name: str, version: str) -> Path:
    return FOLDER / f"{name}-{version}.tar.gz"


def fetch(name: str, version: str) -> Path:
    final = path_of(name, version)
    if final.is_file():
        return final
    page = urllib.request.urlopen(f"{INDEX}/{name}/", timeout=60).read().decode()
    links = [u for u in re.findall(r'href="([^"]+)"', page)
             if u.split("#")[0].endswith(f"/{final.name}")]
    if not links:
        raise SystemExit(f"{final.name} is not on {INDEX}/{name}/")
    url, _, fragment = links[0].partition("#")
    data = urllib.request.urlopen(url, timeout=120).read()
    want = fragment.removeprefix("sha256=")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise SystemExit(f"{final.name}: sha256 mismatch (got {hashlib.sha256(data).hexdigest()})")
    FOLDER.mkdir(parents=True, exist_ok=True)
    part = final.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, final)
    return final


def unpack(name: str, version: str, into: Path) -> Path:
    """The sdist's top folder, unpacked under `into`; a clear failure if it was never
    fetched (never a skip: the Makefile fetches it before the tests)."""
    archive = path_of(name, version)
    assert archive.is_file(), (f"{archive} is missing: run `make fixtures` (make test does) "
                               "to fetch the source distributions the tests build from")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"{name}-{version}"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def uvicorn_history(sources: dict[str, Path], repo: Path) -> dict[str, str]:
    """A git history from 0.11.3 to 0.12.3 (tagged so), 0.12.3's files brought in by
    groups: packaging, the code outside protocols/http, h11_impl (which alone carries
    upstream's fix of #748, PR #848), then httptools_impl. The commit of each group."""
    shutil.copytree(sources["0.11.3"], repo)
    git(repo, "init", "-q")
    new_root = sources["0.12.3"]
    http = "uvicorn/protocols/http"
    commits = {}

    def commit(message: str, paths: list[str]) -> None:
        for rel in paths:
            new, here = new_root / rel, repo / rel
            if here.is_dir():
                shutil.rmtree(here)
            elif here.exists():
                here.unlink()
            if new.is_dir():
                shutil.copytree(new, here)
            elif new.exists():
                here.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(new, here)
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)
        commits[message] = git(repo, "rev-parse", "HEAD")

    commit("uvicorn 0.11.3", [])
    git(repo, "tag", "0.11.3")
    commit("packaging", ["setup.py", "setup.cfg", "MANIFEST.in", "README.md", "PKG-INFO",
                         "uvicorn.egg-info", "uvicorn/__init__.py"])
    commit("config, main, utils and the rest",
           sorted(str(p.relative_to(new_root)) for p in (new_root / "uvicorn").rglob("*.py")
                  if not p.is_relative_to(new_root / http)))
    commit("h11_impl", [f"{http}/h11_impl.py"])
    commit("httptools_impl", [f"{http}/httptools_impl.py", f"{http}/auto.py"])
    git(repo, "tag", "0.12.3")
    return commits


if __name__ == "__main__":
    for wanted in WANTED:
        print(fetch(*wanted), file=sys.stderr)
