"""Large bodies and streamed responses to a client that reads slowly or stops."""


def test_flow_has_no_failures_beyond_known_upstream_bugs(search_family):
    search_family("flow")
