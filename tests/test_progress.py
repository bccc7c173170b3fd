"""The explore's progress on stderr: a live rich line on a terminal, a plain status line
every few seconds elsewhere, and a line for each event worth keeping."""

from __future__ import annotations

import io

from harness.tools.progress import PLAIN_EVERY, Progress

HANG = {"kind": "receive-hang", "signature": "receive() blocked at impl.py:12", "runs": 40}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_off_a_terminal_the_status_is_a_plain_line_every_few_seconds():
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, tty=False, clock=clock)
    progress.target("uvicorn==0.11.3 (h11)", 60.0, None)
    for second in range(1, 21):  # a "runs" event every half second for ten seconds
        clock.t = second / 2
        progress.event(0, "runs", {"runs": second * 10, "searched": second / 2})
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 / PLAIN_EVERY
    assert lines[-1] == ("uvicorn==0.11.3 (h11)  runs 200  20/s  distinct failures 0  "
                         "50s left")


def test_shrinking_and_what_was_found_show_in_the_status_and_as_lines():
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    progress.event(0, "shrinking", HANG)
    assert progress.status().endswith(
        "460 runs left  shrinking receive-hang receive() blocked at impl.py:12...")
    progress.event(0, "shrunk", {**HANG, "seconds": 2.5})
    progress.event(0, "found", HANG)
    progress.event(1, "found", HANG)  # another job found the same failure
    progress.event(0, "stored", {"name": "lost-disconnect-1234", "state": "passes now"})
    assert "shrinking" not in progress.status() and "distinct failures 1" in progress.status()
    assert out.getvalue().splitlines() == [
        "found receive-hang at run 40: receive() blocked at impl.py:12 (shrinking...)",
        "shrunk receive-hang in 2.5s",
        "retried stored failure lost-disconnect-1234: passes now (dropped from the store)"]


def test_a_failure_counts_once_detected_not_once_shrunk():
    progress = Progress(io.StringIO(), tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    progress.event(0, "shrinking", HANG)
    assert "distinct failures 0" in progress.status()  # met, not yet confirmed and written
    progress.event(0, "finding", {**HANG, "shrunk": False})  # its report, as detected
    assert "distinct failures 1" in progress.status() and "shrinking" in progress.status()
    progress.event(1, "finding", {**HANG, "shrunk": False})  # another job detected it too
    progress.event(0, "found", HANG)
    assert "distinct failures 1" in progress.status()


def test_a_failure_two_jobs_shrink_says_whose_report_stands():
    # Each job searches and shrinks on its own: the second one's lines would otherwise
    # look like a new failure, and its "shrunk" like a report that never appears.
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    progress.event(0, "shrinking", HANG)
    progress.event(0, "finding", {**HANG, "shrunk": False})
    progress.event(1, "shrinking", {**HANG, "runs": 55})
    progress.event(0, "shrunk", {**HANG, "seconds": 2.0})
    progress.event(0, "finding", {**HANG, "shrunk": True})
    progress.event(1, "shrunk", {**HANG, "seconds": 3.0})
    progress.event(1, "finding", {**HANG, "shrunk": True})
    assert out.getvalue().splitlines() == [
        "found receive-hang at run 40: receive() blocked at impl.py:12 (shrinking...)",
        "found receive-hang at run 55: receive() blocked at impl.py:12 (another job reported "
        "it already; shrinking it here too)",
        "shrunk receive-hang in 2.0s",
        "shrunk receive-hang in 3.0s (another job's shrunk report stands)"]
    assert "distinct failures 1" in progress.status()


def test_on_a_terminal_rich_draws_the_status_and_prints_lines_above_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    progress = Progress(out, tty=True, clock=FakeClock())
    progress.target("t", 10.0, None)
    progress.event(0, "runs", {"runs": 30, "searched": 2.0})
    progress.line("  receive-hang: ...\n    -> reports/x/")
    progress.event(0, "shrinking", HANG)
    assert progress.live is not None
    progress.live.refresh()
    progress.finish()
    text = out.getvalue()
    assert "receive-hang: ..." in text and "-> reports/x/" in text
    assert "t  runs 30  15/s  distinct failures 0  8s left" in text  # the first frame
    assert "runs 40  20/s  distinct failures 0  8s left  shrinking receive-hang" in text
    assert "\x1b[" in text  # drawn with terminal controls


def test_every_event_also_reaches_the_listeners():
    seen: list[tuple[int, str]] = []
    progress = Progress(io.StringIO(), tty=False, clock=FakeClock())
    progress.listeners.append(lambda job, event, info: seen.append((job, event)))
    progress.event(1, "runs", {"runs": 1, "searched": 0.1})
    progress.event(0, "finding", HANG)
    assert seen == [(1, "runs"), (0, "finding")]


def test_failures_shrinking_side_by_side_show_as_one_with_a_count():
    # A search hands each failure to a child and goes on, so two may be shrinking.
    progress = Progress(io.StringIO(), tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    other = {**HANG, "kind": "premature-close", "signature": "close() at impl.py:40"}
    progress.event(0, "shrinking", HANG)
    progress.event(0, "shrinking", other)
    assert progress.status().endswith("shrinking (+1) receive-hang receive() blocked at "
                                      "impl.py:12...")
    progress.event(0, "shrunk", {**HANG, "seconds": 1.0})
    assert progress.status().endswith("shrinking premature-close close() at impl.py:40...")
    progress.event(0, "shrunk", {**other, "seconds": 1.0})
    assert "shrinking" not in progress.status()


def two_jobs_meet_one_failure() -> tuple[io.StringIO, Progress]:
    """Job 0 claimed HANG and is shrinking it; job 1 met it too and handed it over."""
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    progress.event(0, "shrinking", HANG)
    progress.event(1, "shrinking elsewhere", {**HANG, "runs": 55})
    return out, progress


def test_a_failure_another_job_claimed_is_named_as_shrunk_there():
    out, progress = two_jobs_meet_one_failure()
    progress.event(1, "finding", {**HANG, "shrunk": False})
    assert out.getvalue().splitlines() == [
        "found receive-hang at run 40: receive() blocked at impl.py:12 (shrinking...)",
        "found receive-hang at run 55: receive() blocked at impl.py:12 (another job is "
        "shrinking it)"]
    assert "runs 95" in progress.status() and "shrinking receive-hang" in progress.status()


def test_a_stopped_job_gives_back_what_it_was_shrinking_and_its_taker_says_so():
    out, progress = two_jobs_meet_one_failure()
    assert progress.stopped(0, "harness bug: the model broke") == [
        (HANG["kind"], HANG["signature"])]
    assert "shrinking" not in progress.status()  # nobody is shrinking it now
    assert progress.stopped(0, "again") == []  # given back once
    progress.event(1, "shrinking", {**HANG, "runs": 70})
    assert out.getvalue().splitlines()[2:] == [
        "job 0 stopped, the other jobs go on: harness bug: the model broke",
        "job 0 stopped, the other jobs go on: again",
        "found receive-hang at run 70: receive() blocked at impl.py:12 (the job that was "
        "shrinking it stopped; shrinking it here)"]
    assert "shrinking receive-hang" in progress.status()


def test_a_huge_budget_left_is_shown_short_not_in_three_hundred_digits():
    progress = Progress(io.StringIO(), tty=False, clock=FakeClock())
    progress.target("t", 1e300, None)
    progress.event(0, "runs", {"runs": 10, "searched": 1.0})
    assert progress.status().endswith("  1e+300s left")
    progress.target("t", 999_999.0, None)
    progress.event(0, "runs", {"runs": 10, "searched": 1.0})
    assert progress.status().endswith("  999998s left")


def test_a_stored_failure_met_again_is_said_once_with_what_it_fails_with():
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=FakeClock())
    progress.target("t", None, 500)
    progress.event(0, "stored", {"name": "lost-disconnect-1234", "state": "fails", **HANG})
    progress.event(0, "shrinking", {**HANG, "runs": 1, "stored": "trace"})
    assert "shrinking" not in progress.status()  # only confirmed, in a few runs
    progress.event(0, "shrunk", {**HANG, "seconds": 0.01})
    progress.event(0, "shrinking", {**HANG, "signature": "other", "runs": 2,
                                    "stored": "examples"})  # Hypothesis's own store
    progress.event(0, "shrunk", {**HANG, "signature": "other", "seconds": 0.01})
    assert out.getvalue().splitlines() == [
        "retried stored failure lost-disconnect-1234: fails with receive-hang: receive() "
        "blocked at impl.py:12",
        "found receive-hang at run 2: other (an example stored by an earlier search)"]
