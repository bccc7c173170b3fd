"""A trace's server settings, replayed where they mean something else or do not exist."""

from __future__ import annotations

from typing import Any

import pytest

from harness.search.trace import TraceError
from harness.targets.registry import entry, translate_settings
from harness.targets.runner import _settings_of_release


class OldHypercorn:
    """A release that offers only the settings hypercorn 0.10 had."""

    name, version, http, asgi = "hypercorn", "0.10.2", "h11", 3

    def settings_space(self) -> dict[str, list[Any]]:
        return entry("hypercorn").settings_for(self.version)


def test_a_setting_another_release_lacks_is_dropped_at_its_default_and_refused_otherwise():
    recorded = {"keep_alive_timeout": 1, "read_timeout": None, "keep_alive_max_requests": 1000}
    assert _settings_of_release(recorded, OldHypercorn()) == {"keep_alive_timeout": 1}
    with pytest.raises(TraceError, match=r"read_timeout=1, which hypercorn 0.10.2 does not"):
        _settings_of_release({**recorded, "read_timeout": 1}, OldHypercorn())
    with pytest.raises(TraceError, match="timeout_keep_alive"):  # another server's name
        _settings_of_release({"timeout_keep_alive": 5}, OldHypercorn())


def test_settings_cross_servers_by_meaning():
    uvicorn = {"timeout_keep_alive": 1, "limit_concurrency": 2}
    assert translate_settings(uvicorn, "uvicorn", entry("hypercorn"), "0.18.0") == {
        "keep_alive_timeout": 1}
    assert translate_settings(uvicorn, "uvicorn", entry("reference"), "0.1.0") == {
        "keep_alive": 1}
    hypercorn = {"keep_alive_timeout": 5, "max_app_queue_size": 1}
    assert translate_settings(hypercorn, "hypercorn", entry("uvicorn"), "0.54.0") == {
        "timeout_keep_alive": 5}
