"""Two connections served at once."""


def test_concurrency_has_no_failures_beyond_known_upstream_bugs(search_family):
    search_family("concurrency")
