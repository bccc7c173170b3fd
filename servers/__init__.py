"""Targets: one adapter per server, plus the reference server (servers/reference)."""
