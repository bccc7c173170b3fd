"""The harness's own tests start from a cold search: no examples store unless a test
names one (an explore's result must not depend on what an earlier test run found),
and the default search profile. Set for the whole session, so module-scoped fixtures
are covered too; a test that wants a store sets HARNESS_EXAMPLES with monkeypatch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

SESSION_ENV = {"HARNESS_EXAMPLES": "off", "HARNESS_PROFILE": None}


@pytest.fixture(scope="session", autouse=True)
def cold_search_defaults() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SESSION_ENV.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        yield
