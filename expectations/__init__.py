"""Great Expectations suites, one JSON file per record kind (requests, messages, feedback)."""
