"""The scenario families, by name: what every command's --family and the pytest plugin
check against. Apart from strategies.py, which draws each family's scenarios, so that
a command can check its options without importing Hypothesis (about half a second)."""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import InputError

FAMILIES = ("keepalive", "pipelining", "disconnect", "flow", "concurrency", "shutdown")


def check_families(families: Iterable[str], option: str = "") -> None:
    """Each name a scenario family, or an InputError naming the first that is not (the
    one check every command and the pytest plugin make); `option` is where it was given,
    when the message should say (the plugin's)."""
    for family in families:
        if family not in FAMILIES:
            raise InputError(f"unknown scenario family {family!r}"
                             + (f" ({option})" if option else "")
                             + f"; known: {', '.join(FAMILIES)}")
