"""What bisect counts as "the same failure" on another release: the same functions,
wherever the code moved (another line, a renamed module), never another function; and
a release that cannot run is skipped, not the end of the bisect."""

from __future__ import annotations

import argparse
import json

import pytest

from harness.tools import bisect
from harness.tools.bisect import shape, verdict_of


def test_a_renamed_module_is_the_same_failure():
    # uvicorn 0.2.17 renamed protocols/http/h11.py to h11_impl.py and fixed nothing.
    old = "receive() answers at once with nothing new, after the body's end: " \
          "uvicorn/protocols/http/h11.py in RequestResponseCycle.receive"
    new = old.replace("h11.py", "h11_impl.py")
    assert shape(old) == shape(new)
    close = "closed during a live request: close() at uvicorn/protocols/http/h11.py:203 in " \
            "RequestResponseCycle.run_asgi"
    assert shape(close) == shape(close.replace("h11.py:203", "h11_impl.py:241"))


def test_moved_lines_are_the_same_failure_and_another_function_is_not():
    hang = "blocked at uvicorn/protocols/http/httptools_impl.py:364 in RequestResponseCycle.receive"
    assert shape(hang) == shape(hang.replace(":364", ":401"))
    assert shape(hang) != shape(hang.replace("receive", "send"))
    assert shape("blocked at ?") == "blocked at ?"


def test_a_signature_without_code_places_is_kept_whole():
    for signature in ("uvicorn: Exception in ASGI application", "asyncio: LocalProtocolError",
                      "response for a request the app never saw"):
        assert shape(signature) == signature


@pytest.mark.parametrize(("release", "http", "why"), [
    ("uvicorn==0.4.0", "h11", "lacks the uvicorn.lifespan package"),
    ("uvicorn==0.2.20", "httptools", "__slots__"),
])
def test_a_release_the_registry_refuses_is_skipped_not_the_end_of_the_bisect(
        release: str, http: str, why: str):
    args = argparse.Namespace(budget=1.0, scenario=None, kind=None)
    fails, said = verdict_of(release, http, args, trace=None)
    assert fails is None
    assert said.startswith("skipped: ") and why in said


def test_each_verdict_is_printed_once_not_as_passes_pass_or_skipped_skipped():
    from harness.tools.bisect import said_of

    assert said_of(False, "pass") == "passes"
    assert said_of(True, "receive() blocked at x.py:1") == "fails (receive() blocked at x.py:1)"
    assert said_of(None, "skipped: it does not install") == "skipped: it does not install"
    assert said_of(False, "the trace does not apply (...), so keepalive was searched for "
                          "5s") == "passes (the trace does not apply (...), so keepalive was " \
                                   "searched for 5s)"


def test_releases_are_listed_from_the_index_installs_use_without_pre_releases_or_yanked(
        monkeypatch: pytest.MonkeyPatch):
    from harness.targets import era

    asked: list[str] = []

    def fetch(url: str, accept: str, timeout: float) -> bytes:
        asked.append(url)
        files = [{"filename": f"uvicorn-{v}.tar.gz", "upload-time": "2020-01-01T00:00:00Z",
                  "yanked": v == "0.10.1"} for v in ("0.11.3", "0.9.0", "0.12.0b1", "0.10.1")]
        return json.dumps({"files": files}).encode()

    monkeypatch.setattr(era, "_fetch", fetch)
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror.example/simple")
    assert bisect.releases("uvicorn") == ["0.9.0", "0.11.3"]
    assert asked == ["https://mirror.example/simple/uvicorn/"]
