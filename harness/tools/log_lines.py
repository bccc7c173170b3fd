"""A run's event log as `harness replay` prints it: repeats folded, the middle of a long
log left out. A log line is "TIME KIND DETAIL"; a run near its step budget logs
hundreds of thousands of them, mostly one poll or one byte over and over, and what
explains a failure is the few lines between."""

from __future__ import annotations

import re

# Of a log still long once folded: its start, and its end, where a hang or a busy loop
# shows.
HEAD, TAIL = 60, 240  # (README, "Using it", says so)
LONGEST_REPEAT = 4  # lines in a repeating stretch that folds (a byte: arrive, recv, ...)
LEAST_SAVED = 3  # lines a fold must save, or the lines stay as they are


def _shape(line: str) -> str:
    """A line without its time and with its numbers blanked: what repeats (a poll, a
    byte read, the app's receive #N)."""
    return re.sub(r"\d+", "#", line.split(" ", 1)[1] if " " in line else line)


def folded(log: list[str]) -> list[str]:
    """`log` with each stretch of up to LONGEST_REPEAT lines repeated (times and numbers
    aside) over and over shown twice, its first time and its last, with a line between
    saying how often it repeated."""
    shapes = [_shape(line) for line in log]
    out: list[str] = []
    i = 0
    while i < len(log):
        best, best_times, saved = 1, 1, 0
        for size in range(1, LONGEST_REPEAT + 1):
            times = 1
            while shapes[i + times * size:i + (times + 1) * size] == shapes[i:i + size]:
                times += 1
            if (times - 2) * size - 1 > max(saved, LEAST_SAVED - 1):
                best, best_times, saved = size, times, (times - 2) * size - 1
        if saved:
            end = i + best * best_times
            what = "the line above" if best == 1 else f"the {best} lines above"
            out += [*log[i:i + best], f"... {what} {best_times - 2:,} more times, "
                                      "and once more: ...", *log[end - best:end]]
            i = end
        else:
            out.append(log[i])
            i += 1
    return out


def abridged(log: list[str]) -> list[str]:
    """`log` folded, and of what is still long only its first HEAD and last TAIL lines."""
    short = folded(log)
    if len(short) <= HEAD + TAIL + 1:
        return short
    omitted = len(short) - HEAD - TAIL
    return [*short[:HEAD], f"... {omitted:,} lines omitted (--full prints all {len(log):,} "
                           "events) ...", *short[-TAIL:]]
