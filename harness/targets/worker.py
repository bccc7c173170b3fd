"""The worker: serves one request on one release, in a process of its own.

Run as `python -m harness.targets.worker` (harness/targets/runner.py does this). Reads
one JSON request on stdin; writes JSON lines on stdout: progress events, then the
result or an error.

The harness runs on its own dependencies, the release on its own, in one process
(Rule 5: one target version per process). The worker starts without the release's
folder on sys.path and imports everything of the harness it runs (`HARNESS`); only
then does `mount` put that folder first and drop from `sys.modules` each module the
folder also provides, so the release imports its own (an h11 of its time) while the
harness keeps the modules it already bound (the client parses responses with the
harness's own h11, whatever the release pins).
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, machine_fault

# What a worker runs of the harness: imported before the release is mounted.
HARNESS = ("harness.targets.runner", "harness.search.explore",
           "harness.http.scenario", "harness.http.client", "servers.reference.target")
NEVER_DROPPED = frozenset({"harness", "servers"})  # the harness's own code


def provided(site: Path) -> set[str]:
    """The top-level modules a site folder provides."""
    names = set()
    for entry in site.iterdir():
        if entry.is_dir():
            if entry.name.isidentifier() and entry.name != "__pycache__":
                names.add(entry.name)
        elif entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.suffix in (".so", ".pyd"):
            names.add(entry.name.partition(".")[0])
    return names


def mount(site: Path) -> list[str]:
    """Put the release's `site` first on sys.path, and drop each module the harness has
    imported that `site` provides too, so the release gets its own; returns their
    top-level names."""
    shadowed = provided(site) - NEVER_DROPPED
    dropped = sorted({name.partition(".")[0] for name in sys.modules
                      if name.partition(".")[0] in shadowed})
    for name in list(sys.modules):
        if name.partition(".")[0] in shadowed:
            del sys.modules[name]
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    return dropped


def main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the target prints must not corrupt the protocol

    def emit(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        for module in HARNESS:
            importlib.import_module(module)
        from harness.search.forks import end_children_on_sigterm
        from harness.targets.runner import handle

        end_children_on_sigterm()

        request = json.loads(sys.stdin.read())
        if request.get("site"):
            mount(Path(request["site"]))
        result = handle(request, lambda event, info: emit({"event": event, "info": info}))
    except HarnessError as exc:
        emit({"event": "error", "message": str(exc), "who": exc.who})
        return 1
    except SystemExit as exc:  # the harness never exits from here: the code under test did
        emit({"event": "error", "who": "target",
              "message": f"the code under test called sys.exit({exc.code!r}) as it was "
                         "imported or run, which would end the server's process: it cannot "
                         "be tested as it is"})
        return 1
    except Exception as exc:  # not raised on purpose: a fault of the harness itself
        if (fault := machine_fault(exc)) is not None:  # or the machine's (a full disk...)
            emit({"event": "error", "message": str(fault), "who": fault.who})
            return 1
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}", "who": "harness",
              "traceback": traceback.format_exc()})
        return 1
    emit({"event": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
