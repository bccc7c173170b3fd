"""Sequential requests on one keep-alive connection, with pauses around the keep-alive timeout."""


def test_keepalive_has_no_failures_beyond_known_upstream_bugs(search_family):
    search_family("keepalive")
