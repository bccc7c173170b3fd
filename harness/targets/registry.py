"""The target registry: every server the harness can test, declared as data.

A target is a server + version + protocol implementation. Everything the
harness knows about a server lives in its `TargetEntry`, declared beside its
adapter under `servers/`: the distribution it
installs from, its protocol implementations and what must import for each,
its settings space, how each range of releases is constructed, and its known
bugs. The CLI, `pytest scenarios/`, bisect, reports and environments read
these entries; nothing else in the harness names a server.

Entries come from `BUILTIN` and from the entry-point group `ENTRY_POINT_GROUP`,
so a third party adds a server without editing the harness:

    [project.entry-points."asgi_race_harness.targets"]
    myserver = "myserver_harness:TARGET"      # a TargetEntry

Settings carry a meaning shared across servers (`MEANINGS`), so a trace
recorded on one server replays on another with the settings that mean the
same there (`translate_settings`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.errors import InputError
from harness.search.trace import TraceError
from harness.targets import era
from harness.targets.source import Source, distribution_name, is_source, parse_source, tree_of

ENTRY_POINT_GROUP = "asgi_race_harness.targets"
REFERENCE = "reference"  # the ground-truth server every report compares against

# Each built-in server's module defines TARGET, its entry. A new server: one module there
# and one line here (or an entry point, for a server outside this repository).
BUILTIN = (
    "servers.reference.target:TARGET",
    "servers.uvicorn_target:TARGET",
    "servers.hypercorn_target:TARGET",
)

# What a setting means, whichever server names it: the vocabulary shared by all targets.
MEANINGS = {
    "keep-alive-timeout": "seconds an idle keep-alive connection is kept open",
    "max-requests": "requests served on one connection before it is closed",
    "max-incomplete-size": "bytes of an unfinished request head buffered before 4xx",
    "read-timeout": "seconds a connection may wait for the client's next bytes",
    "concurrency-limit": "connections or tasks served at once before 503",
    "graceful-timeout": "seconds in-flight requests get at shutdown",
    "receive-queue-size": "ASGI messages queued for an app before the server stops reading",
}


class TargetError(InputError):
    """An unknown server, a malformed spec or an unknown protocol implementation."""


@dataclass(frozen=True)
class Setting:
    """One server option the search varies: its own name, legal values (default first:
    shrinking moves toward it), what it means, and the releases that offer it."""

    name: str
    values: tuple[Any, ...]
    means: str
    versions: str = ""  # a PEP 440 specifier; "" for every release

    def __post_init__(self) -> None:
        if self.means not in MEANINGS:
            raise ValueError(f"setting {self.name!r}: unknown meaning {self.means!r}; "
                             f"use one of {', '.join(MEANINGS)}")


@dataclass(frozen=True)
class VersionRange:
    """How the adapter builds one range of releases, as the report states it."""

    versions: str  # a PEP 440 specifier
    path: str  # which of the adapter's construction paths builds these releases
    construction: str  # that path in words, for reports
    asgi: int = 3  # the calling convention its apps use (2: double callable)
    shims: tuple[str, ...] = ()  # what the adapter adds for this Python, reported
    # requirement name -> what to install when the declared pin does not install on this
    # Python (default: the newest release of that package)
    fallbacks: tuple[tuple[str, str], ...] = ()
    # requirement name -> what to install instead from the start, where the release
    # declares no upper bound and today's release of it breaks the import (reported)
    pins: tuple[tuple[str, str], ...] = ()
    # protocol -> the module that must import, where it differs from the entry's
    # (these releases offer only the protocols named here)
    protocol_modules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Unrunnable:
    """Releases on the index the harness cannot run on this Python, and why."""

    versions: str  # a PEP 440 specifier
    reason: str  # the concrete failure: the build error, the import error
    # the protocol implementations it concerns; () for the whole release
    http: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnownBug:
    """An upstream bug the harness finds: `pytest scenarios/` expects it on these
    releases (after finding it again) and fails on anything not listed."""

    name: str  # upstream reference, or a short description of a new find
    versions: str  # a PEP 440 specifier
    http: tuple[str, ...]
    # where `pytest scenarios/` must find it again within its budget ("": nowhere; it is
    # too rare for a few seconds of search, and only explains what is found)
    family: str
    kind: str
    signature_contains: str
    # `make bench` measures how fast it is found: on `bench[0]` ("" for the release
    # installed beside the harness) per protocol in `bench[1:]`, and checks `fixed`
    # (the first release without it) finds nothing with the same budget.
    bench: tuple[str, ...] = ()
    fixed: str | None = None

    def matches(self, kind: str, signature: str) -> bool:
        return kind == self.kind and self.signature_contains in signature


@dataclass(frozen=True)
class TargetEntry:
    name: str
    adapter: str  # "module:Class", imported only where the release runs (the worker)
    protocols: tuple[str, ...]  # protocol implementations, the default first
    protocol_modules: dict[str, str]  # what must import in an environment, per protocol
    distribution: str | None = None  # on the package index; None: no releases of its own
    settings: tuple[Setting, ...] = ()
    versions: tuple[VersionRange, ...] = ()
    known_bugs: tuple[KnownBug, ...] = ()
    oldest: str | None = None  # the oldest release the adapter supports on this Python
    unrunnable: tuple[Unrunnable, ...] = ()  # releases it cannot run, with the reason
    example: str = ""  # a release for help texts
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- per-version facts -----------------------------------------------------------
    def version_range(self, version: str) -> VersionRange | None:
        return next((r for r in self.versions if _within(version, r.versions)), None)

    def modules_for(self, version: str) -> dict[str, str]:
        """Protocol -> the module that must import, for this release."""
        found = self.version_range(version)
        if found is not None and found.protocol_modules:
            return dict(found.protocol_modules)
        return dict(self.protocol_modules)

    def unrunnable_reason(self, version: str, http: str | None = None) -> str | None:
        """Why the release (with `http`: that protocol of it) cannot run, if it cannot."""
        return next((u.reason for u in self.unrunnable if _within(version, u.versions)
                     and (not u.http or (http is not None and http in u.http))), None)

    def settings_for(self, version: str) -> dict[str, list[Any]]:
        return {s.name: list(s.values) for s in self.settings
                if not s.versions or _within(version, s.versions)}

    def known_for(self, version: str, http: str, family: str | None = None) -> list[KnownBug]:
        """The known bugs of this release and protocol (those listed for `family`)."""
        return [b for b in self.known_bugs
                if http in b.http and (family is None or family == b.family)
                and _within(version, b.versions)]

    def installed_version(self) -> str | None:
        """The release installed beside the harness (run in this process), if any."""
        if self.distribution is None:
            from harness import __version__

            return __version__
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


@cache
def _within(version: str, spec: str) -> bool:
    """`version` in `spec`; cached, as the search asks for the same few on every run
    (a settings space per scenario), and parsing them cost 2% of a run."""
    return _version(version) in SpecifierSet(spec)


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def _check(entry: Any, where: str) -> TargetEntry:
    if not isinstance(entry, TargetEntry):
        raise TypeError(f"{where} is a {type(entry).__name__}, not a TargetEntry")
    specs = [r.versions for r in entry.versions] + [u.versions for u in entry.unrunnable]
    for spec in specs:
        try:
            SpecifierSet(spec)
        except InvalidSpecifier as exc:
            raise TypeError(f"{where}: bad version range {spec!r}: {exc}") from None
    for r in entry.versions:
        if not set(dict(r.protocol_modules)) <= set(entry.protocols):
            raise TypeError(f"{where}: the range {r.versions!r} names a protocol the entry "
                            "does not have")
    if not entry.protocols or set(entry.protocols) != set(entry.protocol_modules):
        raise TypeError(f"{where}: protocols and protocol_modules must name the same "
                        "implementations")
    return entry


def _load(path: str) -> TargetEntry:
    module, _, attr = path.partition(":")
    return _check(getattr(importlib.import_module(module), attr), path)


@cache
def entries() -> dict[str, TargetEntry]:
    """Every known target by name: the built-ins, then any installed entry points."""
    found: dict[str, TargetEntry] = {}
    for path in BUILTIN:
        entry = _load(path)
        found[entry.name] = entry
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry = _check(ep.load(), f"entry point {ep.name} = {ep.value}")
        found.setdefault(entry.name, entry)  # a built-in name cannot be taken over
    return found


def entry(name: str) -> TargetEntry:
    known = entries()
    if name not in known:
        raise TargetError(f"unknown server {name!r}; known servers: {', '.join(known)} "
                          f"(others register through the {ENTRY_POINT_GROUP!r} entry points)")
    return known[name]


def translate_settings(settings: dict[str, Any], source: str | None,
                       dest: TargetEntry, version: str) -> dict[str, Any]:
    """`settings` a trace recorded on server `source`, as release `version` of `dest`
    can take them.

    Across servers: in the names `dest` uses for the same meanings; settings `dest`
    does not offer are dropped. Across releases of one server: a setting this release
    lacks is left out at its default (the release behaves that way without it), and
    refused otherwise, as it cannot be expressed there."""
    offered = dest.settings_for(version)
    if source == dest.name:
        defaults = {s.name: s.values[0] for s in dest.settings}
        out = {}
        for key, value in settings.items():
            if key in offered:
                out[key] = value
            elif key not in defaults or value != defaults[key]:
                raise TraceError(f"the trace sets {key}={value!r}, which {dest.name} "
                                 f"{version} does not offer, so it cannot replay there")
        return out
    origin = {s.name: s.means for s in entry(source).settings} if source in entries() else {}
    by_meaning = {s.means: s.name for s in dest.settings if s.name in offered}
    out = {}
    for key, value in settings.items():
        if origin and key not in origin:
            raise TargetError(f"the trace sets {key!r}, which {source} does not have (it has "
                              f"{', '.join(origin)}); the trace is malformed")
        name = by_meaning.get(origin.get(key, ""))
        if name is not None:
            out[name] = value
    return out


@dataclass(frozen=True)
class TargetSpec:
    server: str
    version: str | None  # None: the release installed with the harness
    http: str
    # A working copy or a git commit (harness/targets/source.py), not a release from the
    # index: the version is then the one its metadata declares, known once it is built.
    source: str | None = None

    @property
    def entry(self) -> TargetEntry:
        return entry(self.server)

    @property
    def label(self) -> str:
        if self.source is not None and self.version is None:
            return f"{self.server}-{source_tag(self.source)}-{self.http}"
        return f"{self.server}-{self.version or self.entry.installed_version()}-{self.http}"

    def in_process(self) -> bool:
        if self.source is not None:
            return False
        here = self.entry.installed_version()
        return here is not None and self.version in (None, here)

    def __str__(self) -> str:
        if self.source is not None:
            return f"{self.server} {self.version or ''} from {self.source} ({self.http})" \
                .replace("  ", " ")
        pin = f"=={self.version}" if self.version else ""
        return f"{self.server}{pin} ({self.http})"


def source_tag(source: str) -> str:
    """A short name for a working copy or commit, for labels and folder names."""
    if source.startswith("git+"):
        return "git." + source.rpartition("@")[2][:10]
    return "wc." + re.sub(r"[^\w.-]+", "_", source.rstrip("/").rpartition("/")[2] or "root")


def label_of(target: dict[str, Any]) -> str:
    """The folder label of a target as a worker describes it (a result's "target")."""
    version = str(target.get("version"))
    if target.get("source"):
        version += "+" + source_tag(str(target["source"]))
    return f"{target.get('server')}-{version}-{target.get('http')}"


def examples() -> list[str]:
    """A NAME==VERSION of each server with releases, for help texts and errors."""
    return [f"{name}=={e.example}" for name, e in entries().items() if e.example] or ["NAME"]


def protocols() -> list[str]:
    """Every protocol implementation some server offers."""
    return sorted({p for e in entries().values() for p in e.protocols})


def parse_server(spec: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"\s*([A-Za-z][\w.-]*)\s*(?:==\s*([\w.+-]+))?\s*", spec)
    if not m:
        raise TargetError(f"malformed server {spec!r}; write it as NAME or NAME==VERSION, "
                          f"for example {examples()[0]}")
    name, version = m.group(1).lower(), m.group(2)
    if name not in entries() and version is None and Path(spec.strip()).is_dir():
        raise TargetError(f"unknown server {name!r}, and a folder of that name is here: to "
                          f"run that working copy, write its path as ./{spec.strip()}")
    found = entry(name)
    if found.distribution is None and version is not None:
        raise TargetError(f"the {name} server has no releases of its own; write "
                          f"--server {name}")
    if version is not None:
        try:
            release = Version(version)
        except InvalidVersion:
            raise TargetError(f"malformed version {version!r} in {spec!r}; write a release "
                              f"number such as {found.example or '1.0.0'}") from None
        reason = found.unrunnable_reason(version)
        too_old = found.oldest is not None and release < Version(found.oldest)
        if reason is not None or too_old:
            _refuse_if_unpublished(found.distribution or name, version)
        if reason is not None:
            raise TargetError(f"{name} {version} cannot run here: {reason}; pick another "
                              "release (README, Supported releases)")
        if too_old:
            raise TargetError(f"{name} {version} is older than the oldest release the "
                              f"harness runs ({found.oldest}: older ones need a construction "
                              f"path servers/ does not have); pick {found.oldest} or later")
    return name, version


# Seconds the look-up below waits for the index. It only improves a refusal that
# stands without it, so a hanging network costs this, not era's wait for installs.
LOOKUP_TIMEOUT = 10.0


def _refuse_if_unpublished(distribution: str, version: str) -> None:
    """Before refusing a version for its range, ask the index whether it is a release at
    all: `uvicorn==0.0.0` is told it does not exist, not what releases before 0.1 do. An
    index that cannot be read (within LOOKUP_TIMEOUT) leaves the range's reason to speak."""
    try:
        era.published(distribution, version, LOOKUP_TIMEOUT)
    except era.Unpublished as exc:
        raise TargetError(str(exc)) from None
    except era.EraError:
        pass


def target_specs(spec: str, http: str = "default") -> list[TargetSpec]:
    """All targets a --server/--http pair names (--http all: every implementation;
    default: the server's first). `spec` is NAME, NAME==VERSION, a working copy's path
    or git+REPO@REV (targets/source.py)."""
    return chosen_targets(spec, http)[0]


def target_spec(spec: str, http: str = "default") -> TargetSpec:
    """The one target a --server/--http pair names, for a command that runs on one
    (replay, exhaust, report, bisect): --http all is refused, not cut to its first."""
    if http == "all":
        every = ", ".join(s.http for s in target_specs(spec, "all"))
        raise TargetError(f"--http all: this command runs on one protocol implementation; "
                          f"give one of {every}")
    return chosen_targets(spec, http, one=True)[0][0]


def chosen_targets(spec: str, http: str,
                   one: bool = False) -> tuple[list[TargetSpec], dict[str, str]]:
    """target_specs, and the protocols `--http all` (or default) left out of a release
    because the harness cannot run them there, each with the reason: what a command
    says it skipped."""
    source = None
    if is_source(spec):
        parsed = parse_source(spec)
        name, version, source = server_of(parsed), None, parsed.spec
    else:
        name, version = parse_server(spec)
    found = entry(name)
    if source is None and version is None and found.installed_version() is None:
        raise TargetError(f"{name} is not installed beside the harness; name a release, "
                          f"for example --server {name}=={found.example or 'X.Y.Z'}")
    # A release's own protocols, where its range names them (uvicorn 0.1 has httptools only).
    impls = tuple(found.modules_for(version)) if version is not None else found.protocols
    blocked: dict[str, str] = {}
    if version is not None:  # a protocol this release has but the harness cannot run
        blocked = {h: r for h in impls if (r := found.unrunnable_reason(version, h))}
        left = tuple(h for h in impls if h not in blocked)
        if http in blocked or (http in ("all", "default") and not left):
            h = http if http in blocked else impls[0]
            raise TargetError(f"{name} {version} cannot run {h} here: {blocked[h]}; pick "
                              "another release or protocol (README, Supported releases)")
        if http in ("all", "default"):
            blocked = {h: r for h, r in blocked.items() if http == "all" or h == impls[0]}
            impls = left
        else:
            blocked = {}
    chosen: Iterable[str]
    if http == "all":
        chosen = impls
    elif http == "default":
        chosen = impls[:1]
    elif http in impls:
        chosen = (http,)
    else:
        release = f" {version}" if version is not None and impls != found.protocols else ""
        raise TargetError(f"{name}{release} has no HTTP implementation {http!r}; use one of "
                          f"{', '.join(impls)}{'' if one else ' or all'}")
    return [TargetSpec(name, version, h, source) for h in chosen], blocked


def server_of(source: Source) -> str:
    """Which registered server a working copy or commit is, by its distribution name."""
    with tempfile.TemporaryDirectory(prefix="harness-meta-") as scratch:
        name = distribution_name(tree_of(source, Path(scratch)))
    servers: dict[str, str] = {canonicalize_name(e.distribution): n
                               for n, e in entries().items() if e.distribution}
    if name is None:
        raise TargetError(f"{source}: no pyproject.toml, setup.cfg or setup.py names its "
                          "distribution; give the top folder of a server's source tree")
    if name not in servers:
        raise TargetError(f"{source} is the source of {name!r}, which no registered server "
                          f"installs (registered: {', '.join(sorted(servers))})")
    return servers[name]
