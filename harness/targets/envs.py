"""Environments: each target release installed once, into its own cached folder.

Rule 5 (README): one target version per process. Nothing here names a
server: the registry entry says which distribution to install and which
modules must import for each protocol implementation. targets/install.py puts
the release and what it declares into `<cache>/<server>-<version>/site`; what
was installed, by which tool, and every fallback go into `env.json` and the
reports. A worker process imports the harness, then puts the site folder first
on `sys.path` (targets/worker.py), so the release runs on its own pins (an old
h11, say) and the harness on its own, and checks that the release it imports
comes from there (a damaged cache is an error).

Installs are atomic: they happen in a temporary folder that is renamed into
place only once the release imports, so an interrupted or failed install
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from harness.targets import era
from harness.targets.imports import culprit, imports, nearest_importing
from harness.targets.install import (
    EnvError,
    Installed,
    Refits,
    install,
    installed,
    python_tag,
    scratch_installer,
)
from harness.targets.registry import TargetEntry, TargetError, TargetSpec
from harness.targets.source import Source, key_of, parse_source, snapshot

__all__ = [
    "Env",
    "EnvError",
    "EnvInfo",
    "cache_dir",
    "check_env",
    "ensure_env",
    "ensure_source_env",
    "ensure_target_env",
    "harness_home",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # a checkout, or site-packages
# 2: installed by targets/install.py (uv, with the whole dependency tree); 3: with the
# dependencies of the release's time (targets/era.py), each one's origin recorded
ENV_FORMAT = 3
MAX_REFITS = 4  # dependencies of the release's time replaced because they do not import


def harness_home() -> Path:
    """Where the harness keeps what it makes: $HARNESS_CACHE; else `.harness-cache` in
    this checkout when it runs from one; else in the current folder (a server's own
    project, with the harness installed from the index), as pytest keeps .pytest_cache."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"])
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "harness").is_dir():
        return PROJECT_ROOT / ".harness-cache"
    return Path.cwd() / ".harness-cache"


def cache_dir() -> Path:
    return harness_home() / "envs"


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
    installer: str = ""  # the tool that installed it, and its version
    source: str = ""  # a working copy or commit: its --server spelling (targets/source.py)
    key: str = ""  # and what keys it: the commit, or the digest of the copy's files
    # when the release was published (its first file's upload, UTC): its dependencies are
    # the newest uploaded before then; "" when they are today's (a source tree, pip)
    published: str = ""
    # each installed dependency -> "of its time", "fallback" (let past that time: it does
    # not build on this Python, see fallbacks), "pinned" (the registry's range pins it)
    # or "today's"
    origins: dict[str, str] = field(default_factory=dict)
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
        return cls(PROJECT_ROOT, EnvInfo("installed", "", python_tag()))

    def python_env(self) -> dict[str, str]:
        """A worker's: the harness importable, the release's folder not yet (the worker
        mounts it once the harness is imported, targets/worker.py)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        env["PYTHONNOUSERSITE"] = "1"
        return env


Log = Callable[[str], None]
def _installed_versions(site: Path) -> dict[str, str]:
    return {name: version for name, (version, _) in installed(site).items()}


def _probe_protocols(site: Path, entry: TargetEntry,
                     version: str) -> tuple[list[str], list[str]]:
    """The protocols whose module imports, and the import error of each that does not."""
    ok, errors = [], []
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    for name, module in entry.modules_for(version).items():
        # -P: not from the current folder, which may be the server's own source tree.
        proc = subprocess.run([sys.executable, "-P", "-c", f"import {module}"], env=env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            ok.append(name)
        else:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            errors.append(f"import {module}: {last}")
    return ok, errors


def ensure_env(entry: TargetEntry, version: str, log: Log = lambda s: None) -> Env:
    """The cached environment for `entry`'s release `version`, installing it on first use."""
    if entry.distribution is None:
        raise EnvError(f"{entry.name} has no releases to install; run it as --server "
                       f"{entry.name}")
    return _ensure(entry, f"{entry.name}-{version}",
                   lambda site: _install(entry, version, site, log), log)


def check_published(spec: TargetSpec) -> None:
    """Refuse, before any work, a release that is neither installed here nor cached and
    that the index does not list (one read of its page, which the install reads anyway):
    era.Unpublished, or era.EraError if the index cannot be reached."""
    entry = spec.entry
    if spec.source is not None or spec.in_process() or spec.version is None \
            or entry.distribution is None:
        return
    if _cached(cache_dir() / f"{entry.name}-{spec.version}", entry) is None:
        era.published(entry.distribution, spec.version)


def ensure_source_env(entry: TargetEntry, spec: str, log: Log = lambda s: None) -> Env:
    """The cached environment for a working copy or commit (targets/source.py), keyed by
    what it is: an edited working copy gets a new one. Its version is the one its own
    metadata declares."""
    source = parse_source(spec)
    key = key_of(source)
    short = key[:12] if source.kind == "git" else f"wc{key[:12]}"
    return _ensure(entry, f"{entry.name}-{source.kind}-{short}",
                   lambda site: _install_source(entry, source, key, site, log), log)


def ensure_target_env(spec: TargetSpec, log: Log = lambda s: None) -> Env | None:
    """Where `spec` runs: None for the release installed beside the harness, else its
    cached environment (installed on first use)."""
    if spec.source is not None:
        return ensure_source_env(spec.entry, spec.source, log)
    if spec.in_process():
        return None
    assert spec.version is not None
    return ensure_env(spec.entry, spec.version, log)


def _ensure(entry: TargetEntry, name: str, install_into: Callable[[Path], EnvInfo],
            log: Log) -> Env:
    """One install per environment, whoever asks: threads of one explore, several
    explores, CI shards sharing a cache. The install runs under a file lock, into a
    hidden folder renamed into place only when complete; a later install cleans up what
    an interrupted one left, so a half-made environment is never visible."""
    final = cache_dir() / name
    env = _cached(final, entry)
    if env is not None:
        return env
    locks = final.parent.parent / "locks"  # beside envs/, which holds only environments
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        locks.mkdir(exist_ok=True)
    except OSError as exc:
        raise EnvError(f"the harness's cache {harness_home()} cannot be written "
                       f"({exc.strerror or exc}); point HARNESS_CACHE at a folder you can "
                       "write") from None
    with _locked(locks / f"{name}.lock", log):
        env = _cached(final, entry)  # another process may have installed it meanwhile
        if env is not None:
            return env
        for leftover in final.parent.glob(f".{name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted install's
        shutil.rmtree(final, ignore_errors=True)  # stale, or from another Python
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
        try:
            info = install_into(work / "site")
            (work / "env.json").write_text(json.dumps(asdict(info), indent=1) + "\n")
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return Env(final, info)


def _cached(final: Path, entry: TargetEntry) -> Env | None:
    """The installed environment, None if it must be (re)installed; damage is an error."""
    try:
        info = EnvInfo(**json.loads((final / "env.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if info.format != ENV_FORMAT or info.python != python_tag():
        return None
    env = Env(final, info)
    check_env(env, entry)
    return env


@contextlib.contextmanager
def _locked(path: Path, log: Log) -> Iterator[None]:
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another install of the same release ({path.name})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_env(env: Env, entry: TargetEntry) -> None:
    """A cached release whose files are gone is an error, never a silent run of whatever
    else is importable (the harness's own release of the same server, say)."""
    assert entry.distribution is not None
    found = _installed_versions(env.site) if env.site.is_dir() else {}
    have = found.get(canonicalize_name(entry.distribution))
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


def _refuse_another_spelling(distribution: str, version: str) -> None:
    """`uvicorn==0.11` installs 0.11.0 (PEP 440 calls them equal), which the environment
    named 0.11 would then not hold. One release, one name: the index's."""
    try:
        published = str(era.published(distribution, version).version)
    except era.EraError:
        return  # not listed, or not readable: the install itself says so
    if published != version:
        raise TargetError(f"{distribution} {version} is published as {published}; write "
                          f"{distribution}=={published}")


def _install(entry: TargetEntry, version: str, site: Path, log: Log) -> EnvInfo:
    assert entry.distribution is not None
    _refuse_another_spelling(entry.distribution, version)
    refits: Refits = {}
    for tries in range(MAX_REFITS + 1):
        done = install(entry, version, site, cache_dir().parent, log, refits=refits)
        refit = _refit(entry, version, site, done, log) if done.published else None
        if refit is None or tries == MAX_REFITS:
            break
        # reinstall with it, and with the stand-ins already found (no failed build again)
        refits.update({**done.refits, **refit})
        shutil.rmtree(site)
    info = EnvInfo(entry.name, version, python_tag(), distribution=entry.distribution,
                   installer=done.installer, fallbacks=done.fallbacks, skipped=done.skipped,
                   published=done.published)
    return _finish(entry, info, site, f"{entry.distribution}=={version}", done.exempt)


def _refit(entry: TargetEntry, version: str, site: Path, done: Installed,
           log: Log) -> Refits | None:
    """A dependency of the release's time whose import fails here, and the oldest later
    release of it that imports (targets/imports.py); None when every protocol imports, or
    the failure is the release's own or one no later release mends."""
    assert entry.distribution is not None
    for module in entry.modules_for(version).values():
        ok, stderr = imports(site, module)
        found = None if ok else culprit(site, stderr, entry.distribution)
        if found is None or found[0] in done.exempt:
            continue
        name, have, inner = found
        log(f"{name} {have} does not import on Python {python_tag()}: looking for the "
            "oldest later release that does")
        near = nearest_importing(name, have, inner,
                                 scratch_installer(entry, version, cache_dir().parent, log))
        if near is None:
            return None
        error = (stderr.strip().splitlines() or ["?"])[-1]
        return {name: (near, f"{name} {have}, the newest at the release's time, does not "
                             f"import on Python {python_tag()} ({error}); used {name} "
                             f"{near.version} (uploaded {near.first:%Y-%m-%d}), the oldest "
                             "later release that does")}
    return None


def _install_source(entry: TargetEntry, source: Source, key: str, site: Path,
                    log: Log) -> EnvInfo:
    """Build the code from a snapshot (never in the user's tree) and install it."""
    assert entry.distribution is not None
    with tempfile.TemporaryDirectory(prefix="harness-src-") as tmp:
        tree = Path(tmp) / "tree"
        log(f"copying {source}")
        snapshot(source, tree)
        done = install(entry, None, site, cache_dir().parent, log, requirement=str(tree))
    version = _installed_versions(site).get(canonicalize_name(entry.distribution))
    if version is None:
        raise EnvError(f"building {source} installed no {entry.distribution}: is it a "
                       f"{entry.name} source tree?")
    info = EnvInfo(entry.name, version, python_tag(), distribution=entry.distribution,
                   installer=done.installer, fallbacks=done.fallbacks, skipped=done.skipped,
                   source=source.spec, key=key)
    return _finish(entry, info, site, f"{source}", done.exempt)


def _finish(entry: TargetEntry, info: EnvInfo, site: Path, what: str,
            exempt: dict[str, str]) -> EnvInfo:
    info.installed = _installed_versions(site)
    assert entry.distribution is not None
    info.origins = {name: exempt.get(name) or ("of its time" if info.published else "today's")
                    for name in info.installed
                    if name != canonicalize_name(entry.distribution)}
    info.protocols, errors = _probe_protocols(site, entry, info.version)
    for module in entry.protocols:  # a protocol whose library the release does not declare
        if module not in info.installed and module in info.protocols and _has_dist(module):
            info.fallbacks.append(f"{module} is not among its requirements; the harness's own "
                                  f"{module} {importlib.metadata.version(module)} is used")
    if not info.protocols:
        raise EnvError(
            f"{what} installed, but none of its HTTP protocols "
            f"imports on Python {python_tag()}: {'; '.join(errors)} "
            f"({'; '.join(info.fallbacks + info.skipped) or 'no fallbacks'})"
        )
    return info
