"""Process exit: what happens once a server's main coroutine returns.

`asyncio.run` cancels every task still alive and runs the loop until they have
all ended (`_cancel_all_tasks`), then `loop.close()` drops the timers and
callbacks still queued; then the process exits and the kernel closes its
sockets: a FIN, or a RST where unread input remains (Linux). Whatever a
transport still buffered in user space is lost, and a listener's backlog is
reset. `exit_process` does the same on the simulated loop, on the record, so
the oracles see what the client saw when the server went away.

A task that will not end when cancelled keeps `exit_process` waiting, as it
keeps `asyncio.run` waiting: the process never exits.
"""

from __future__ import annotations

import asyncio

from harness.sim.loop import SimLoop


async def exit_process(loop: SimLoop) -> None:
    if _over(loop):  # the run is over: teardown ends what is left, not this
        return
    me = asyncio.current_task()
    # asyncio.run cancels them in the order of a set (memory addresses): any order is
    # one the real runtime can take; creation order is one that replays.
    alive = [t for t in loop.tasks_in_creation_order() if t is not me]
    loop.record("exit", f"cancelling {len(alive)} task(s), as asyncio.run does")
    for task in alive:
        task.cancel()
    await asyncio.gather(*alive, return_exceptions=True)
    if _over(loop):
        return
    # loop.close(): nothing queued runs any more (the running iteration skips cancelled
    # handles; emptying the queue under it would break its count).
    for handle in [*loop._ready, *loop._scheduled]:  # type: ignore[attr-defined]
        handle.cancel()
    loop.exited = True
    loop.record("exit", "process exited: the kernel closes its sockets")
    for server in loop.servers:
        server.close()  # the listening socket: its backlog is reset
        for transport in server.transports:
            transport.process_gone()


def _over(loop: SimLoop) -> bool:
    return loop.tearing_down
