"""The client half-closes, closes or resets at every stage of a request."""


def test_disconnect_has_no_failures_beyond_known_upstream_bugs(search_family):
    search_family("disconnect")
