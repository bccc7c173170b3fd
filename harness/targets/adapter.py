"""What every release adapter under servers/ shares: reading its own entry.

An adapter runs where its release is importable (the worker). `ReleaseAdapter`
finds the installed version, the entry's version range for it (the
construction path, ASGI version and shims, as data), and answers the parts of
the `Target` protocol that are the same for every server; a subclass sets
`entry` and writes `mount`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from typing import Any, ClassVar

from harness.targets.registry import TargetEntry, VersionRange


class InsertionOrderedSet(set[Any]):
    """A set that iterates in insertion order. A server's set of connections or tasks
    iterates in the order of their memory addresses, which differ from run to run; a
    shutdown that walks it would then not replay. Insertion order is one of the orders
    the real set can take, and the same in every run."""

    def __init__(self) -> None:
        super().__init__()
        self._order: dict[Any, None] = {}

    def add(self, item: Any) -> None:
        super().add(item)
        self._order[item] = None

    def discard(self, item: Any) -> None:
        super().discard(item)
        self._order.pop(item, None)

    def remove(self, item: Any) -> None:
        super().remove(item)
        del self._order[item]

    def pop(self) -> Any:
        item = next(iter(self._order))
        self.remove(item)
        return item

    def clear(self) -> None:
        super().clear()
        self._order.clear()

    def __iter__(self) -> Any:
        return iter(list(self._order))


def accepted(func: Any, offered: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `offered` that `func` takes: releases differ in which."""
    params = parameters(func)
    return {k: v for k, v in offered.items() if k in params}


@functools.cache
def parameters(func: Any) -> frozenset[str]:
    """The names `func` takes. A release's functions never change in its worker, and
    reading a signature costs more than a whole request of some runs: read it once."""
    return frozenset(inspect.signature(func).parameters)


class ReleaseAdapter:
    entry: ClassVar[TargetEntry]
    # Set by the runner for a working copy or commit (targets/source.py): its --server
    # spelling and what keyed its environment, so a trace names the code it came from.
    source: str | None = None
    source_key: str | None = None

    def __init__(self, http: str | None = None) -> None:
        http = http or self.entry.protocols[0]
        if http not in self.entry.protocols:
            raise ValueError(f"{self.entry.name} has no protocol {http!r}; use one of "
                             f"{', '.join(self.entry.protocols)}")
        self.name = self.entry.name
        self.http = http
        assert self.entry.distribution is not None
        self.version = importlib.metadata.version(self.entry.distribution)
        found = self.entry.version_range(self.version)
        self.range: VersionRange = found or self.entry.versions[0]
        self.asgi = self.range.asgi
        self.shims = list(self.range.shims)

    def settings_space(self) -> dict[str, list[Any]]:
        return self.entry.settings_for(self.version)

    def setting_meanings(self) -> dict[str, str]:
        return {s.name: s.means for s in self.entry.settings}

    def describe(self) -> dict[str, Any]:
        own = {"source": self.source, "key": self.source_key} if self.source else {}
        return {"server": self.name, "version": self.version, "http": self.http, **own,
                "construction": self.range.construction, "shims": list(self.shims)}
