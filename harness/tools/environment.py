"""What a target ran with, for the report's environment section.

A release in its own cached environment says so in its env.json (what was
installed, by which tool, when the release was published and so which
dependencies are of its time, every fallback). A release installed beside the
harness, and the reference server, have no env.json: this module reads the
same facts from importlib.metadata (the server's distribution, the
requirements it declares that are installed, and the protocol libraries),
in the same shape, so the report renders both alike.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness import __version__
from harness.targets.registry import TargetEntry

HARNESS = "asgi-race-harness"  # the harness's own distribution


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirements(dist: str) -> list[str]:
    """The names `dist` declares for this Python, its extras' included (an extra's
    requirement counts when it is installed: it is what the server then runs with)."""
    try:
        declared = importlib.metadata.requires(dist) or []
        extras = importlib.metadata.metadata(dist).get_all("Provides-Extra") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = []
    for text in declared:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        try:
            applies = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in ["", *extras])
        except UndefinedEnvironmentName:
            applies = True
        if applies:
            names.append(req.name)
    return names


def installed_beside(entry: TargetEntry) -> dict[str, Any]:
    """The environment of `entry`'s release installed beside the harness, in env.json's
    shape: the distribution (the harness itself for a server without releases of its
    own, as the reference server is), its requirements and its protocol libraries, each
    with the version installed here."""
    dist = entry.distribution or HARNESS
    names = [dist, *(_requirements(dist) if entry.distribution else []), *entry.protocols]
    installed = {}
    for name in names:
        version = _version(name)
        if version is not None:
            installed[canonicalize_name(name)] = version
    return {"server": entry.name, "version": installed.get(canonicalize_name(dist), ""),
            "installed": dict(sorted(installed.items())), "installer": "",
            "fallbacks": [], "skipped": [], "beside": True}


def harness_line(python: str) -> str:
    return f"harness: {HARNESS} {_version(HARNESS) or __version__} on Python {python}"


def _dependencies(env: dict[str, Any]) -> str:
    """Each installed distribution with its version, and where it is not of the release's
    time, why ("fallback", "pinned": the fallback lines say more)."""
    origins = env.get("origins", {})
    out = []
    for name, version in sorted(env.get("installed", {}).items()):
        origin = origins.get(name, "")
        out.append(f"{name} {version}" + (f" ({origin})" if origin in ("fallback", "pinned")
                                          else ""))
    return ", ".join(out)


def _time_of(env: dict[str, Any]) -> str:
    """Which time its dependencies are of: the release's, or today's."""
    if env.get("beside"):
        return ""
    if env.get("published"):
        when = env["published"][:16].replace("T", " ")
        return (f", with the dependencies of its time (the newest uploaded before it was "
                f"published, {when} UTC)")
    if "origins" in env:  # recorded, and none of the release's time
        return ", with today's dependencies (it has no publication time to keep to)"
    return ""


def target_lines(target: dict[str, Any], env: dict[str, Any] | None) -> list[str]:
    """The target's lines: what it is, what it was installed with (each dependency of the
    release's time or not), every fallback."""
    name = f"{target.get('server')} {target.get('version')} (protocol {target.get('http')})"
    out = []
    if env is None:
        out.append(f"{name}: its environment was not recorded")
    else:
        deps = _dependencies(env)
        if env.get("beside"):
            where = "installed beside the harness"
        else:
            by = f" by {env['installer']}" if env.get("installer") else ""
            where = f"installed{by} into its own cached environment"
        if env.get("source"):
            where += f", built from {env['source']}"
        out.append(f"{name}, {where}{_time_of(env)}: {deps or 'nothing recorded'}")
        out += [f"fallback: {note}" for note in env.get("fallbacks", []) + env.get("skipped", [])]
    if target.get("construction"):
        out.append(f"mounted as the release itself builds it: {target['construction']}")
    out += [f"shim (added by the adapter for this Python): {s}" for s in target.get("shims", [])]
    return out
