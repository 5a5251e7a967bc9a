"""Metrics: the daily tables of traffic, latency, errors, tokens, cost, sessions, users and trends."""
