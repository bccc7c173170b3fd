"""Which release introduced, and which fixed, a failure the survey found.

The survey explored one release per minor version; the failure was found on some
of them. Its trace from the oldest of those is replayed on the surveyed releases
before it, newest first, until one passes (the search may simply have missed it
on the ones between); then `harness bisect`'s binary search (bisect.narrow) runs
over every runnable release between that one and the failing one, and names the
first failing release: the one that introduced it. The same, forwards, with the
trace from the newest failing release, names the first release that passes: the
one that fixed it. A verdict is bisect's own (bisect.verdict_of): a lenient replay
of the trace, or, where the trace does not apply, a search of its family.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.version import Version

from harness.errors import HarnessError
from harness.search.trace import Trace, write_atomically
from harness.tools.bisect import narrow, said_of, verdict_of
from harness.tools.survey_results import Distinct

# (server, version, http, trace path) -> (fails? or None: cannot be tried, why)
Verdict = Callable[[str, str, str, str], tuple[bool | None, str]]
Log = Callable[[str], None]


def replay_verdict(budget: float) -> Verdict:
    """The verdict `harness bisect` gives, with `budget` for the searches it falls back to."""
    args = argparse.Namespace(budget=budget, scenario=None, kind=None)

    def verdict(server: str, version: str, http: str, trace: str) -> tuple[bool | None, str]:
        try:
            return verdict_of(f"{server}=={version}", http, args, Trace.load(trace))
        except HarnessError as exc:  # verdict_of already skips what does not install
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "?"
            return None, f"cannot be tried: {first}"

    return verdict


class Bisector:
    def __init__(self, server: str, runnable: list[str], verdict: Verdict, log: Log,
                 cache: Path, settings: dict[str, Any]) -> None:
        self.server, self.runnable, self.verdict, self.log = server, runnable, verdict, log
        self.cache, self.settings = cache, settings

    def __call__(self, failure: Distinct, surveyed: list[str]) -> dict[str, Any]:
        """Introducing and fixing release of `failure`; `surveyed`: the releases explored
        on its protocol, oldest first. Cached by everything it depends on."""
        oldest, newest = failure.found_on[0], failure.found_on[-1]
        old_trace, new_trace = failure.traces.get(oldest), failure.traces.get(newest)
        if old_trace is None or new_trace is None:
            return self._answer(None, "no trace was kept", None, "no trace was kept", [])
        key = hashlib.sha256(json.dumps(
            [self.settings, failure.http, failure.kind, failure.signature, surveyed,
             self.runnable, Path(old_trace).read_text(), Path(new_trace).read_text()]
        ).encode()).hexdigest()[:16]
        path = self.cache / f"bisect-{failure.http}-{key}.json"
        try:
            cached: dict[str, Any] = json.loads(path.read_text())
            self.log(f"  {failure.id}: bisected earlier (introduced: {cached['introduced_text']}"
                     f"; fixed: {cached['fixed_text']})")
            return cached
        except (OSError, ValueError, KeyError):
            pass
        tried: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], bool | None] = {}  # (trace, release) -> verdict
        before = [v for v in surveyed if Version(v) < Version(oldest)][::-1]
        introduced, intro_text = self._edge(failure, old_trace, oldest, before, tried, seen,
                                            old_fails=False)
        after = [v for v in surveyed if Version(v) > Version(newest)]
        fixed, fixed_text = self._edge(failure, new_trace, newest, after, tried, seen,
                                       old_fails=True)
        answer = self._answer(introduced, intro_text, fixed, fixed_text, tried)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(answer, indent=1) + "\n")
        return answer

    def _edge(self, failure: Distinct, trace: str, failing: str, outward: list[str],
              tried: list[dict[str, Any]], seen: dict[tuple[str, str], bool | None],
              old_fails: bool) -> tuple[str | None, str]:
        """Walk `outward` (surveyed releases, nearest first) to the first that passes the
        trace, then bisect between it and `failing`. (release, how it was found)."""

        def check(version: str) -> bool | None:
            if (trace, version) not in seen:
                fails, why = self.verdict(self.server, version, failure.http, trace)
                seen[(trace, version)] = fails
                word = "cannot be tried" if fails is None else "fails" if fails else "passes"
                tried.append({"release": version, "verdict": word, "why": why})
                self.log(f"  {failure.id} on {self.server} {version}: {said_of(fails, why)}")
            return seen[(trace, version)]

        if check(failing) is not True:
            return None, f"unknown: the trace does not fail on {failing}, where it was found"
        passing = None
        for v in outward:  # the nearest that passes; the bracket's failing end moves along
            verdict = check(v)
            if verdict is False:
                passing = v
                break
            if verdict is True:
                failing = v
        if passing is None:
            edge = outward[-1] if outward else failing
            if old_fails:
                return None, f"not fixed (fails up to {edge}, the newest surveyed)"
            return None, f"at or before {edge} (the oldest surveyed; it fails there)"
        lo, hi = sorted((passing, failing), key=Version)
        span = [v for v in self.runnable if Version(lo) <= Version(v) <= Version(hi)]
        a, b = narrow(span, check, old_fails)
        if b - a > 1:
            return None, (f"between {span[a]} and {span[b]} (the releases between could not "
                          "be tried)")
        if old_fails:
            return span[b], f"in {span[b]} ({span[a]} fails)"
        return span[b], f"in {span[b]} ({span[a]} passes)"

    @staticmethod
    def _answer(introduced: str | None, intro_text: str, fixed: str | None, fixed_text: str,
                tried: list[dict[str, Any]]) -> dict[str, Any]:
        return {"introduced": introduced, "introduced_text": intro_text, "fixed": fixed,
                "fixed_text": fixed_text, "tried": tried}
