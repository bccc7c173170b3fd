"""The worker: serves one request on the release that is first on sys.path.

Run as `python -m harness.targets.worker` with the release's cached site folder first
on PYTHONPATH (harness/targets/runner.py does this). Reads one JSON request on stdin;
writes JSON lines on stdout: progress events, then the result or an error.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any


def main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the target prints must not corrupt the protocol

    def emit(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        from harness.errors import HarnessError
        from harness.targets.runner import handle

        request = json.loads(sys.stdin.read())
        result = handle(request, lambda event, info: emit({"event": event, "info": info}))
    except HarnessError as exc:
        emit({"event": "error", "message": str(exc), "who": exc.who})
        return 1
    except Exception as exc:  # not raised on purpose: a fault of the harness itself
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}", "who": "harness",
              "traceback": traceback.format_exc()})
        return 1
    emit({"event": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
