"""Known upstream bugs, as data: which releases carry them and how the harness sees them.

`pytest scenarios/` marks a family on a listed release as an expected failure,
but only after the search has found the listed failure: CI proves the harness
still finds these bugs. Anything found that is not listed fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class KnownBug:
    name: str  # upstream reference, or a short description of a new find
    server: str
    versions: str  # a PEP 440 specifier
    http: tuple[str, ...]
    family: str
    kind: str
    signature_contains: str

    def applies(self, server: str, version: str, http: str, family: str) -> bool:
        return (server == self.server and http in self.http and family == self.family
                and Version(version) in SpecifierSet(self.versions))


KNOWN_BUGS: tuple[KnownBug, ...] = (
    KnownBug("uvicorn#241: receive() after the response blocks until more input",
             "uvicorn", "<0.3.27", ("h11", "httptools"), "keepalive", "lost-disconnect",
             "receive() after the response"),
    KnownBug("uvicorn#748: request cycles share one wake-up event; receive() hangs",
             "uvicorn", "<0.12.3", ("h11", "httptools"), "pipelining", "receive-hang",
             "in RequestResponseCycle.receive"),
    # uvicorn#1637 (fixed by PR #2243 in 0.27.1, which harness bisect names): the
    # keep-alive timer is armed after a response even when a pipelined request is already
    # being served, fires under it, fails in h11 and closes the connection.
    KnownBug("uvicorn#1637: keep-alive timeout fires under a pipelined request",
             "uvicorn", "<0.27.1", ("h11",), "pipelining", "premature-close",
             "closed during a live request"),
    KnownBug("uvicorn#1637: ... and the keep-alive handler raises LocalProtocolError",
             "uvicorn", "<0.27.1", ("h11",), "pipelining", "server-error",
             "LocalProtocolError"),
    KnownBug("new: httptools connection_lost wakes only the newest pipelined cycle, so an "
             "earlier cycle's pending receive() never gets http.disconnect",
             "uvicorn", ">=0.12.3", ("httptools",), "pipelining", "lost-disconnect",
             "httptools_impl.py"),
)


def known_for(server: str, version: str, http: str, family: str) -> list[KnownBug]:
    return [b for b in KNOWN_BUGS if b.applies(server, version, http, family)]
