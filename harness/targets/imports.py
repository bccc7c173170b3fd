"""A dependency of the release's time that installs but does not import on this Python.

websockets 4.0.1, the newest when uvicorn 0.1.1 was published, decorates with
`asyncio.coroutine`, which Python 3.11 removed: the release's protocol module
fails to import inside websockets. `culprit` reads the failed import's
traceback and names the dependency whose file raised (never the release
itself: nothing stands in for it). `nearest_importing` then finds the oldest
later release of that dependency whose module imports here, by bisection over
its releases (each tried in a scratch folder, installed with the same time
limits as the environment), assuming, as holds for removed APIs, that once a
release imports, the later ones do too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from harness.targets import era

FRAME = re.compile(r'^\s*File "([^"]+)", line \d+', re.M)


def imports(folder: Path, module: str) -> tuple[bool, str]:
    """Whether `module` imports with `folder` alone on the path, and its error output."""
    env = dict(os.environ, PYTHONPATH=str(folder), PYTHONNOUSERSITE="1")
    # -P: not from the current folder, which may be the server's own source tree.
    proc = subprocess.run([sys.executable, "-P", "-c", f"import {module}"], env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode == 0, proc.stderr


def _owners(site: Path) -> dict[str, tuple[str, str]]:
    """Each file a distribution in `site` installed (relative path) -> its name, version."""
    out = {}
    for meta in site.glob("*.dist-info"):
        name, _, version = meta.name.removesuffix(".dist-info").rpartition("-")
        record = meta / "RECORD"
        if not record.is_file():
            continue
        for line in record.read_text(errors="replace").splitlines():
            out[line.split(",", 1)[0]] = (str(canonicalize_name(name)), version)
    return out


def culprit(site: Path, stderr: str, target: str) -> tuple[str, str, str] | None:
    """The dependency whose file raised in a failed import's traceback: its name, its
    version, and the outermost module of it the import went through (what the release
    imports of it); None when the release's own code raised, or nothing in `site` did."""
    root = site.resolve()
    owners = _owners(site)
    frames = []
    for path in FRAME.findall(stderr):
        resolved = Path(path).resolve()
        if root in resolved.parents:
            relative = resolved.relative_to(root).as_posix()
            frames.append((relative, owners.get(relative)))
    if not frames or frames[-1][1] is None or frames[-1][1][0] == canonicalize_name(target):
        return None
    name, version = frames[-1][1]
    outermost = next(rel for rel, owner in frames if owner == (name, version))
    module = outermost.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return name, version, module


def nearest_importing(name: str, since: str, module: str,
                      install: Callable[[Path, str, era.Release], bool]) -> era.Release | None:
    """The oldest release of `name` after `since` in which `module` imports on this
    Python; `install(folder, requirement, release)` puts one into a scratch folder."""
    start = Version(since)
    candidates = [r for v, r in era.releases(name).items()
                  if v > start and not v.is_prerelease and not r.yanked and era.python_ok(r)]
    low, high = 0, len(candidates)  # the answer's index lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        release = candidates[middle]
        with tempfile.TemporaryDirectory(prefix="harness-try-") as tmp:
            folder = Path(tmp) / "site"
            ok = install(folder, f"{name}=={release.version}", release) and \
                imports(folder, module)[0]
        if ok:
            high = middle
        else:
            low = middle + 1
    return candidates[low] if low < len(candidates) else None
