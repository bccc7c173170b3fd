"""A trace's server settings, replayed where they mean something else or do not exist."""

from __future__ import annotations

import pytest

from harness.search.trace import TraceError
from harness.targets.registry import entry, translate_settings


def old_hypercorn(settings: dict[str, object]) -> dict[str, object]:
    """`settings` recorded on hypercorn, replayed on 0.10.2, which offers fewer."""
    return translate_settings(settings, "hypercorn", entry("hypercorn"), "0.10.2")


def test_a_setting_another_release_lacks_is_dropped_at_its_default_and_refused_otherwise():
    recorded = {"keep_alive_timeout": 1, "read_timeout": None, "keep_alive_max_requests": 1000}
    assert old_hypercorn(recorded) == {"keep_alive_timeout": 1}
    with pytest.raises(TraceError, match=r"read_timeout=1, which hypercorn 0.10.2 does not"):
        old_hypercorn({**recorded, "read_timeout": 1})
    with pytest.raises(TraceError, match="timeout_keep_alive"):  # another server's name
        old_hypercorn({"timeout_keep_alive": 5})


def test_settings_cross_servers_by_meaning():
    uvicorn = {"timeout_keep_alive": 1, "limit_concurrency": 2}
    assert translate_settings(uvicorn, "uvicorn", entry("hypercorn"), "0.18.0") == {
        "keep_alive_timeout": 1}
    assert translate_settings(uvicorn, "uvicorn", entry("reference"), "0.1.0") == {
        "keep_alive": 1}
    hypercorn = {"keep_alive_timeout": 5, "max_app_queue_size": 1}
    assert translate_settings(hypercorn, "hypercorn", entry("uvicorn"), "0.54.0") == {
        "timeout_keep_alive": 5}
