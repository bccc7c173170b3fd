"""How replay prints a run's log: repeats folded, the middle of a long one left out."""

from __future__ import annotations

from harness.tools.log_lines import HEAD, TAIL, abridged, folded


def test_a_line_repeated_over_and_over_shows_its_first_and_last_with_a_count_between():
    log = ["0.0 accept c1", *(f"{t / 10:.1f} timer poll" for t in range(1, 51)),
           "5.0 close server[c1]"]
    assert folded(log) == ["0.0 accept c1", "0.1 timer poll",
                           "... the line above 48 more times, and once more: ...",
                           "5.0 timer poll", "5.0 close server[c1]"]


def test_a_stretch_of_lines_repeating_with_other_numbers_folds_too():
    log = [line for n in range(1, 101) for line in ("0.0 recv 1B", f"0.0 receive #{n}")]
    assert folded(log) == ["0.0 recv 1B", "0.0 receive #1",
                           "... the 2 lines above 98 more times, and once more: ...",
                           "0.0 recv 1B", "0.0 receive #100"]


def test_a_short_repeat_stays_as_it_is():
    log = ["0.0 send 73B", "0.0 send 12B", "0.0 send 5B", "0.0 returned"]
    assert folded(log) == log  # folding three lines into three would only hide sizes
    assert abridged(log) == log


def test_what_folding_leaves_long_shows_its_start_and_end():
    # Lines of 26 x 26 shapes, none repeating within 26 lines of another like it.
    log = [f"{n}.0 event {chr(97 + n % 26)}{chr(97 + n // 26 % 26)}" for n in range(1000)]
    short = abridged(log)
    assert len(folded(log)) == 1000  # nothing repeats
    assert short == [*log[:HEAD], f"... {1000 - HEAD - TAIL:,} lines omitted (--full prints "
                                  "all 1,000 events) ...", *log[-TAIL:]]
