"""Search: the engine over plain callables, exploration of HTTP scenarios on a target,
and traces (a scenario plus its decisions) that replay exactly."""
