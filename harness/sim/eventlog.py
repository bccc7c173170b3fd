"""The event log: everything observable a run did, in order.

Replay is judged on this log (README, Rule 2): two runs of one trace must
produce byte-identical logs. So entries hold only deterministic text (virtual
time, connection ids, byte counts, qualified names), never ids or addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Entry(NamedTuple):
    """One entry; a named tuple, as immutable as a frozen dataclass and a third of its
    cost to build (a run writes dozens).

    `raw` is the detail as recorded: its text, or an object that nothing changes later
    and whose str() is the text, for details that cost more to format than to keep (the
    app model's ASGI messages). Most runs' logs are never read, so those are formatted
    only if one is."""

    time: float
    kind: str
    raw: object

    @property
    def detail(self) -> str:
        raw = self.raw
        return raw if type(raw) is str else str(raw)

    def line(self) -> str:
        return f"{self.time:.6f} {self.kind} {self.detail}"


@dataclass
class EventLog:
    entries: list[Entry] = field(default_factory=list)

    def add(self, time: float, kind: str, detail: object) -> None:
        self.entries.append(Entry(time, kind, detail))

    def lines(self) -> list[str]:
        return [e.line() for e in self.entries]

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"

    def of_kind(self, *kinds: str) -> list[Entry]:
        return [e for e in self.entries if e.kind in kinds]
