"""The HTTP scope: the client script, the app behaviours, the scenario space, what a run
is observed to do, and the oracles that judge it."""
