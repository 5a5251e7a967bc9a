"""Sessions: explicit ids, inactivity-gap splitting, and each event's session (scenarios.session_rows)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from chatpulse.behaviour.scenarios import session_rows
from chatpulse.behaviour.sessions import SESSION_COLUMNS, build_sessions

from fixtures import clean_messages as messages
from fixtures import clean_requests as requests


def session_ids_of(reqs: pd.DataFrame, msgs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The session_id of each request's and message's session (None when in none), in frame order,
    read through session_rows as the pipeline assigns events to sessions."""
    sessions = build_sessions(reqs, msgs)
    ids = np.append(sessions["session_id"].to_numpy(dtype=object), None)  # row -1 picks None
    request_rows, message_rows = session_rows(sessions, reqs, msgs)
    return pd.Series(ids[request_rows], dtype=object), pd.Series(ids[message_rows], dtype=object)


def test_explicit_session_spans_requests_and_messages():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "latency_ms": 1500.0},
        {"timestamp": "2026-11-20T10:05:00Z", "session_id": "s1", "user_id": "u1", "latency_ms": 2500.0},
        {"timestamp": "2026-11-20T10:06:00Z", "session_id": "s1", "user_id": "u2", "latency_ms": None},
    )
    msgs = messages(
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "role": "system"},
        {"timestamp": "2026-11-20T10:00:01Z", "session_id": "s1", "role": "user"},
        {"timestamp": "2026-11-20T10:00:02Z", "session_id": "s1", "role": "assistant"},
        {"timestamp": "2026-11-20T10:04:59Z", "session_id": "s1", "role": "user"},
    )
    sessions = build_sessions(reqs, msgs)
    assert list(sessions.columns) == list(SESSION_COLUMNS)
    row = sessions.iloc[0].to_dict()
    assert len(sessions) == 1
    assert row["session_id"] == "s1"
    assert row["user_id"] == "u1"  # earliest non-null user_id
    assert row["start"] == pd.Timestamp("2026-11-20T10:00:00Z")
    assert row["end"] == pd.Timestamp("2026-11-20T10:06:00Z")  # 10:05:02.5 ends before the 10:06 request
    assert row["duration_s"] == 360.0
    assert (row["turns"], row["messages"], row["requests"]) == (2, 4, 3)
    assert row["delimited_by"] == "session_id"


def test_request_end_includes_latency():
    reqs = requests({"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "latency_ms": 2500.0})
    sessions = build_sessions(reqs, messages())
    assert sessions["end"].iloc[0] == pd.Timestamp("2026-11-20T10:00:02.5Z")
    assert sessions["duration_s"].iloc[0] == 2.5
    assert sessions["turns"].iloc[0] == 1  # no messages: turns counts requests


def test_undated_events_count_but_neither_start_nor_end_a_session():
    # Each per-event array is dropped as soon as used and a request's end is made from its start in place:
    # an undated request must still add no end, a latency only its own request's end, a message none.
    reqs = requests(
        {"timestamp": None, "session_id": "s1", "user_id": "u0", "latency_ms": 9_000_000.0},
        {"timestamp": "2026-11-20T10:00:10Z", "session_id": "s1", "latency_ms": 4000.0},
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s2", "user_id": "u2", "latency_ms": None},
    )
    msgs = messages(
        {"timestamp": "2026-11-20T10:00:05Z", "session_id": "s1", "user_id": "u1", "role": "user"},
        {"timestamp": "2026-11-20T10:00:20Z", "session_id": "s1", "role": "assistant"},
        {"timestamp": None, "session_id": "s2", "role": "user"},
    )
    sessions = build_sessions(reqs, msgs).set_index("session_id")
    s1, s2 = sessions.loc["s1"], sessions.loc["s2"]
    # s1: from the 10:00:05 message to the later of 10:00:14 (request + 4 s) and the 10:00:20 message.
    assert (s1["start"], s1["end"]) == (pd.Timestamp("2026-11-20T10:00:05Z"), pd.Timestamp("2026-11-20T10:00:20Z"))
    assert s1["user_id"] == "u1"  # the earliest dated event naming a user; the undated u0 sorts last
    assert (s1["turns"], s1["messages"], s1["requests"]) == (1, 2, 2)
    assert (s2["start"], s2["end"], s2["user_id"]) == (pd.Timestamp("2026-11-20T10:00:00Z"),) * 2 + ("u2",)
    assert (s2["turns"], s2["messages"], s2["requests"]) == (1, 1, 1)


def test_gap_split_at_more_than_gap_minutes():
    times = ["10:00:00", "10:20:00", "10:50:00", "11:20:01", "11:49:00"]
    reqs = requests(*({"timestamp": f"2026-11-20T{t}Z", "user_id": "u1"} for t in times))
    sessions = build_sessions(reqs, messages())
    # 10:20 -> 10:50 is exactly 30 min (kept); 10:50 -> 11:20:01 exceeds it (split).
    assert sessions["session_id"].tolist() == ["u1@2026-11-20T10:00:00+00:00", "u1@2026-11-20T11:20:01+00:00"]
    assert sessions["requests"].tolist() == [3, 2]
    assert sessions["turns"].tolist() == [3, 2]
    assert sessions["duration_s"].tolist() == [3000.0, 1739.0]
    assert set(sessions["delimited_by"]) == {"inactivity_gap"}
    request_keys, _ = session_ids_of(reqs, messages())
    assert request_keys.tolist() == [sessions["session_id"][0]] * 3 + [sessions["session_id"][1]] * 2


def test_gap_minutes_parameter():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "user_id": "u1"},
        {"timestamp": "2026-11-20T10:11:00Z", "user_id": "u1"},
    )
    assert len(build_sessions(reqs, messages(), gap_minutes=30)) == 1
    assert len(build_sessions(reqs, messages(), gap_minutes=10)) == 2


def test_message_bridges_gap_between_requests():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "user_id": "u1"},
        {"timestamp": "2026-11-20T10:50:00Z", "user_id": "u1"},
    )
    msgs = messages({"timestamp": "2026-11-20T10:25:00Z", "user_id": "u1", "role": "user"})
    sessions = build_sessions(reqs, msgs)
    assert sessions[["session_id", "turns", "messages", "requests"]].values.tolist() == [
        ["u1@2026-11-20T10:00:00+00:00", 1, 1, 2]
    ]
    request_keys, message_keys = session_ids_of(reqs, msgs)
    assert set(request_keys) == set(message_keys) == {"u1@2026-11-20T10:00:00+00:00"}


def test_users_split_separately_and_ids_keep_fractional_seconds():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00.250Z", "user_id": "u1"},
        {"timestamp": "2026-11-20T10:01:00Z", "user_id": "u2"},
        {"timestamp": "2026-11-20T10:02:00Z", "user_id": "u1"},
        {"timestamp": "2026-11-20T10:03:00Z", "user_id": "u1", "session_id": "s9"},
    )
    sessions = build_sessions(reqs, messages())
    assert sessions["session_id"].tolist() == [
        "u1@2026-11-20T10:00:00.250000+00:00",
        "u2@2026-11-20T10:01:00+00:00",
        "s9",
    ]
    assert sessions["requests"].tolist() == [2, 1, 1]
    assert sessions["delimited_by"].tolist() == ["inactivity_gap", "inactivity_gap", "session_id"]


def test_events_without_ids_are_in_no_session():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z"},
        {"timestamp": "2026-11-20T10:01:00Z", "user_id": "u1"},
    )
    msgs = messages({"timestamp": "2026-11-20T10:00:30Z", "role": "user"})
    sessions = build_sessions(reqs, msgs)
    assert sessions[["session_id", "requests", "messages"]].values.tolist() == [["u1@2026-11-20T10:01:00+00:00", 1, 0]]
    request_keys, message_keys = session_ids_of(reqs, msgs)
    assert request_keys.isna().tolist() == [True, False]
    assert message_keys.isna().tolist() == [True]


def test_ties_on_start_order_by_session_id():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "b"},
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "a"},
        {"timestamp": "2026-11-20T09:00:00Z", "session_id": "c"},
    )
    assert build_sessions(reqs, messages())["session_id"].tolist() == ["c", "a", "b"]


def test_rows_follow_frame_order_with_a_non_default_index():
    reqs = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1"},
        {"timestamp": "2026-11-20T10:00:00Z", "user_id": "u1"},
    ).set_axis([7, 3])
    request_keys, _ = session_ids_of(reqs, messages())
    assert request_keys.tolist() == ["s1", "u1@2026-11-20T10:00:00+00:00"]


def test_empty_inputs():
    sessions = build_sessions(requests(), messages())
    assert sessions.empty
    assert list(sessions.columns) == list(SESSION_COLUMNS)
    assert str(sessions["start"].dtype) == "datetime64[ns, UTC]"
    request_keys, message_keys = session_ids_of(requests(), messages())
    assert request_keys.empty and message_keys.empty


def _reference_sessions(events: list[tuple], gap_s: float) -> dict[str, list[int]]:
    """Plain-Python sessions: key -> sorted event numbers; events are (number, seconds, user, session)."""
    out: dict[str, list[int]] = {}
    last: dict[str, tuple[float, str]] = {}
    for number, seconds, user, session in sorted(events, key=lambda e: (e[1], e[0])):
        if session is not None:
            key = session
        elif user is not None:
            previous = last.get(user)
            if previous is None or seconds - previous[0] > gap_s:
                start = pd.Timestamp("2026-11-20T00:00:00Z") + pd.Timedelta(seconds=seconds)
                key = f"{user}@{start.isoformat()}"
            else:
                key = previous[1]
            last[user] = (seconds, key)
        else:
            continue
        out.setdefault(key, []).append(number)
    return {key: sorted(numbers) for key, numbers in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_matches_plain_python_reference(seed):
    rng = random.Random(seed)
    events = [
        (
            number,
            rng.randrange(0, 6 * 3600),
            rng.choice(["u1", "u2", "u3", None]),
            rng.choice([None, None, None, "s1", "s2"]),
        )
        for number in range(200)
    ]
    rows = [
        {
            "timestamp": pd.Timestamp("2026-11-20T00:00:00Z") + pd.Timedelta(seconds=seconds),
            "user_id": user,
            "session_id": session,
            "role": "user",
        }
        for _, seconds, user, session in events
    ]
    reqs, msgs = requests(*rows[:120]), messages(*rows[120:])
    expected = _reference_sessions(events, gap_s=30 * 60)

    request_keys, message_keys = session_ids_of(reqs, msgs)
    keys = pd.concat([request_keys, message_keys], ignore_index=True)
    actual = {key: sorted(group.index.tolist()) for key, group in keys.dropna().groupby(keys.dropna())}
    assert actual == expected

    sessions = build_sessions(reqs, msgs).set_index("session_id")
    assert sorted(sessions.index) == sorted(expected)
    for key, numbers in expected.items():
        assert sessions.loc[key, "requests"] == sum(n < 120 for n in numbers)
        assert sessions.loc[key, "messages"] == sum(n >= 120 for n in numbers)
        seconds = [events[n][1] for n in numbers]
        assert sessions.loc[key, "duration_s"] == float(max(seconds) - min(seconds))
    assert np.array_equal(sessions["start"].sort_values().to_numpy(), sessions["start"].to_numpy())
