"""Environments: each target release installed once, into its own cached folder.

Rule 5 (DESIGN.md): one target version per process. Nothing here names a
server: the registry entry says which distribution to install and which
modules must import for each protocol implementation. A release is installed
with `pip install --no-deps --target <cache>/<server>-<version>/site`, then
each requirement its metadata declares is installed at the declared version
where that works on this Python, and at the newest release of that package
where it does not; every fallback is recorded in `env.json` and shown in
reports. A worker process puts the site folder first on `sys.path`, so the
release's own pins (an old h11, say) shadow the harness's.

Installs are atomic: they happen in a temporary folder that is renamed into
place only once the release imports, so an interrupted or failed install
leaves nothing behind.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from harness.errors import EnvironmentFault
from harness.targets.registry import TargetEntry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_FORMAT = 1


class EnvError(EnvironmentFault):
    """A release that cannot be installed or imported; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", PROJECT_ROOT / ".harness-cache")) / "envs"


@dataclass
class EnvInfo:
    server: str
    version: str
    python: str
    installed: dict[str, str] = field(default_factory=dict)  # package -> version
    fallbacks: list[str] = field(default_factory=list)  # human-readable notes
    skipped: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)  # http implementations that import
    distribution: str = ""  # what was installed from the index
    format: int = ENV_FORMAT


@dataclass
class Env:
    path: Path
    info: EnvInfo

    @property
    def site(self) -> Path:
        return self.path / "site"

    @classmethod
    def current(cls) -> Env:
        """The harness's own environment (its installed releases), for parallel workers."""
        return cls(PROJECT_ROOT, EnvInfo("installed", "", _python_tag()))

    def python_env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.site)] if self.info.server != "installed" else []
        env["PYTHONPATH"] = os.pathsep.join([*paths, str(PROJECT_ROOT)])
        env["PYTHONNOUSERSITE"] = "1"
        return env


Log = Callable[[str], None]
NETWORK_ERRORS = ("Retrying", "NewConnectionError", "ConnectionError", "Max retries exceeded",
                  "Temporary failure in name resolution", "timed out")

# pip 24.1+ refuses releases whose metadata uses pre-PEP 440 specifiers (uvicorn 0.12.3
# declares "python-dotenv (>=0.13.*)"), so releases are installed with an older pip,
# itself installed once into the cache. Rule 5: install what the release declares.
INSTALLER_PIP = "pip>=23,<24.1"


def _installer() -> Path:
    final = cache_dir().parent / "installer-pip"
    if (final / "pip").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".installer-pip-", dir=final.parent))
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "install",
           "--no-deps", "--target", str(work), INSTALLER_PIP]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise EnvError(f"could not set up the installer ({INSTALLER_PIP}):\n"
                       f"{_last_lines(proc.stderr)}")
    try:
        os.replace(work, final)
    except OSError:  # another process won the race; use theirs
        shutil.rmtree(work, ignore_errors=True)
    return final


def _pip(args: list[str], log: Log) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    log("pip " + " ".join(args))
    env = dict(os.environ, PYTHONPATH=str(_installer()), PYTHONNOUSERSITE="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def _last_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join("    " + ln for ln in lines[-n:])


def _requirements(site: Path, dist: str) -> list[Requirement]:
    pattern = re.compile(rf"^{re.escape(dist).replace('_', '[-_]')}-.*\.(dist|egg)-info$", re.I)
    for entry in site.iterdir():
        if pattern.match(entry.name):
            meta = entry / ("METADATA" if entry.name.endswith("dist-info") else "PKG-INFO")
            if not meta.exists():
                continue
            reqs = []
            for line in meta.read_text(errors="replace").splitlines():
                if line.startswith("Requires-Dist:"):
                    try:
                        reqs.append(Requirement(line.split(":", 1)[1].strip()))
                    except InvalidRequirement:
                        continue
            return reqs
    return []


def _applies(req: Requirement) -> bool:
    """Skip extras and requirements for other Pythons or platforms."""
    if req.marker is None:
        return True
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env["extra"] = ""
    return bool(req.marker.evaluate(env))


def _installed_versions(site: Path) -> dict[str, str]:
    out = {}
    for entry in site.iterdir():
        m = re.match(r"^(.+?)-([^-]+)\.(dist|egg)-info$", entry.name)
        if m:
            out[_canonical(m.group(1))] = m.group(2)
    return dict(sorted(out.items()))


def _probe_protocols(site: Path, entry: TargetEntry) -> list[str]:
    ok = []
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    for name, module in entry.protocol_modules.items():
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], env=env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            ok.append(name)
    return ok


def ensure_env(entry: TargetEntry, version: str, log: Log = lambda s: None) -> Env:
    """The cached environment for `entry`'s release `version`, installing it on first use."""
    if entry.distribution is None:
        raise EnvError(f"{entry.name} has no releases to install; run it as --server "
                       f"{entry.name}")
    final = cache_dir() / f"{entry.name}-{version}"
    info_path = final / "env.json"
    if info_path.exists():
        try:
            data = json.loads(info_path.read_text())
            info = EnvInfo(**data)
            if info.format == ENV_FORMAT and info.python == _python_tag():
                env = Env(final, info)
                check_env(env, entry)
                return env
        except (ValueError, TypeError):
            pass
        shutil.rmtree(final, ignore_errors=True)  # stale or from another Python
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}-{version}-", dir=final.parent))
    try:
        info = _install(entry, version, work / "site", log)
        (work / "env.json").write_text(json.dumps(asdict(info), indent=1) + "\n")
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Env(final, info)


def check_env(env: Env, entry: TargetEntry) -> None:
    """A cached release whose files are gone is an error, never a silent run of whatever
    else is importable (the harness's own release of the same server, say)."""
    assert entry.distribution is not None
    found = _installed_versions(env.site) if env.site.is_dir() else {}
    have = found.get(_canonical(entry.distribution))
    if have != env.info.version:
        raise EnvError(
            f"the cached environment {env.path} is damaged: it should hold "
            f"{entry.distribution} {env.info.version} but holds "
            f"{have or 'no release of it'}; remove it (rm -rf {env.path}) and run again "
            "to reinstall")


def _has_dist(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _install(entry: TargetEntry, version: str, site: Path, log: Log) -> EnvInfo:
    assert entry.distribution is not None
    server = entry.distribution
    site.mkdir(parents=True)
    args = ["install", "--no-deps", "--target", str(site), f"{server}=={version}"]
    proc = _pip(args, log)
    if proc.returncode != 0:  # one retry: a flaky index answer looks like a missing release
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir(parents=True)
        proc = _pip(args, log)
    if proc.returncode != 0:
        if any(word in proc.stderr for word in NETWORK_ERRORS):
            raise EnvError(f"installing {server}=={version}: the package index could not be "
                           f"reached; check the network and retry:\n{_last_lines(proc.stderr)}")
        if "No matching distribution" in proc.stderr or "Could not find a version" in proc.stderr:
            raise EnvError(
                f"{server}=={version} does not exist on PyPI; list releases with "
                f"'pip index versions {server}'"
            )
        raise EnvError(f"installing {server}=={version} failed:\n{_last_lines(proc.stderr)}")
    info = EnvInfo(entry.name, version, _python_tag(), distribution=server)
    span = entry.version_range(version)
    replacements = dict(span.fallbacks) if span else {}
    for req in _requirements(site, server):
        if not _applies(req):
            continue
        spec = str(req.specifier)
        pinned = f"{req.name}{spec}"
        proc = _pip(["install", "--no-deps", "--target", str(site), pinned], log)
        if proc.returncode == 0:
            continue
        instead = replacements.get(_canonical(req.name), req.name)
        newest = _pip(["install", "--no-deps", "--upgrade", "--target", str(site), instead], log)
        if newest.returncode == 0:
            what = "the newest " + req.name if instead == req.name else instead
            info.fallbacks.append(f"{pinned} does not install on Python {_python_tag()}; "
                                  f"used {what}")
        else:
            info.skipped.append(f"{pinned}: neither it nor the newest release installs")
    info.installed = _installed_versions(site)
    info.protocols = _probe_protocols(site, entry)
    for module in entry.protocols:  # a protocol whose library the release does not declare
        if module not in info.installed and module in info.protocols and _has_dist(module):
            info.fallbacks.append(f"{module} is not among its requirements; the harness's own "
                                  f"{module} {importlib.metadata.version(module)} is used")
    if not info.protocols:
        raise EnvError(
            f"{server}=={version} installed, but none of its HTTP protocols imports on "
            f"Python {_python_tag()} ({'; '.join(info.fallbacks + info.skipped) or 'no fallbacks'})"
        )
    return info
