"""The examples store: what earlier searches of a target found, retried first.

One folder per target and scenario space, under a root the caller names
(harness/targets/runner.py: `<cache>/examples`, HARNESS_EXAMPLES to move it or
turn it off):

    <root>/<server>-<version>-<http>-<digest>/
        key.json      what the digest covers: server, version, http, the settings
                      space and the scenario families, in order, and for a target
                      built from source its origin (a working copy's path, a git
                      repository), never its content or commit: its examples
                      outlive every edit
        hypothesis/   Hypothesis's example database, one key per search strategy
        traces/       each confirmed failure's trace, <kind>-<digest>.json

The key is spelled out rather than left to Hypothesis (which digests the test
function's source, so any edit of the engine would orphan every example), and it
names the target, so one target's examples never replay on another.

Two layers, because they survive different changes. A trace replays exactly, in
one run, as long as the code under test asks the same questions it recorded. A
Hypothesis choice sequence is played through the scenario strategy and a fresh
decision source, so it still reaches its failure when an edit of the target has
moved the decision points and the trace no longer applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EnvironmentFault
from harness.search.trace import write_atomically

if TYPE_CHECKING:  # Hypothesis is imported by what searches, not by what replays
    from hypothesis.database import ExampleDatabase

OFF = ("off", "0", "false", "no", "none")
KEY_FORMAT = 1


def root_from_env(default: Path) -> Path | None:
    """HARNESS_EXAMPLES: unset means `default`; off/0/false/no means no store; anything
    else is the folder to use."""
    value = os.environ.get("HARNESS_EXAMPLES", "").strip()
    if not value:
        return default
    if value.lower() in OFF:
        return None
    return Path(value)


@dataclass(frozen=True)
class ExampleStore:
    folder: Path

    @classmethod
    def for_target(cls, root: Path, target: dict[str, Any], settings_space: dict[str, Any],
                   families: tuple[str, ...]) -> ExampleStore:
        key = {"format": KEY_FORMAT, "server": str(target["server"]),
               "version": str(target["version"]), "http": str(target["http"]),
               "settings": settings_space, "families": list(families)}
        origin = _origin(target.get("source"))
        if origin is not None:
            key["source"] = origin
        text = json.dumps(key, sort_keys=True, default=repr)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        tag = "" if origin is None else "+git" if origin.startswith("git+") else "+wc"
        label = re.sub(r"[^\w.+-]", "_", f"{key['server']}-{key['version']}{tag}-{key['http']}")
        store = cls(root / f"{label}-{digest}")
        if not (store.folder / "key.json").exists():
            _write_atomically(store.folder / "key.json", json.dumps(key, indent=1,
                                                                    sort_keys=True,
                                                                    default=repr) + "\n")
        return store

    def database(self) -> ExampleDatabase:
        from hypothesis.database import DirectoryBasedExampleDatabase

        return DirectoryBasedExampleDatabase(self.folder / "hypothesis")

    @staticmethod
    def database_key(strategy: str) -> bytes:
        return f"strategy={strategy}".encode()

    def trace_files(self) -> list[Path]:
        folder = self.folder / "traces"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def keep(self, kind: str, signature: str, text: str) -> Path:
        """Store one failure's trace (the newest for its kind and signature wins)."""
        digest = hashlib.sha256(f"{kind}\n{signature}".encode()).hexdigest()[:8]
        name = re.sub(r"[^\w-]", "_", kind)
        path = self.folder / "traces" / f"{name}-{digest}.json"
        _write_atomically(path, text)
        return path

    @staticmethod
    def forget(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _origin(source: Any) -> str | None:
    """Where a target built from source comes from, without what it is now: a working
    copy's path, a git target's repository (its @revision dropped). So its examples
    outlive every edit, and the commits of one repository share them."""
    if not source:
        return None
    text = str(source)
    return text.rpartition("@")[0] if text.startswith("git+") and "@" in text else text


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text)
    except OSError as exc:
        raise EnvironmentFault(f"the examples store cannot be written at {path.parent} "
                               f"({exc.strerror}); point HARNESS_EXAMPLES at a folder you "
                               "can write, or turn the store off with HARNESS_EXAMPLES=off "
                               "(explore: --no-examples)") from None
