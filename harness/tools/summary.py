"""`harness explore --json PATH`: the summary a CI job reads.

Built from the same events the progress line shows, so an interrupted explore
still says what it had found; each target's final result then replaces what the
events estimated. Written whole or not at all (a temporary file renamed into
place), whether the explore found failures, found none, was interrupted, or
stopped on an error. Its shape:

    {"format": "asgi-race-harness/explore-summary", "version": 1,
     "state": "completed" | "interrupted" | "terminated" | "error",
     "exit_code": 0 | 1 | 2 | 130 | 143, "error": null | "the one-line message",
     "command": {"server", "http", "families", "budget", "max_runs", "seed",
                 "strategy", "jobs", "profile", "examples"},
     "targets": [{"server", "version", "http",
                  "state": "completed" | "searching" | "installing",
                  "runs", "seconds_searching", "seconds_shrinking", "runs_per_second",
                  "unjudged_runs", "families_left_out": {family: why},
                  "failures": [{"kind", "signature", "message", "report",
                                "runs_to_find", "seconds_to_find", "seconds_to_shrink",
                                "seconds_to_report",
                                "source": "search" | "trace" | "examples",
                                "from_store": true | false, "shrunk": true | false}]}]}

A command refused before it starts (a bad option, an unknown server) writes none: its
exit status 2 and its message say why. "budget" is null for a search bounded by
"max_runs" alone. A target's "state" is the stage it had reached when the explore
ended. "families_left_out" names the families the target cannot run (the shutdown
family where its adapter has no shutdown path), each with why. "seconds_to_report"
is null for a failure whose report was not written (an interrupt came first).
"source" says how the failure was found this time: by the search, by replaying a
trace stored by an earlier explore, or by replaying an example Hypothesis stored.
"unjudged_runs" counts the runs that could not be judged (their step budget ran out
while they were still under way; the first is kept as unjudged-run.json beside the
target's reports), once the target's search has completed.
"shrunk" is false for a failure listed as detected, its shrinking cut short by an
interrupt: its report is the run that met it, replayable but not shrunk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.search.trace import write_atomically

FORMAT = "asgi-race-harness/explore-summary"
VERSION = 1


class Summary:
    def __init__(self, command: dict[str, Any]) -> None:
        self.command = command
        self.targets: list[dict[str, Any]] = []
        self.jobs: dict[int, dict[str, float]] = {}

    def begin(self, spec: Any) -> None:
        """A target's search starts (spec: a TargetSpec; its version may be unknown yet)."""
        self.jobs = {}
        self.targets.append({"server": spec.server, "version": spec.version, "http": spec.http,
                             "state": "installing", "runs": 0, "seconds_searching": 0.0,
                             "seconds_shrinking": 0.0, "runs_per_second": 0.0,
                             "unjudged_runs": 0, "families_left_out": {}, "failures": []})

    def installed(self) -> None:
        """The target's environment is ready: its search begins."""
        if self.targets:
            self.targets[-1]["state"] = "searching"

    def event(self, job: int, event: str, info: dict[str, Any]) -> None:
        if not self.targets:
            return
        current = self.targets[-1]
        if event in ("runs", "shrinking", "found"):  # each says how many runs so far
            job_now = self.jobs.setdefault(job, {"runs": 0, "searched": 0.0, "shrinking": 0.0})
            job_now["runs"] = float(info.get("runs", job_now["runs"]))
            job_now["searched"] = float(info.get("searched", job_now["searched"]))
            job_now["shrinking"] = float(info.get("shrinking", job_now["shrinking"]))
            self._totals(current, int(sum(j["runs"] for j in self.jobs.values())),
                         max(j["searched"] for j in self.jobs.values()),
                         max(j["shrinking"] for j in self.jobs.values()))
        elif event == "finding":
            current["version"] = info["target"]["version"]
            self._add(current, info)

    def end(self, result: dict[str, Any]) -> None:
        """The target's own account, once its search has returned."""
        current = self.targets[-1]
        current["version"] = result["target"]["version"]
        current["state"] = "completed"
        current["unjudged_runs"] = int(result.get("unjudged", 0))
        current["families_left_out"] = dict(result.get("unavailable") or {})
        self._totals(current, int(result["runs"]), float(result["seconds"]),
                     float(result.get("shrink_seconds", 0.0)))
        for finding in result["findings"]:
            self._add(current, finding)

    def reports(self, written: dict[tuple[str, str], Path]) -> None:
        """Where each failure's report folder went (the report writers' record)."""
        for target in self.targets:
            for failure in target["failures"]:
                path = written.get((failure["kind"], failure["signature"]))
                if path is not None and failure["report"] is None:
                    failure["report"] = str(path.resolve())
                if failure["report"] is None:  # the search had handed it over; no more
                    failure["seconds_to_report"] = None

    def write(self, path: Path, state: str, exit_code: int, error: str | None = None) -> None:
        data = {"format": FORMAT, "version": VERSION, "state": state, "exit_code": exit_code,
                "error": error, "command": self.command, "targets": self.targets}
        write_atomically(path, json.dumps(data, indent=1, default=str) + "\n")

    @staticmethod
    def _totals(target: dict[str, Any], runs: int, searched: float, shrinking: float) -> None:
        target.update(runs=runs, seconds_searching=round(searched, 3),
                      seconds_shrinking=round(shrinking, 3),
                      runs_per_second=round(runs / searched, 1) if searched else 0.0)

    @staticmethod
    def _add(target: dict[str, Any], finding: dict[str, Any]) -> None:
        key = (finding["kind"], finding["signature"])
        shrunk = bool(finding.get("shrunk", True))
        for i, known in enumerate(target["failures"]):
            if (known["kind"], known["signature"]) == key:
                if known["shrunk"] or not shrunk:
                    return  # another job found it too, or the final result repeats it
                del target["failures"][i]  # as detected, now shrunk: replaced
                break
        source = str(finding.get("source", "search"))
        target["failures"].append({
            "kind": finding["kind"], "signature": finding["signature"],
            "message": finding.get("message", ""), "report": None,
            "runs_to_find": finding.get("runs_to_find"),
            "seconds_to_find": round(float(finding.get("seconds_to_find", 0.0)), 3),
            "seconds_to_shrink": round(float(finding.get("seconds_to_shrink", 0.0)), 3),
            "seconds_to_report": round(float(finding.get("seconds_to_report", 0.0)), 3),
            "source": source, "from_store": source != "search", "shrunk": shrunk})
