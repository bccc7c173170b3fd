"""The harness's own tests start from a cold search: no examples store unless a test
names one (an explore's result must not depend on what an earlier test run found)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_examples_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_EXAMPLES", "off")
    monkeypatch.delenv("HARNESS_PROFILE", raising=False)
