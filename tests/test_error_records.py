"""A server's ERROR records are judged by the exception they carry, also when the
server formats the traceback into the message itself (uvicorn before 0.3 does): the
app's deliberate raise is no server error, anything else is, named by its type."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.observations import ErrorCollector
from harness.http.scenario import HttpScenario, run_http
from tests.programs import FakeTarget, OneAppCall

LOGGER = logging.getLogger("textlogging")


class LogsTracebacksAsText(OneAppCall):
    """Calls the app once, answers 200, and logs an exception the app raised the way
    uvicorn 0.2 does: logger.error(msg, traceback_text), no exc_info. Its receive()
    raises once the body was read, as 0.2's does after the response."""

    async def run_app(self, path: str) -> None:
        scope = self.scope(path)
        read = False

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read:
                raise RuntimeError("Receive channel no longer available.")
            read = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n")
            else:
                self.transport.write(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:
            LOGGER.error("Exception in ASGI application\n%s", traceback.format_exc())


def errors_of(behaviour: AppBehaviour) -> list[tuple[str, str]]:
    scenario = HttpScenario("flow", (ConnSpec((RequestSpec(),)),), ((1, 0, behaviour),))
    run = run_http(scenario, FakeTarget(LogsTracebacksAsText), OrdinarySource())
    return [f.key() for f in run.failures if f.kind == "server-error"]


def test_the_apps_deliberate_raise_logged_as_text_is_no_server_error():
    assert errors_of(AppBehaviour(raise_at="before-response")) == []
    assert errors_of(AppBehaviour(raise_at="after-start")) == []


def test_the_servers_own_exception_logged_as_text_is_a_server_error_named_by_its_type():
    assert errors_of(AppBehaviour(receive_after=True)) == [
        ("server-error", "textlogging: RuntimeError")]


def test_a_message_without_a_traceback_is_judged_by_its_words():
    collector = ErrorCollector()
    LOGGER.addHandler(collector)
    try:
        LOGGER.error("ASGI callable returned without completing response.")
    finally:
        LOGGER.removeHandler(collector)
    [record] = collector.records
    assert (record.message, record.exc_type, record.deliberate) == (
        "ASGI callable returned without completing response.", None, False)


def test_errors_of_a_logger_without_handlers_that_does_not_propagate_are_collected():
    # uvicorn's Config leaves "uvicorn.access" so when the access log is off.
    from harness.http.scenario import collect_errors

    quiet = logging.getLogger("textlogging.quiet")
    quiet.propagate = False
    before = logging.lastResort
    try:
        with collect_errors() as collector:
            # Asked, it still has no handler: a server deciding by it keeps its path.
            assert not quiet.hasHandlers()
            quiet.error("lost on its own")
            quiet.warning("below ERROR")
        assert [r.message for r in collector.records] == ["lost on its own"]
        assert logging.lastResort is before
    finally:
        quiet.propagate = True


def test_errors_of_a_logger_with_its_own_handlers_that_does_not_propagate_are_collected():
    own = logging.getLogger("textlogging.own")
    own.propagate = False
    seen = ErrorCollector()
    own.addHandler(seen)
    try:
        from harness.http.scenario import collect_errors

        with collect_errors() as collector:
            own.error("kept by both")
        assert [r.message for r in collector.records] == ["kept by both"]
        assert [r.message for r in seen.records] == ["kept by both"]
        assert own.handlers == [seen]
    finally:
        own.removeHandler(seen)
        own.propagate = True
