"""`pytest scenarios/`: this repository's defaults for the race plugin.

The plugin (harness/tools/pytest_plugin.py, loaded through its pytest11 entry
point) adds one test per scenario family and target. Here, with no
`--race-server`, the targets are the reference server (which must pass every
family) and every registered server installed beside the harness, in each
protocol implementation. The older spellings --server, --http,
--scenario-budget and --scenario-seed still work here. The budget defaults to the
search profile's (HARNESS_PROFILE); failures found are kept in the examples store
and retried first next time, as explore does (HARNESS_EXAMPLES=off: cold).
"""

from __future__ import annotations

import pytest

from harness.targets.registry import REFERENCE, entries

# The reference server first (it must pass every family), then every registered server
# whose release is installed beside the harness.
DEFAULT_SERVERS = [REFERENCE] + [name for name, e in entries().items()
                                 if name != REFERENCE and e.installed_version() is not None]


def pytest_race_default_servers(config: pytest.Config) -> list[str]:
    return DEFAULT_SERVERS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("race")
    for old, new in [("--server", "race_server"), ("--http", "race_http"),
                     ("--scenario-budget", "race_budget"), ("--scenario-seed", "race_seed")]:
        group.addoption(old, dest=new, action="append" if old == "--server" else "store",
                        type=float if "budget" in old else int if "seed" in old else None,
                        metavar="", help=f"the older spelling of --{new.replace('_', '-')}")
