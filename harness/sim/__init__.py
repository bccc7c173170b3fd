"""The simulated asyncio runtime: a stock event loop on a virtual clock whose poll is the
only place a run makes choices (loop, poller, transport, socket, listener), plus
quiescence, the watchdog, the run itself and its teardown. runtime.py is the seam."""
