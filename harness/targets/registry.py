"""Target specs ("uvicorn==0.11.3", "uvicorn", "reference") and where they run.

A spec names a server, optionally a version, and a protocol implementation.
The release installed in the harness's own environment runs in this process;
any other release runs in a worker subprocess on its cached environment
(harness/targets/envs.py, harness/targets/worker.py), so two versions never share a process.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

SERVERS = ("uvicorn", "reference")
HTTP_IMPLS = {"uvicorn": ("h11", "httptools"), "reference": ("h11",)}


class TargetError(ValueError):
    """An unknown server, a malformed spec or an unknown protocol implementation."""


@dataclass(frozen=True)
class TargetSpec:
    server: str
    version: str | None  # None: the release installed with the harness
    http: str

    @property
    def label(self) -> str:
        version = self.version or installed_version(self.server)
        return f"{self.server}-{version}-{self.http}"

    def in_process(self) -> bool:
        return self.version is None or self.version == installed_version(self.server)

    def __str__(self) -> str:
        pin = f"=={self.version}" if self.version else ""
        return f"{self.server}{pin} ({self.http})"


def installed_version(server: str) -> str:
    if server == "reference":
        from harness import __version__

        return __version__
    return importlib.metadata.version(server)


def parse_server(spec: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"\s*([A-Za-z][\w.-]*)\s*(?:==\s*([\w.+-]+))?\s*", spec)
    if not m:
        raise TargetError(f"malformed server {spec!r}; write it as NAME or NAME==VERSION, "
                          "for example uvicorn==0.11.3")
    name, version = m.group(1).lower(), m.group(2)
    if name not in SERVERS:
        raise TargetError(f"unknown server {name!r}; known servers: {', '.join(SERVERS)}")
    if name == "reference" and version is not None:
        raise TargetError("the reference server has no versions; write --server reference")
    return name, version


def target_specs(spec: str, http: str = "h11") -> list[TargetSpec]:
    """All targets a --server/--http pair names (--http all: every implementation)."""
    name, version = parse_server(spec)
    impls: tuple[str, ...] = HTTP_IMPLS[name]
    chosen: tuple[str, ...]
    if http == "all":
        chosen = impls
    elif http in impls:
        chosen = (http,)
    else:
        raise TargetError(f"{name} has no HTTP implementation {http!r}; use one of "
                          f"{', '.join(impls)} or all")
    return [TargetSpec(name, version, h) for h in chosen]
