"""Live progress of an explore, on stderr.

On a terminal, a status line drawn by rich below the lines already printed:
runs, runs per second, distinct failures, what is being shrunk, and the budget
left. Elsewhere (a CI log, a pipe), the same status as a plain line every
PLAIN_EVERY seconds. Either way, events worth keeping (a stored failure
retried, a failure being shrunk, a report written) are printed as lines.

Events come from the search engine (harness/search/engine.py), through the
runner, tagged with the job that sent them: "runs" {runs, searched, shrinking},
"stored" {name, state}, "shrinking" and "shrunk" {kind, signature}, "shrinking
elsewhere" (with parallel jobs: detected here, shrunk by the job that claimed it),
"found" {kind, signature, source}, "finding" (the whole finding, for the reports) and
"unjudged" {target, trace} (the first run that could not be judged, kept by the CLI).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.live import Live

PLAIN_EVERY = 5.0
Listener = Callable[[int, str, dict[str, Any]], None]


class Progress:
    """A live status line on a terminal, plain lines otherwise."""

    def __init__(self, stream: Any = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        stream = sys.stderr if stream is None else stream  # the one in place now
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []  # told every event too (the JSON summary)
        self.live: Live | None = None
        self.target("", None, None)

    def target(self, label: str, budget: float | None, max_runs: int | None) -> None:
        """A new target begins: its counters start from zero."""
        with self.lock:
            self.label, self.budget, self.max_runs = label, budget, max_runs
            self.runs: dict[int, int] = {}
            self.searched: dict[int, float] = {}
            # Failures being shrunk, oldest first: a search hands each to a child and goes
            # on, so several may be shrinking at once (harness/search/forks.py).
            self.shrinking: dict[tuple[int, str, str], None] = {}
            # Each failure reported (detected, or shrunk), and the job that reported it
            # first: parallel jobs may find the same one. One job shrinks it (the first
            # to claim it), unless the jobs have no claims folder to share.
            self.found: dict[tuple[str, str], int] = {}
            self.shrunk: dict[tuple[str, str], int] = {}
            self.let_go: set[tuple[str, str]] = set()  # a stopped job was shrinking them
            self.retried: set[tuple[int, str, str]] = set()  # stored, being confirmed
            self.start = self.clock()
            self.last_plain = self.start
            # What the live line shows: rich's refresh thread reads this string and
            # nothing else, so it never takes our lock (no lock-order deadlock).
            self.shown = self.status()

    def line(self, text: str) -> None:
        with self.lock:
            if self.tty:
                self._live().console.print(text, markup=False, highlight=False,
                                           soft_wrap=True)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def finish(self) -> None:
        with self.lock:
            if self.live is not None:
                self.live.stop()
                self.live = None

    def stopped(self, job: int, why: str) -> list[tuple[str, str]]:
        """Job `job` died (parallel jobs; the others go on): say so, and return what it
        was shrinking, which goes back to the other jobs (harness/search/claims.py)."""
        with self.lock:
            dropped = [(kind, sig) for j, kind, sig in self.shrinking if j == job]
            for key in dropped:
                del self.shrinking[(job, *key)]
                self.let_go.add(key)
            self.shown = self.status()
        self.line(f"job {job} stopped, the other jobs go on: {why}")
        return dropped

    def event(self, job: int, event: str, info: dict[str, Any]) -> None:
        with self.lock:
            self._event(job, event, info)
            self.shown = self.status()
            if self.tty:
                self._live()
        for listener in self.listeners:
            listener(job, event, info)

    def _event(self, job: int, event: str, info: dict[str, Any]) -> None:
        if event in ("shrinking", "shrinking elsewhere", "found") and "runs" in info:
            self.runs[job] = int(info["runs"])
        if event == "runs":
            self.runs[job] = int(info.get("runs", 0))
            self.searched[job] = float(info.get("searched", 0.0))
            if not self.tty and self.clock() - self.last_plain >= PLAIN_EVERY:
                self.last_plain = self.clock()
                self.line(self.status())
        elif event == "shrinking" and info.get("stored"):  # shrunk once already
            self.retried.add((job, str(info["kind"]), str(info["signature"])))
            if info["stored"] != "trace":  # (a stored trace's retry has its own line)
                self.line(f"found {info['kind']} at run {_met_at(info)}: "
                          f"{info['signature']} (an example stored by an earlier search)")
        elif event in ("shrinking", "shrinking elsewhere"):
            key = (str(info["kind"]), str(info["signature"]))
            if event == "shrinking elsewhere":  # (parallel jobs: another one claimed it)
                doing = "another job is shrinking it"
            else:
                self.shrinking[(job, *key)] = None
                if key in self.let_go:
                    doing = "the job that was shrinking it stopped; shrinking it here"
                else:
                    doing = _elsewhere(self.found, key, job, "another job reported it "
                                       "already; shrinking it here too") or "shrinking..."
            self.line(f"found {info['kind']} at run {_met_at(info)}: "
                      f"{info['signature']} ({doing})")
        elif event == "shrunk" and (job, info["kind"], info["signature"]) in self.retried:
            self.retried.discard((job, info["kind"], info["signature"]))  # only confirmed
        elif event == "shrunk":
            key = (str(info["kind"]), str(info["signature"]))
            self.shrinking.pop((job, *key), None)
            self.line(f"shrunk {info['kind']} in {float(info.get('seconds', 0)):.1f}s"
                      + _elsewhere(self.shrunk, key, job, " (another job's shrunk report "
                                                          "stands)"))
        elif event in ("found", "finding"):
            # "finding": its report was just written, as detected or once shrunk. Detection
            # never waits for shrinking, so neither does this count.
            key = (str(info["kind"]), str(info["signature"]))
            self.found.setdefault(key, job)
            if event == "finding" and info.get("shrunk", True):
                self.shrunk.setdefault(key, job)
        elif event == "stored":
            what = f"retried stored failure {info['name']}: {info['state']}"
            if info["state"] == "fails":  # (its name has the kind it failed with when stored)
                what += f" with {info['kind']}: {info['signature']}"
            self.line(what + ("" if info["state"] == "fails" else " (dropped from the store)"))

    def status(self) -> str:
        total = sum(self.runs.values())
        searched = max(self.searched.values(), default=0.0)
        parts = [self.label, f"runs {total}",
                 f"{total / searched if searched else 0:.0f}/s",
                 f"distinct failures {len(self.found)}"]
        if self.budget:
            left = max(0.0, self.budget - searched)  # a budget of 1e300 is not 301 digits
            parts.append(f"{left:.0f}s left" if left < 1e6 else f"{left:.3g}s left")
        elif self.max_runs is not None:
            parts.append(f"{max(0, self.max_runs - total)} runs left")
        if self.shrinking:  # last: the longest part, the one a narrow terminal cuts
            _, kind, signature = next(iter(self.shrinking))
            more = f" (+{len(self.shrinking) - 1})" if len(self.shrinking) > 1 else ""
            parts.append(f"shrinking{more} {kind} {signature[:40]}...")
        return "  ".join(p for p in parts if p)

    def _live(self) -> Live:
        if self.live is None:  # rich only on a terminal: plain runs start faster without it
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self.live = Live(console=console, transient=True, refresh_per_second=4,
                             get_renderable=lambda: Text(self.shown, no_wrap=True,
                                                         overflow="ellipsis"),
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        return self.live


def _met_at(info: dict[str, Any]) -> Any:
    """The run that met a failure: what --json's runs_to_find says too."""
    return info.get("at", info.get("runs", "?"))


def _elsewhere(reported: dict[tuple[str, str], int], key: tuple[str, str], job: int,
               note: str) -> str:
    """`note` when another job than `job` reported `key` first, else nothing."""
    return note if reported.get(key, job) != job else ""
