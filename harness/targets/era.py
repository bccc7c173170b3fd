"""The release's time: which dependency releases existed when a target was published.

An old server release should run on the dependencies its users had, not on
today's: a bug of an old h11 or httptools can only show on the releases that
had it, and a bug of a new one must not show on releases that never had it.
The package index's JSON simple API (PEP 691, with PEP 700's `upload-time` of
every file) says when each release of a project was uploaded. A target
release was published when its first file was uploaded; its dependencies are
resolved (by uv's `--exclude-newer`, targets/install.py) among the files
uploaded before that moment, so each is the newest release its users could
have installed then.

Where such a dependency does not build on this Python (old httptools and
uvloop need a header Python 3.11 removed), `nearest_wheel` names the stand-in
closest to the release's time: the oldest release of that project, from the
one of its time on, that ships a wheel this interpreter installs.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from harness.errors import EnvironmentFault

PYPI = "https://pypi.org/simple/"
ACCEPT = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 60.0  # an install needs the answer: wait as long as a slow index takes


class EraError(EnvironmentFault):
    """The index could not be read, or does not say when a file was uploaded."""


class Unpublished(EraError):
    """The index was read and does not list the release."""


@dataclass(frozen=True)
class Release:
    """One release of a project on the index, from its files."""

    version: Version
    first: datetime  # the upload time of its first file: when it was published
    last: datetime  # of its last file (a wheel may be added later)
    wheels: tuple[str, ...]  # the file names of its wheels
    yanked: bool  # every file of it is yanked
    requires_python: str  # "" when it says nothing


def index_url() -> str:
    """The index uv installs from: uv's own setting when one is made, else PyPI."""
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(name):
            return os.environ[name].rstrip("/") + "/"
    return PYPI


def index_name() -> str:
    """How messages name the index: "PyPI", or the address of the one in use."""
    url = index_url()
    return "PyPI" if url == PYPI else url


def _fetch(url: str, accept: str, timeout: float) -> bytes:
    """Every read of the index goes through here (tests fake it)."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        data: bytes = answer.read()
    return data


# Pages read in this process: an install, a bisect or a survey asks about the same
# project again and again (each unrunnable version of a bisect asked once more), and the
# index answers each read in a second or so. Keyed by the fetcher too: a test's fake is
# another index.
_PAGES: dict[tuple[Any, str, str], bytes] = {}


def _read(url: str, accept: str, timeout: float) -> bytes:
    key = (_fetch, url, accept)
    if key not in _PAGES:
        try:
            _PAGES[key] = _fetch(url, accept, timeout)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EraError(f"reading {url}: the package index could not be reached ({exc}); "
                           "check the network and retry") from None
    return _PAGES[key]


def stamp(moment: datetime) -> str:
    """The RFC 3339 form uv takes (UTC, to the microsecond)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def releases(project: str, timeout: float = TIMEOUT) -> dict[Version, Release]:
    """Every release of `project` the index lists, by version (unparseable ones left out).
    `timeout`: seconds a read may wait; one that waits longer is an EraError."""
    url = f"{index_url()}{canonicalize_name(project)}/"
    try:
        page: dict[str, Any] = json.loads(_read(url, ACCEPT, timeout))
    except ValueError:
        raise EraError(f"{url} did not answer in the JSON simple API (PEP 691), so the "
                          "release's time cannot be known; use an index that does") from None
    files: dict[Version, list[dict[str, Any]]] = {}
    for file in page.get("files", []):
        version = _version_of(project, str(file.get("filename", "")))
        if version is not None:
            files.setdefault(version, []).append(file)
    out = {}
    for version, group in files.items():
        times = [str(f["upload-time"]) for f in group if f.get("upload-time")]
        if not times:
            raise EraError(f"{url} does not say when {project} {version} was uploaded (PEP "
                              "700's upload-time), so the release's time cannot be known")
        wheels = [f for f in group if str(f["filename"]).endswith(".whl")]
        out[version] = Release(
            version, min(map(_time, times)), max(map(_time, times)),
            tuple(str(f["filename"]) for f in wheels),
            all(bool(f.get("yanked")) for f in group),
            next((str(f["requires-python"]) for f in group if f.get("requires-python")), ""))
    return dict(sorted(out.items()))


def _version_of(project: str, filename: str) -> Version | None:
    """The version a file of `project` belongs to: a wheel's by its name, an sdist's after
    the project's name (spelled as the file spells it)."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
            if filename.endswith(suffix):
                stem = filename[: -len(suffix)]
                name, _, version = stem.rpartition("-")
                if canonicalize_name(name) == canonicalize_name(project):
                    return Version(version)
    except (InvalidVersion, InvalidWheelFilename):
        return None
    return None


def published(project: str, version: str, timeout: float = TIMEOUT) -> Release:
    """The release `version` of `project` as the index lists it."""
    try:
        found = releases(project, timeout).get(Version(version))
    except InvalidVersion:
        found = None
    if found is None:
        raise Unpublished(f"{project}=={version} does not exist on {index_name()}; list "
                          f"releases with 'pip index versions {project}'")
    return found


def just_after(moment: datetime) -> datetime:
    """A cutoff that keeps a file uploaded at `moment` (uv keeps what is strictly older,
    compared to the millisecond)."""
    return moment + timedelta(seconds=1)


def python_ok(release: Release) -> bool:
    if not release.requires_python:
        return True
    try:
        here = Version(".".join(map(str, sys.version_info[:3])))
        return here in SpecifierSet(release.requires_python)
    except (InvalidSpecifier, InvalidVersion):
        return True


def installs_here(release: Release) -> bool:
    """It has a wheel whose tags this interpreter accepts."""
    tags = set(sys_tags())
    for name in release.wheels:
        try:
            if tags & set(parse_wheel_filename(name)[3]):
                return True
        except InvalidWheelFilename:
            continue
    return False


def nearest_wheel(project: str, since: str) -> Release | None:
    """The oldest release of `project` from `since` on (that one included: a wheel may have
    been added to it later) that is not yanked, accepts this Python and ships a wheel this
    interpreter installs; None if there is none."""
    start = Version(since)
    for version, release in releases(project).items():
        if version >= start and not version.is_prerelease and not release.yanked \
                and python_ok(release) and installs_here(release):
            return release
    return None
