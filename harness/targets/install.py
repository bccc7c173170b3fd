"""Installing one release of a target, with what it declares, into a folder.

Rule 5 (README): install what the release declares where it installs on
this Python, a stand-in for a dependency where it does not, and record which.
Two installers, the fast one first:

- uv (a dependency of the harness) resolves the release and its whole
  dependency tree at once into `--target`, among the files uploaded before
  the release was published (`--exclude-newer`, targets/era.py): each
  dependency is the newest release its users could have installed then. When
  one fails to build on this Python (old httptools and uvloop need a header
  Python 3.11 removed), that one package alone is let past the release's
  time (`--exclude-newer-package`), to the oldest later release with a wheel
  for this interpreter (the registry's replacement where it names one; the
  newest where no release has a wheel), and the resolution retried. A
  protocol library the release declares only in an extra (uvicorn's
  httptools) is then installed beside it the same way. A source tree has no
  publication time: it gets today's dependencies. uv accepts old metadata
  that current pip refuses (uvicorn 0.12.3's "python-dotenv (>=0.13.*)").
- pip < 24.1, release by release with `--no-deps`, where uv cannot install a
  release at all (it refuses its metadata, say). It cannot choose by upload
  time, so its dependencies are today's, and it misses transitive
  dependencies, which then come from the harness's own environment.

Measured on this project's 2-core machine (warm cache, median of 3): uvicorn
0.11.3 in 4.2 s with uv against 11.1 s with pip, hypercorn 0.14.3 in 1.3 s
against 4.1 s; both installed the same versions.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import EnvironmentFault
from harness.targets import era
from harness.targets.registry import TargetEntry

Log = Callable[[str], None]
MAX_OVERRIDES = 6
NETWORK_ERRORS = ("Retrying", "NewConnectionError", "ConnectionError", "Max retries exceeded",
                  "Temporary failure in name resolution", "timed out", "Failed to fetch",
                  "error sending request", "dns error", "Could not connect")
FAILED_BUILD = re.compile(r"Failed to (?:download and )?build `([^`=\s]+)==([^`\s]+)`")
# Source trees from before PEP 440's strict parsing (uvicorn 0.12's "python-dotenv>=0.13.*")
# build only with the tools of their time: the build, not the code, is made to fit.
LEGACY_BUILD = ("setuptools<67", "packaging<22", "wheel<0.38")
BACKEND_FAILED = "build backend returned an error"
BUILD_TOOLS = ("setuptools", "wheel")  # let past the release's time when a build fails
# uv's hint when only files newer than the release's time would satisfy a requirement
# (an sdist's build wants setuptools>=40.8.0, from after uvicorn 0.3.26)
FILTERED = re.compile(r"`([^`\s]+)` was filtered by `exclude-newer`")

# pip 24.1+ refuses releases whose metadata uses pre-PEP 440 specifiers, so the pip
# path uses an older pip, itself installed once into the cache.
INSTALLER_PIP = "pip>=23,<24.1"


class EnvError(EnvironmentFault):
    """A release that cannot be installed; the message says why and what to do."""


@dataclass
class Installed:
    installer: str  # which tool, and its version
    fallbacks: list[str] = field(default_factory=list)  # human-readable notes
    skipped: list[str] = field(default_factory=list)
    # when the release was published ("" when its dependencies are today's: a source tree,
    # or the pip path, which cannot choose by upload time)
    published: str = ""
    exempt: dict[str, str] = field(default_factory=dict)  # name -> "pinned" or "fallback"
    extras: list[str] = field(default_factory=list)  # protocol libraries from its extras
    # the stand-ins found for dependencies that did not build, to reuse on a reinstall
    refits: dict[str, tuple[era.Release, str]] = field(default_factory=dict)


def _run(cmd: list[str], env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Every installer command goes through here (tests fake it)."""
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def last_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join("    " + ln for ln in lines[-n:])


Refits = dict[str, tuple[era.Release, str]]  # name -> the release to use instead, and why


def install(entry: TargetEntry, version: str | None, site: Path, cache: Path, log: Log,
            requirement: str | None = None, refits: Refits | None = None) -> Installed:
    """Install `entry`'s release `version` and its dependencies into `site`; or, given
    `requirement` (a source tree's folder), that code, whose version is not known yet.
    A release gets the dependencies of its time (targets/era.py); a source tree, which
    has no publication time, today's. `refits`: dependencies of its time that do not
    import here (targets/imports.py), and the release of each to use instead."""
    assert entry.distribution is not None
    spans = [entry.version_range(version)] if version else list(entry.versions)
    replacements: dict[str, str] = {canonicalize_name(k): v
                                   for span in spans if span for k, v in span.fallbacks}
    # A range's pins replace what the release declares from the start (VersionRange.pins).
    pins: dict[str, str] = {canonicalize_name(k): v for span in spans if span and version
                            for k, v in span.pins}
    wanted = requirement or f"{entry.distribution}=={version}"
    uv = _uv_binary()
    if uv is not None:
        try:
            release = era.published(entry.distribution, version) if version else None
        except era.EraError as exc:
            raise EnvError(str(exc)) from None
        plan = Plan(uv, site, cache, replacements, pins, release, entry.distribution, log)
        for name, (instead, note) in (refits or {}).items():
            plan.refit(name, instead, note)
        done = plan.install([wanted], source=requirement is not None)
        if done is not None:
            _install_protocol_libraries(plan, entry, done)
            return done
        log("uv could not install it; trying pip")
        shutil.rmtree(site, ignore_errors=True)
    return _install_pip(entry.distribution, wanted, site, cache, replacements, pins, log)


def _pin_notes(pins: dict[str, str]) -> list[str]:
    return [f"{name}: used {pin}, as the registry's range for this release says (today's "
            f"{name} no longer has what it imports)" for name, pin in pins.items()]


def _install_protocol_libraries(plan: Plan, entry: TargetEntry, done: Installed) -> None:
    """A protocol library the release declares only in an extra (uvicorn's httptools, in
    `standard`) is installed beside it, as that extra states it and of the same time, so
    the protocol runs on what its users had rather than on the harness's own."""
    assert entry.distribution is not None
    have = installed(plan.site)
    version = have.get(canonicalize_name(entry.distribution), ("", Path()))[0]
    libraries = [name for name in (entry.modules_for(version) if version else {})
                 if canonicalize_name(name) not in have and _is_distribution(name)]
    if not libraries:
        return
    declared: dict[str, Requirement] = {}
    for req in _requirements(plan.site, entry.distribution):
        extras = re.findall(r"extra\s*==\s*['\"]([^'\"]+)", str(req.marker or ""))
        if req.specifier and any(_applies(req, extra) for extra in extras or [""]):
            declared.setdefault(canonicalize_name(req.name), req)
    wanted = [f"{name}{declared[canonicalize_name(name)].specifier}"
              if canonicalize_name(name) in declared else name for name in libraries]
    more = plan.install(wanted)
    if more is None:  # the harness's own is then used, and envs.py says so
        return
    done.fallbacks += [note for note in more.fallbacks if note not in done.fallbacks]
    done.exempt.update(more.exempt)
    done.extras += wanted


def _is_distribution(name: str) -> bool:
    """A protocol named after a library the index has (h11, httptools): the harness's own
    environment holds it, as it holds every protocol library it runs in-process."""
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# -- uv ------------------------------------------------------------------------------
def _uv_binary() -> str | None:
    try:
        import uv
    except ImportError:
        return None
    return str(uv.find_uv_bin())


@dataclass
class Plan:
    """One environment's uv installs: the release's time, and what stands in where a
    dependency of that time does not build."""

    uv: str
    site: Path
    cache: Path
    replacements: dict[str, str]  # name -> the registry's stand-in, where it names one
    pins: dict[str, str]  # name -> the registry's pin for this range
    release: era.Release | None  # None: no time to keep to (a source tree)
    distribution: str
    log: Log
    # name -> the newest upload uv may take of it, where that is not the release's time
    cutoffs: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # name -> why it was refitted
    found: dict[str, tuple[era.Release, str]] = field(default_factory=dict)  # stand-ins
    tools_lifted: bool = False  # the build tools are today's

    def __post_init__(self) -> None:
        self.overrides = dict(self.pins)
        self.now = era.stamp(datetime.now(UTC))
        if self.release is not None:
            # The release's own files, all of them (a wheel may follow its sdist).
            self.cutoffs[canonicalize_name(self.distribution)] = era.stamp(
                era.just_after(self.release.last))
            self.cutoffs.update({name: self.now for name in self.pins})

    def refit(self, name: str, instead: era.Release, note: str) -> None:
        """Use `instead` for `name`, past the release's time, saying why."""
        key = canonicalize_name(name)
        self.overrides[key] = f"{name}=={instead.version}"
        self.cutoffs[key] = era.stamp(era.just_after(instead.last))
        self.notes[key] = note

    def args(self) -> list[str]:
        if self.release is None:
            return []
        return ["--exclude-newer", era.stamp(self.release.first),
                *(f"--exclude-newer-package={k}={v}" for k, v in self.cutoffs.items())]

    def install(self, wanted: list[str], source: bool = False) -> Installed | None:
        """The resolved install, standing in for each dependency that fails to build;
        None if uv cannot install this release for another reason (pip then tries).
        `source`: `wanted` is one source tree, which may need the build tools of its time."""
        env = dict(os.environ, UV_CACHE_DIR=str(self.cache / "uv"), UV_NO_PROGRESS="1")
        tool = _run([self.uv, "--version"], env, timeout=60).stdout.strip() or "uv"
        done = Installed(tool, fallbacks=[*_pin_notes(self.pins), *self.notes.values()],
                         exempt={**{name: "pinned" for name in self.pins},
                                 **{name: "fallback" for name in self.notes}})
        if self.release is not None:
            done.published = era.stamp(self.release.first)
        target = canonicalize_name(self.distribution)
        legacy = False
        tools_note = ""
        with tempfile.TemporaryDirectory(prefix="harness-uv-") as tmp:
            override_file = Path(tmp) / "overrides.txt"
            build_file = Path(tmp) / "build-constraints.txt"
            for _ in range(MAX_OVERRIDES + 3):
                override_file.write_text("".join(f"{v}\n" for v in self.overrides.values()))
                build_file.write_text("".join(f"{c}\n" for c in LEGACY_BUILD) if legacy
                                      else "")
                args = ["pip", "install", "--target", str(self.site), "--python",
                        sys.executable, "--override", str(override_file),
                        "--build-constraint", str(build_file), *self.args(), *wanted]
                self.log("uv " + " ".join(args))
                proc = _run([self.uv, *args], env)
                if proc.returncode == 0:
                    done.refits = dict(self.found)
                    if tools_note:
                        done.fallbacks.append(tools_note)
                    return done
                _raise_for_index(proc.stderr, wanted[0])
                filtered = FILTERED.search(proc.stderr)
                if filtered is not None and canonicalize_name(filtered.group(1)) not in \
                        self.cutoffs:
                    key = canonicalize_name(filtered.group(1))
                    self.cutoffs[key] = self.now
                    done.exempt[key] = "fallback"
                    done.fallbacks.append(
                        f"{filtered.group(1)}: no release uploaded before the release was "
                        "published satisfies what it (or its build) requires; used the "
                        "newest that does")
                    continue
                if source and BACKEND_FAILED in proc.stderr and not legacy:
                    legacy = True  # the source tree itself did not build
                    done.fallbacks.append("the code does not build with today's build tools; "
                                          f"built with {', '.join(LEGACY_BUILD)}")
                    continue
                failed = FAILED_BUILD.search(proc.stderr)
                if failed is None or canonicalize_name(failed.group(1)) in self.overrides:
                    self.log(f"uv: {last_lines(proc.stderr, 2).strip()}")
                    return None
                name, pinned = failed.group(1), failed.group(2)
                if self.release is not None and not self.tools_lifted:
                    # Build tools are how it is built here, not what it runs on: those of
                    # its time may not run on this Python (setuptools 40's HTMLParser).
                    self.tools_lifted = True
                    self.cutoffs.update({tool: self.now for tool in BUILD_TOOLS
                                         if tool not in self.cutoffs})
                    tools_note = (f"sdists built with today's {' and '.join(BUILD_TOOLS)}: "
                                  f"{name}=={pinned} did not build with those of the "
                                  "release's time")
                    continue
                if canonicalize_name(name) == target:  # the release itself: no stand-in
                    if not legacy:
                        legacy = True
                        continue
                    raise EnvError(f"{wanted[0]} does not build on Python {python_tag()}: "
                                   f"{_build_error(proc.stderr)}")
                done.fallbacks.append(self.stand_in(name, pinned))
                done.exempt[canonicalize_name(name)] = "fallback"
        return None

    def stand_in(self, name: str, pinned: str) -> str:
        """Let `name` past the release's time, as near to it as installs here; the note
        says what was used and why."""
        key = canonicalize_name(name)
        failed = f"{name}=={pinned} does not build on Python {python_tag()}"
        if key in self.replacements:
            self.overrides[key], self.cutoffs[key] = self.replacements[key], self.now
            return f"{failed}; used {self.replacements[key]}, as the registry's range says"
        if self.release is None:
            self.overrides[key] = name
            return f"{failed}; used the newest {name}"
        failed = (f"{name} {pinned}, the newest at the release's time, does not build on "
                  f"Python {python_tag()}")
        try:
            near = era.nearest_wheel(name, pinned)
        except era.EraError as exc:
            raise EnvError(str(exc)) from None
        if near is None:
            self.overrides[key], self.cutoffs[key] = name, self.now
            return f"{failed}; no later release has a wheel for it: used the newest {name}"
        self.overrides[key] = f"{name}=={near.version}"
        self.cutoffs[key] = era.stamp(era.just_after(near.last))
        note = (f"{failed}; used {name} {near.version} (uploaded "
                f"{near.first:%Y-%m-%d}), the oldest later release with a wheel for it")
        self.found[key] = (near, note)
        return note


def scratch_installer(entry: TargetEntry, version: str, cache: Path,
                      log: Log) -> Callable[[Path, str, era.Release], bool]:
    """Installs one release of a dependency into a scratch folder, past `entry`'s release
    `version`'s time for that package alone, as the environment would (imports.py)."""
    dist = entry.distribution
    assert dist is not None
    uv = _uv_binary()
    release = era.published(dist, version)

    def put(folder: Path, requirement: str, instead: era.Release) -> bool:
        if uv is None:
            return False
        plan = Plan(uv, folder, cache, {}, {}, release, dist, log)
        name = requirement.partition("==")[0]
        plan.cutoffs[canonicalize_name(name)] = era.stamp(era.just_after(instead.last))
        return plan.install([requirement]) is not None

    return put


def _build_error(stderr: str) -> str:
    """The error line of a failed build (the exception its setup.py raised)."""
    lines = [line.strip() for line in stderr.splitlines()
             if re.search(r"^\s*\w*(Error|Exception)\b.*:", line)]
    return lines[-1] if lines else last_lines(stderr, 2).strip()


def _raise_for_index(stderr: str, wanted: str) -> None:
    if any(word in stderr for word in NETWORK_ERRORS):
        raise EnvError(f"installing {wanted}: the package index could not be "
                       f"reached; check the network and retry:\n{last_lines(stderr)}")
    dist = wanted.partition("==")[0]
    if "==" in wanted and (f"no version of {wanted.lower()}" in stderr.lower()
                           or "No matching distribution" in stderr
                           or "Could not find a version" in stderr):
        raise EnvError(f"{wanted} does not exist on {era.index_name()}; list releases "
                       f"with 'pip index versions {dist}'")


# -- pip -------------------------------------------------------------------------------
def _pip_home(cache: Path) -> Path:
    final = cache / "installer-pip"
    if (final / "pip").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".installer-pip-", dir=final.parent))
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "install",
           "--no-deps", "--target", str(work), INSTALLER_PIP]
    proc = _run(cmd)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise EnvError(f"could not set up the installer ({INSTALLER_PIP}):\n"
                           f"{last_lines(proc.stderr)}")
    try:
        os.replace(work, final)
    except OSError:  # another process won the race; use theirs
        shutil.rmtree(work, ignore_errors=True)
    return final


def _install_pip(dist: str, wanted: str, site: Path, cache: Path,
                 replacements: dict[str, str], pins: dict[str, str], log: Log) -> Installed:
    home = _pip_home(cache)

    def pip(args: list[str]) -> subprocess.CompletedProcess[str]:
        log("pip " + " ".join(args))
        env = dict(os.environ, PYTHONPATH=str(home), PYTHONNOUSERSITE="1")
        return _run([sys.executable, "-m", "pip", "--disable-pip-version-check",
                     "--no-input", *args], env)

    site.mkdir(parents=True, exist_ok=True)
    args = ["install", "--no-deps", "--target", str(site), wanted]
    proc = pip(args)
    if proc.returncode != 0:  # one retry: a flaky index answer looks like a missing release
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir(parents=True)
        proc = pip(args)
    if proc.returncode != 0:
        _raise_for_index(proc.stderr, wanted)
        raise EnvError(f"installing {wanted} failed:\n{last_lines(proc.stderr)}")
    done = Installed(f"pip {_pip_version(home)}", fallbacks=_pin_notes(pins))
    for req in _requirements(site, dist):
        if not _applies(req):
            continue
        pinned = pins.get(canonicalize_name(req.name), f"{req.name}{req.specifier}")
        if pip(["install", "--no-deps", "--target", str(site), pinned]).returncode == 0:
            continue
        instead = replacements.get(canonicalize_name(req.name), req.name)
        newest = pip(["install", "--no-deps", "--upgrade", "--target", str(site), instead])
        if newest.returncode == 0:
            what = "the newest " + req.name if instead == req.name else instead
            done.fallbacks.append(f"{pinned} does not install on Python {python_tag()}; "
                                  f"used {what}")
        else:
            done.skipped.append(f"{pinned}: neither it nor the newest release installs")
    return done


def _pip_version(home: Path) -> str:
    found = sorted(home.glob("pip-*.dist-info"))
    return found[0].name.removeprefix("pip-").removesuffix(".dist-info") if found else "?"


def installed(site: Path) -> dict[str, tuple[str, Path]]:
    """Each distribution in `site`, by canonical name: its version and metadata folder."""
    out = {}
    for entry in site.iterdir():
        m = re.match(r"^(.+?)-([^-]+)\.(dist|egg)-info$", entry.name)
        if m:
            out[canonicalize_name(m.group(1))] = (m.group(2), entry)
    return dict(sorted(out.items()))


def _requirements(site: Path, dist: str) -> list[Requirement]:
    found = installed(site).get(canonicalize_name(dist))
    if found is None:
        return []
    folder = found[1]
    meta = folder / ("METADATA" if folder.name.endswith("dist-info") else "PKG-INFO")
    if not meta.exists():
        return []
    reqs = []
    for line in meta.read_text(errors="replace").splitlines():
        if line.startswith("Requires-Dist:"):
            try:
                reqs.append(Requirement(line.split(":", 1)[1].strip()))
            except InvalidRequirement:
                continue
    return reqs


def _applies(req: Requirement, extra: str = "") -> bool:
    """Skip other extras and requirements for other Pythons or platforms."""
    if req.marker is None:
        return True
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env["extra"] = extra
    return bool(req.marker.evaluate(env))
