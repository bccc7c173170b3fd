"""The judgement of a race search: which findings known upstream bugs explain, on a
release from the index and on a working copy or commit."""

from __future__ import annotations

from typing import Any

from harness.targets.registry import KnownBug, TargetEntry, entries
from harness.tools.judgement import judge

FIXED = KnownBug("hang#1: fixed in 2.0", "<2.0", ("h11",), "keepalive", "receive-hang",
                 "in Cycle.receive", fixed="2.0")
OPEN = KnownBug("leak#2: still open", "", ("h11",), "pipelining", "leak", "in Conn.close")
ENTRY = TargetEntry(name="fake", adapter="fake:Fake", protocols=("h11",),
                    protocol_modules={"h11": "fake"}, known_bugs=(FIXED, OPEN))


def finding(kind: str, signature: str) -> dict[str, Any]:
    return {"kind": kind, "signature": signature, "message": "m"}


HANG = finding("receive-hang", "blocked at fake.py:3 in Cycle.receive")
LEAK = finding("leak", "task waiting in Conn.close")
OTHER = finding("premature-close", "closed during a live request")


def test_a_known_bug_explains_a_finding_in_a_family_it_is_not_listed_for():
    verdict = judge([HANG, LEAK], ENTRY, "1.0", "h11", "flow", source=False)
    assert verdict.passed
    assert verdict.explained_by == [FIXED.name, OPEN.name]


def test_a_finding_no_known_bug_explains_is_unexplained():
    verdict = judge([HANG, OTHER], ENTRY, "1.0", "h11", "keepalive", source=False)
    assert verdict.unexplained == [OTHER]
    assert verdict.explained_by == [FIXED.name]
    assert not verdict.passed


def test_a_bug_listed_for_the_family_must_be_found_again():
    verdict = judge([LEAK], ENTRY, "1.0", "h11", "keepalive", source=False)
    assert verdict.not_found == [FIXED]
    assert not verdict.passed


def test_a_bug_outside_its_releases_or_protocols_explains_nothing():
    assert judge([HANG], ENTRY, "2.0", "h11", "flow", source=False).unexplained == [HANG]
    assert judge([HANG], ENTRY, "1.0", "httptools", "flow", source=False).unexplained == [HANG]


def test_on_a_working_copy_only_bugs_still_open_upstream_excuse_a_finding():
    verdict = judge([HANG, LEAK], ENTRY, "1.0", "h11", "pipelining", source=True)
    assert verdict.unexplained == [HANG]  # fixed upstream in 2.0: a regression, or old code
    assert verdict.explained_by == [OPEN.name]
    assert verdict.fixed_upstream == {(HANG["kind"], HANG["signature"]): [FIXED]}


def test_on_a_working_copy_nothing_must_be_found():
    verdict = judge([], ENTRY, "1.0", "h11", "keepalive", source=True)
    assert verdict.passed and verdict.not_found == []


def test_uvicorn_748_in_a_working_copy_of_0_11_3_fails_and_names_the_fix():
    """Both halves of #748 are fixed upstream (0.12.3): in a working copy they fail."""
    uvicorn = entries()["uvicorn"]
    hang = finding("receive-hang", "blocked at uvicorn/protocols/http/h11_impl.py:485 in "
                                   "RequestResponseCycle.receive")
    late = finding("lost-disconnect", "receive() pending at the response's end: blocked at "
                                      "uvicorn/protocols/http/httptools_impl.py:533 in "
                                      "RequestResponseCycle.receive")
    release = judge([hang, late], uvicorn, "0.11.3", "h11", "keepalive", source=False)
    assert release.passed and len(release.explained_by) == 2
    copy = judge([hang, late], uvicorn, "0.11.3", "h11", "keepalive", source=True)
    assert copy.unexplained == [hang, late]
    assert {b.fixed for bugs in copy.fixed_upstream.values() for b in bugs} == {"0.12.3"}


def test_on_a_working_copy_newer_than_a_fix_the_fixed_bug_it_matches_is_named():
    """A maintainer's branch that brings a fixed bug back: still unexplained (it fails),
    and named; a release past the fix is judged as any release is, and names nothing."""
    verdict = judge([HANG], ENTRY, "2.1.dev0", "h11", "flow", source=True)
    assert verdict.unexplained == [HANG]
    assert verdict.fixed_upstream == {(HANG["kind"], HANG["signature"]): [FIXED]}
    assert judge([HANG], ENTRY, "2.1", "h11", "flow", source=False).fixed_upstream == {}
    assert judge([HANG], ENTRY, "2.1", "httptools", "flow", source=True).fixed_upstream == {}
