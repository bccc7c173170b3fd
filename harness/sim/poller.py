"""The poll between loop iterations: the only place a simulated run makes choices.

The stock `BaseEventLoop._run_once` calls `self._selector.select(timeout)`,
queues the I/O callbacks it returns, then the expired timers, then runs
exactly the callbacks that were ready when the iteration began. `SimLoop`
keeps that method unchanged and swaps the selector for a `Poller`, so ready
callbacks run FIFO exactly as on the stock loop (README, Rule 1), and
every choice happens here, in this order:

1. scripted peer actions due at the current virtual time run (the client
   writes, closes, resets);
2. for each stream with bytes in flight: do they all arrive now (0), not yet
   (1, only when something else could happen first), or only a prefix?
   A stream held past `max_latency` must arrive;
3. peers read what arrived; bytes arriving at a closed socket answer with RST;
4. the I/O events this poll reports (a transport's read-ready and write-ready,
   a listener's accept, a signal's handler), in canonical order or a chosen
   permutation;
5. if nothing is ready and nothing arrived, virtual time jumps to the next
   thing that can happen: the earliest loop timer, peer action, or latency
   deadline. If there is none, the run is quiescent (Rule 3): the poller
   runs what waits for quiescence (`at_quiescence`, a signal sent when all is
   quiet), or records that and stops the loop.

A run that never gets there is cut after `step_budget` polls. If for the last
half of them (and at least `SPIN_POLLS`) no byte moved and virtual time stood
still, the loop was busy doing nothing: a livelock (Rule 3). Otherwise the run
was still getting somewhere (a 1-byte window carrying a large body, say) and the
budget was too small to judge it: "unsettled", which no oracle judges.

A loop that only polls is quiescent too: a server that waits by sleeping
0.1 s in a loop (uvicorn's shutdown) always has a timer, so time never stops.
When for `POLL_WINDOW` virtual seconds nothing but timers has happened, every
live timer is due within `POLL_PERIOD` and nothing is in flight or scheduled,
the timers are only polling and the run ends with outcome "polling".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harness.net.network import Stream
from harness.sim.runtime import Runtime, as_asyncio


def _set_connected(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _deliver_signal(loop: Runtime, name: str, handler: Callable[[], None]) -> None:
    loop.record("signal", name)
    handler()


POLL_PERIOD = 1.0  # a timer due within this is a poll, not a wait for something
POLL_WINDOW = 60.0  # virtual seconds of nothing but polling before the run is quiescent
SPIN_POLLS = 1000  # the fewest polls without progress that make a livelock


class Poller:
    def __init__(self, loop: Runtime, max_latency: float, step_budget: int, horizon: float):
        if max_latency <= 0 or step_budget < 1 or horizon <= 0:
            raise ValueError(
                f"need max_latency > 0, step_budget >= 1, horizon > 0; got "
                f"{max_latency!r}, {step_budget!r}, {horizon!r}"
            )
        self.loop = loop
        self.max_latency = max_latency
        self.step_budget = step_budget
        self.horizon = horizon
        self.polls = 0
        self._aloop = as_asyncio(loop)  # where the handles it makes want their loop
        self._steady_since: float | None = None  # when only polling began (see above)
        self._seen = 0  # event log entries already looked at by the polling check
        self.moved_at = 0  # the last poll at which a byte moved or virtual time passed
        self._moved_time = 0.0

    # The selector interface `_run_once` uses.
    def select(self, timeout: float | None) -> list[asyncio.Handle]:
        loop = self.loop
        self.polls += 1
        now = loop.now  # (only _advance_time moves it, at the end of a poll)
        if now != self._moved_time:
            self.moved_at, self._moved_time = self.polls - 1, now
        if self.polls > self.step_budget:
            self._cut()
            return []
        net = loop.network
        due = net.next_action_time()
        if due is not None and due <= now:
            for action in net.pop_due_actions(now):
                action()
        for peer in loop.peers:
            if peer.outbox or peer.shutdown_pending:  # else flush has nothing to do
                peer.flush()

        pending = [s for c in net.connections for s in (c.up, c.down) if s.pending]
        arrived = False
        if pending:
            others_possible = (
                timeout is not None or len(pending) > 1 or net.next_action_time() is not None
            )
            for stream in pending:
                arrived |= self._arrive(stream, others_possible, now)

        for peer in loop.peers:
            down = peer.conn.down
            if down.rx or down.fin_arrived or down.rst_arrived:  # else nothing to take
                arrived |= peer.take_arrivals()

        if arrived:
            self.moved_at = self.polls
        events = self._io_events()  # (closed receivers answer with RST there first)
        if events or arrived or timeout == 0:
            return events
        self._advance_time(timeout)
        return []

    def _cut(self) -> None:
        still = self.polls - 1 - self.moved_at
        if still >= max(SPIN_POLLS, self.step_budget // 2):
            self.loop.finish("livelock", f"no quiescence after {self.step_budget} loop "
                             f"iterations, the last {still} with no byte moved and no "
                             "time passed")
        else:
            self.loop.finish("unsettled", f"a byte moved or time passed at iteration "
                             f"{self.moved_at} of {self.step_budget}")

    def _arrive(self, stream: Stream, can_hold: bool, now: float) -> bool:
        forced = (
            stream.oldest_sent_at is not None and now - stream.oldest_sent_at >= self.max_latency
        )
        hold = can_hold and not forced
        partial = max(0, len(stream.in_flight) - 1)
        # Options: 0 = everything arrives; [1 = held back]; then k bytes, k = 1..partial.
        n = 1 + int(hold) + partial
        c = self.loop.decisions.choose(n, f"arrive {stream.name}")
        # A deviation names its decision in the log: what option c meant (held, or how
        # many bytes) depends on whether holding was possible, which the trace's
        # (what, n, choice) alone does not say (harness/tools/report.py tells it so).
        tag = f" (decision {len(self.loop.decisions.decisions) - 1})" if c else ""
        if hold and c == 1:
            self.loop.record("hold", f"{stream.name} {len(stream.in_flight)}B{tag}")
            return False
        nbytes = None if c == 0 else c - int(hold)
        moved, fin, rst = stream.arrive(nbytes)
        detail = f"{stream.name} {moved}B" + (" FIN" if fin else "") + (" RST" if rst else "")
        self.loop.record("arrive", detail + tag)
        return True

    def _discard(self, stream: Stream, back: Stream) -> None:
        self.loop.record("discard", f"{stream.name} {len(stream.rx)}B at closed socket")
        stream.rx.clear()
        back.send_rst(self.loop.time())

    def _run_at_quiescence(self) -> bool:
        """Run what waits for quiescence; False if nothing did (the run is over)."""
        waiting, self.loop.at_quiescence = self.loop.at_quiescence, []
        for action in waiting:
            action()
        self._steady_since = None
        return bool(waiting)

    def _only_polling(self, now: float) -> bool:
        loop = self.loop
        entries = loop.log.entries
        fresh, self._seen = entries[self._seen:], len(entries)
        net = loop.network
        when = loop.next_timer_when()
        scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
        steady = (
            all(e.kind == "timer" for e in fresh)
            and net.next_action_time() is None
            and not any(s.pending for c in net.connections for s in c.streams())
            and when is not None
            and all(h.when() <= now + POLL_PERIOD for h in scheduled if not h.cancelled())
        )
        if not steady:
            self._steady_since = None
            return False
        if self._steady_since is None:
            self._steady_since = now
        return now - self._steady_since >= POLL_WINDOW

    def _io_events(self) -> list[asyncio.Handle]:
        loop, aloop = self.loop, self._aloop
        groups: list[list[asyncio.Handle]] = []
        for server in loop.servers:
            if server.wants_accept():
                groups.append([asyncio.Handle(server.accept_ready, (), aloop, None)])
        if loop.pending_connects:
            for connected in loop.pending_connects:
                groups.append([asyncio.Handle(_set_connected, (connected,), aloop, None)])
            loop.pending_connects = []
        if loop.pending_signals:
            for name, handler in loop.pending_signals:
                groups.append([asyncio.Handle(_deliver_signal, (loop, name, handler), aloop,
                                              None)])
            loop.pending_signals = []
        for conn in loop.network.connections:
            # A closed socket that receives bytes answers with RST (RFC 1122, 4.2.2.13);
            # done here, one connection at a time: it changes only that connection's
            # streams, which no earlier group looked at, and records nothing else.
            if conn.server_closed and conn.up.rx:
                self._discard(conn.up, conn.down)
            if conn.client_closed and conn.down.rx:
                self._discard(conn.down, conn.up)
            end = conn.server_end
            if end is not None and end.polled and (group := end.io_events(aloop)):
                groups.append(group)
            end = conn.client_end
            if end is not None and end.polled and (group := end.io_events(aloop)):
                groups.append(group)
        if not groups:
            return []
        if len(groups) == 1:
            return groups[0]  # one option: no choice to make
        ordered: list[asyncio.Handle] = []
        while groups:
            i = loop.decisions.choose(len(groups), "io order")
            ordered.extend(groups.pop(i))
        return ordered

    def _advance_time(self, timeout: float | None) -> None:
        loop = self.loop
        net = loop.network
        now = loop.time()
        candidates = []
        if timeout is not None:
            # The stock loop's timeout is "until the earliest timer"; jump to it exactly.
            candidates.append(loop.next_timer_when() or now + timeout)
        if (t := net.next_action_time()) is not None:
            candidates.append(t)
        for conn in net.connections:
            for s in conn.streams():
                if s.oldest_sent_at is not None:
                    candidates.append(s.oldest_sent_at + self.max_latency)
        if not candidates:
            if not self._run_at_quiescence():
                loop.finish("quiescent", "nothing ready, nothing in flight, no timers")
            return
        if self._only_polling(now):
            if not self._run_at_quiescence():
                loop.finish("polling", f"for {POLL_WINDOW:g}s only timers due within "
                            f"{POLL_PERIOD:g}s fired: the loop only polls")
            return
        target = max(now, min(candidates))
        if target > self.horizon:
            loop.finish(
                "horizon",
                f"only timers past the {self.horizon:g}s virtual-time horizon remain",
            )
            return
        loop.advance_clock(target)
