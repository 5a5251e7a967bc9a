"""Feedback: score normalisation, attribution to sessions and answers, daily tables, spotlight."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.behaviour import feedback
from chatpulse.behaviour.scenarios import SCENARIO, SESSION_ROW, session_rows
from chatpulse.behaviour.sessions import build_sessions
from chatpulse.config import SourceConfig
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.sample.generate import write_sample
from chatpulse.schema import FEEDBACK_COLUMNS, MESSAGE_COLUMNS, REQUEST_COLUMNS, Kind, is_error

from fixtures import event_frame

DAY = dt.date(2026, 11, 20)


def test_scores_normalise_thumbs_and_stars():
    ratings = event_frame(
        FEEDBACK_COLUMNS,
        [
            {"user_id": "thumbs", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},
            {"user_id": "thumbs", "rating": -1, "timestamp": "2026-11-20T10:00:00Z"},
            {"user_id": "stars", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},
            {"user_id": "stars", "rating": 4, "timestamp": "2026-11-20T10:00:00Z"},
            {"user_id": "stars", "rating": 5, "timestamp": "2026-11-20T10:00:00Z"},
            {"user_id": "lonely", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},  # ambiguous: thumbs up
            {"session_id": "s", "rating": 3, "timestamp": "2026-11-20T10:00:00Z"},  # no user: rater is the session
        ],
    )
    score, scale = feedback.scores(ratings)
    assert score.tolist() == [1.0, 0.0, 0.0, 0.75, 1.0, 1.0, 0.5]
    assert scale.tolist() == ["thumbs", "thumbs", "stars", "stars", "stars", "thumbs", "stars"]


def test_anonymous_ratings_are_not_one_rater():
    ratings = event_frame(
        FEEDBACK_COLUMNS,
        [
            # No user or session: each rated message is its own rater, so one's stars do not make
            # another's 1 a star.
            {"feedback_id": "f1", "message_id": "m1", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},
            {"feedback_id": "f2", "message_id": "m2", "rating": 4, "timestamp": "2026-11-20T10:00:00Z"},
            # Nor a message: the rating alone.
            {"feedback_id": "f3", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},
            {"feedback_id": "f4", "rating": 5, "timestamp": "2026-11-20T10:00:00Z"},
            # Two ratings of one message share a rater: its 3 stars make its 1 a star.
            {"feedback_id": "f5", "message_id": "m3", "rating": 1, "timestamp": "2026-11-20T10:00:00Z"},
            {"feedback_id": "f6", "message_id": "m3", "rating": 3, "timestamp": "2026-11-20T10:00:00Z"},
        ],
    )
    score, scale = feedback.scores(ratings)
    assert score.tolist() == [1.0, 0.75, 1.0, 1.0, 0.0, 0.5]
    assert scale.tolist() == ["thumbs", "stars", "thumbs", "stars", "stars", "stars"]


def _day() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two sessions: s1 (two answers, 1 s and 8 s, the slow one failed) and s2 (one 40 s answer)."""
    requests = event_frame(
        REQUEST_COLUMNS,
        [
            {
                "timestamp": "2026-11-20T10:00:00Z",
                "session_id": "s1",
                "user_id": "u1",
                "model": "a",
                "latency_ms": 1000.0,
                "status_code": 200,
            },
            {
                "timestamp": "2026-11-20T10:01:00Z",
                "session_id": "s1",
                "user_id": "u1",
                "model": "a",
                "latency_ms": 8000.0,
                "status_code": 500,
            },
            {
                "timestamp": "2026-11-20T11:00:00Z",
                "session_id": "s2",
                "user_id": "u2",
                "model": "b",
                "latency_ms": 40000.0,
                "status_code": 200,
            },
        ],
    )
    requests["error_type"] = pd.Series([None] * 3, dtype="str")
    messages = event_frame(
        MESSAGE_COLUMNS,
        [
            {
                "message_id": "m1",
                "timestamp": "2026-11-20T10:00:01Z",
                "session_id": "s1",
                "role": "assistant",
                "content": "a",
            },
            {
                "message_id": "m2",
                "timestamp": "2026-11-20T10:01:08Z",
                "session_id": "s1",
                "role": "assistant",
                "content": "b",
            },
            {
                "message_id": "m3",
                "timestamp": "2026-11-20T11:00:40Z",
                "session_id": "s2",
                "role": "assistant",
                "content": "c",
            },
        ],
    )
    sessions = build_sessions(requests, messages)
    requests[SESSION_ROW], messages[SESSION_ROW] = session_rows(sessions, requests, messages)
    sessions[SCENARIO] = ["coding", "writing"]
    sessions["model"] = ["a", "b"]
    sessions["errors"] = [1, 0]
    sessions["latency_mean_ms"] = [4500.0, 40000.0]
    sessions["latency_max_ms"] = [8000.0, 40000.0]
    ratings = event_frame(
        FEEDBACK_COLUMNS,
        [
            # on m1 (by message id, no session id): the 1 s answer
            {"message_id": "m1", "user_id": "u1", "rating": 1, "timestamp": "2026-11-20T10:05:00Z"},
            # on m2: the 8 s answer
            {
                "session_id": "s1",
                "message_id": "m2",
                "user_id": "u1",
                "rating": -1,
                "timestamp": "2026-11-20T10:06:00Z",
            },
            # s2 without a message: the latest answer finished by 11:01 -> 40 s
            {"session_id": "s2", "user_id": "u2", "rating": 2, "timestamp": "2026-11-20T11:01:00Z"},
            {"session_id": "s2", "user_id": "u2", "rating": 5, "timestamp": "2026-11-20T11:02:00Z"},
            # a session not on this day
            {"session_id": "elsewhere", "user_id": "u3", "rating": 1, "timestamp": "2026-11-20T12:00:00Z"},
        ],
    )
    rated = feedback.rate(sessions, ratings, messages, requests)
    return pd.concat([sessions, feedback.session_ratings(sessions, rated)], axis=1), rated


def test_rate_attributes_ratings_to_sessions_and_answers():
    sessions, rated = _day()
    assert rated[SESSION_ROW].tolist() == [0, 0, 1, 1, -1]
    assert rated["score"].tolist() == [1.0, 0.0, 0.25, 1.0, 1.0]
    assert rated["latency_ms"].tolist()[:4] == [1000.0, 8000.0, 40000.0, 40000.0]
    assert np.isnan(rated["latency_ms"].iloc[4])
    assert sessions["ratings"].tolist() == [2, 2]
    assert sessions["satisfaction"].tolist() == [0.5, 0.625]


def _sample_day(landing: Path, kind: Kind) -> pd.DataFrame:
    """One kind's clean rows of the sample day, as the pipeline reads them."""
    source = SourceConfig(name=kind.value, kind=kind, pattern=f"{kind.value}*")
    extracted = extract_day(landing, [source], kind, DAY, "UTC").frame
    return clean_partition(extracted, kind, DAY.isoformat()).clean


def test_every_rating_of_a_sample_day_gets_its_own_answer_latency(tmp_path: Path):
    # The generator stamps an answer at its request's start + latency floored to the ms, with the
    # latency rounded to 0.1 ms: the answer often lands a fraction of a ms before its request "ends".
    write_sample(tmp_path, [DAY], requests_per_day=5000)
    requests, messages, ratings = (_sample_day(tmp_path, kind) for kind in Kind)
    sessions = build_sessions(requests, messages)
    requests[SESSION_ROW], messages[SESSION_ROW] = session_rows(sessions, requests, messages)
    rated = feedback.rate(sessions, ratings, messages, requests)
    # Independently: the generator answers every successful chat request of a session with one
    # assistant message, in order, so the k-th answer of a session is its k-th successful request.
    answered = requests[(requests["endpoint"] == "chat") & ~is_error(requests)].sort_values("timestamp")
    answers = messages[messages["role"] == "assistant"].sort_values("timestamp")
    answered["k"] = answered.groupby(SESSION_ROW).cumcount()
    answers["k"] = answers.groupby(SESSION_ROW).cumcount()
    own = answers.merge(answered[[SESSION_ROW, "k", "latency_ms"]], on=[SESSION_ROW, "k"])
    expected = own.set_index("message_id")["latency_ms"].reindex(ratings["message_id"]).to_numpy()
    assert len(ratings) > 100 and not np.isnan(expected).any()  # every rating is on an answered turn
    assert (rated[SESSION_ROW] >= 0).all()
    assert rated["latency_ms"].to_numpy().tolist() == expected.tolist()


def test_daily_tables():
    sessions, rated = _day()
    daily = feedback.feedback_daily(sessions, rated, DAY).iloc[0]
    assert daily[["ratings", "thumbs", "stars", "sessions", "rated_sessions", "negative_sessions"]].tolist() == [
        5,
        3,
        2,
        2,
        2,
        2,
    ]
    assert daily["feedback_coverage"] == 1.0 and daily["satisfaction"] == pytest.approx((1 + 0 + 0.25 + 1 + 1) / 5)
    by_model = feedback.satisfaction_by(rated, sessions, "model")
    assert by_model.values.tolist() == [["a", 2, 1, 0.5], ["b", 2, 1, 0.625]]
    by_latency = feedback.satisfaction_by_latency(rated).set_index("bucket")
    assert by_latency["ratings"].tolist() == [0, 1, 0, 1, 0, 2, 1]  # a bucket includes its lower bound
    assert by_latency.loc["5-10s", "satisfaction"] == 0.0 and by_latency.loc[">=30s", "satisfaction"] == 0.625
    negative = feedback.negative_sessions(sessions, rated)
    assert negative[
        ["session_id", SCENARIO, "model", "ratings", "negative_ratings", "satisfaction", "errors"]
    ].values.tolist() == [
        ["s1", "coding", "a", 2, 1, 0.5, 1],
        ["s2", "writing", "b", 2, 1, 0.625, 0],
    ]
    assert "content" not in negative.columns and "comment" not in negative.columns


def _daily(day: str, scenario: str, p95: float, errors: int, requests: int, satisfaction: float, ratings: int) -> dict:
    return {
        "day": day,
        SCENARIO: scenario,
        "latency_p95_ms": p95,
        "errors": errors,
        "requests": requests,
        "error_rate": errors / requests,
        "satisfaction": satisfaction,
        "ratings": ratings,
    }


def test_spotlight_ranks_adverse_moves_against_the_previous_days():
    history = pd.DataFrame(
        [
            _daily("2026-11-18", "coding", 1000.0, 1, 100, 0.8, 10),
            _daily("2026-11-19", "coding", 3000.0, 3, 100, 0.6, 30),
            _daily("2026-11-19", "writing", 1000.0, 10, 100, 0.9, 10),
            _daily("2026-11-19", "tiny", 1000.0, 0, 5, 0.9, 1),
        ]
    )
    today = pd.DataFrame(
        [
            _daily(DAY.isoformat(), "coding", 3000.0, 10, 100, 0.5, 10),  # p95 +50 %, errors +8 pp, satisfaction -0.15
            _daily(
                DAY.isoformat(), "writing", 3000.0, 5, 100, 0.95, 10
            ),  # p95 +200 %, errors better, satisfaction better
            _daily(DAY.isoformat(), "tiny", 9000.0, 5, 5, 0.0, 1),  # too little volume
        ]
    )
    table = feedback.spotlight(today, history)
    assert table[["metric", "rank", SCENARIO]].values.tolist() == [
        ["latency_p95_ms", 1, "writing"],
        ["latency_p95_ms", 2, "coding"],
        ["error_rate", 1, "coding"],
        ["satisfaction", 1, "coding"],
    ]
    coding = table[table["metric"] != "latency_p95_ms"].set_index("metric")
    assert coding.loc["error_rate", "baseline"] == 0.02 and coding.loc["error_rate", "change"] == pytest.approx(0.08)
    assert coding.loc["satisfaction", "baseline"] == pytest.approx((0.8 * 10 + 0.6 * 30) / 40)
    assert table.iloc[0]["score"] == 2.0 and table.iloc[1]["baseline"] == 2000.0 and table.iloc[1]["baseline_days"] == 2
    assert feedback.spotlight(today, history.iloc[:0]).empty
