"""Several requests written in one go before any response."""


def test_pipelining_has_no_failures_beyond_known_upstream_bugs(search_family):
    search_family("pipelining")
