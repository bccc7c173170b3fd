"""Targets: the registry of servers, their cached environments, and the worker and runner
that serve one release per process."""
