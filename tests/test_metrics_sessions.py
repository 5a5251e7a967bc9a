"""Sessions in depth: duration, turns, time between turns, single-turn and unanswered sessions."""

from __future__ import annotations

import numpy as np
import pytest

from chatpulse.behaviour.sessions import build_sessions
from chatpulse.metrics.session_stats import SESSION_METRIC_COLUMNS, session_metrics

from fixtures import METRIC_DAY as DAY
from fixtures import clean_messages as messages
from fixtures import clean_requests as requests


def t(clock: str) -> str:
    return f"2026-11-20T{clock}Z"


REQUESTS = requests(
    # c: request-only, three turns 10 s and 20 s apart; the last one failed.
    {"timestamp": t("09:00:00"), "session_id": "c", "user_id": "u3", "status_code": 200, "latency_ms": 1000.0},
    {"timestamp": t("09:00:10"), "session_id": "c", "user_id": "u3", "status_code": 200, "latency_ms": 1000.0},
    {"timestamp": t("09:00:30"), "session_id": "c", "user_id": "u3", "status_code": 500, "latency_ms": 1000.0},
    # d: request-only, one successful turn.
    {"timestamp": t("11:00:00"), "session_id": "d", "user_id": "u4", "status_code": 200, "latency_ms": 500.0},
    # No session_id: gap-derived sessions of u5, split by a 2-hour pause; the second ends in a 429.
    {"timestamp": t("12:00:00"), "user_id": "u5", "status_code": 200, "latency_ms": 100.0},
    {"timestamp": t("14:00:00"), "user_id": "u5", "status_code": 200, "latency_ms": 100.0},
    {"timestamp": t("14:01:00"), "user_id": "u5", "status_code": 429, "latency_ms": 100.0},
    # Requests of message sessions are not turns there (their user messages are).
    {"timestamp": t("10:00:01"), "session_id": "a", "user_id": "u1", "status_code": 500, "latency_ms": 100.0},
)
MESSAGES = messages(
    # a: user, answer, user again 90 s after the first: the last question got no answer.
    {"timestamp": t("10:00:00"), "session_id": "a", "user_id": "u1", "role": "user"},
    {"timestamp": t("10:00:05"), "session_id": "a", "user_id": "u1", "role": "assistant"},
    {"timestamp": t("10:01:30"), "session_id": "a", "user_id": "u1", "role": "user"},
    # b: one question, answered at the same instant it was asked (counts as answered).
    {"timestamp": t("10:30:00"), "session_id": "b", "user_id": "u2", "role": "system"},
    {"timestamp": t("10:30:00"), "session_id": "b", "user_id": "u2", "role": "user"},
    {"timestamp": t("10:30:00"), "session_id": "b", "user_id": "u2", "role": "assistant"},
    # e: only an assistant message: the user wrote nothing, so not unanswered; zero turns.
    {"timestamp": t("13:00:00"), "session_id": "e", "user_id": "u6", "role": "assistant"},
    # Yesterday's session does not count today.
    {"timestamp": "2026-11-19T23:00:00Z", "session_id": "y", "user_id": "u7", "role": "user"},
)


def test_session_metrics_by_hand() -> None:
    sessions = build_sessions(REQUESTS, MESSAGES)
    table = session_metrics(sessions, REQUESTS, MESSAGES, DAY, "UTC")
    assert list(table.columns) == list(SESSION_METRIC_COLUMNS)
    row = table.iloc[0].to_dict()
    # Sessions today: a, b, c, d, e and u5's two gap sessions.
    turns = {"a": 2, "b": 1, "c": 3, "d": 1, "e": 0, "u5@12": 1, "u5@14": 2}
    durations = [90.0, 0.0, 31.0, 0.5, 0.0, 0.1, 60.1]  # a ends at its 10:01:30 message
    gaps = [90.0, 10.0, 20.0, 60.0]  # a; c; u5's second session
    assert row["sessions"] == 7
    assert row["turns_mean"] == pytest.approx(np.mean(list(turns.values())))
    assert row["turns_p50"] == np.percentile(list(turns.values()), 50)
    assert row["turns_p90"] == pytest.approx(np.percentile(list(turns.values()), 90))
    assert row["turns_max"] == 3
    assert row["duration_p50_s"] == pytest.approx(np.percentile(durations, 50))
    assert row["duration_p90_s"] == pytest.approx(np.percentile(durations, 90))
    assert row["duration_max_s"] == pytest.approx(90.0)
    assert row["duration_mean_s"] == pytest.approx(np.mean(durations))
    assert row["turn_gaps"] == 4
    assert row["turn_gap_mean_s"] == pytest.approx(np.mean(gaps))
    assert row["turn_gap_p50_s"] == pytest.approx(np.percentile(gaps, 50))
    assert row["turn_gap_p90_s"] == pytest.approx(np.percentile(gaps, 90))
    assert (row["single_turn_sessions"], row["single_turn_share"]) == (3, 3 / 7)  # b, d, u5@12
    assert (row["unanswered_sessions"], row["unanswered_share"]) == (3, 3 / 7)  # a, c, u5@14
    assert row["messages_mean"] == pytest.approx(7 / 7)
    assert row["requests_mean"] == pytest.approx(8 / 7)


def test_a_day_without_sessions() -> None:
    empty_requests, empty_messages = requests(), messages()
    row = session_metrics(
        build_sessions(empty_requests, empty_messages), empty_requests, empty_messages, DAY, "UTC"
    ).iloc[0]
    assert (row["sessions"], row["turn_gaps"], row["unanswered_sessions"], row["turns_max"]) == (0, 0, 0, 0)
    assert np.isnan(row["single_turn_share"]) and np.isnan(row["turn_gap_p50_s"])
