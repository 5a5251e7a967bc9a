"""Sessions: one row per conversation, from explicit session ids or inactivity gaps.

Requests and messages are both events. An event with a session_id belongs to that
session. An event with no session_id but a user_id belongs to a gap-derived session:
that user's id-less events in time order, split wherever two consecutive events start
more than gap_minutes apart, keyed f"{user_id}@{start as UTC ISO}". Events with
neither id belong to no session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SESSION_COLUMNS = (
    "session_id",
    "user_id",
    "start",
    "end",
    "duration_s",
    "turns",
    "messages",
    "requests",
    "delimited_by",
)


def _utc_iso(instants: np.ndarray) -> np.ndarray:
    """ISO strings of naive UTC datetime64[ns] values, with microseconds only when set.

    Matches Timestamp.isoformat(), so a gap-derived id reads like the session start.
    """
    whole_seconds = instants.astype("datetime64[us]").astype("int64") % 1_000_000 == 0
    text = np.where(
        whole_seconds, np.datetime_as_string(instants, unit="s"), np.datetime_as_string(instants, unit="us")
    )
    return np.char.add(text, "+00:00")


def _event_sessions(events: pd.DataFrame, gap_minutes: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Session code of every event (-1 when in no session), the id of each code, and
    how many leading codes are explicit session_ids (the rest are gap-derived)."""
    explicit_codes, explicit_ids = pd.factorize(events["session_id"])
    codes = explicit_codes.copy()
    gap_rows = np.flatnonzero((explicit_codes < 0) & events["user_id"].notna().to_numpy())
    user_codes, users = pd.factorize(events["user_id"].iloc[gap_rows])
    instants = events["timestamp"].to_numpy(dtype="datetime64[ns]")[gap_rows]
    order = np.lexsort((instants, user_codes))
    user_codes, instants = user_codes[order], instants[order]
    gap = np.timedelta64(round(gap_minutes * 60e9), "ns")
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = (user_codes[1:] != user_codes[:-1]) | (np.diff(instants) > gap)
    codes[gap_rows[order]] = len(explicit_ids) + np.cumsum(new_run) - 1
    run_users = np.asarray(users, dtype=str)[user_codes[new_run]]
    run_ids = np.char.add(np.char.add(run_users, "@"), _utc_iso(instants[new_run]))
    ids = np.concatenate([np.asarray(explicit_ids, dtype=object), run_ids.astype(object)])
    return codes, ids, len(explicit_ids)


EVENT_KEYS = ("timestamp", "user_id", "session_id")  # all that keys an event to its session


def event_keys(requests: pd.DataFrame, messages: pd.DataFrame) -> pd.DataFrame:
    """The EVENT_KEYS columns of requests then messages, one row per event."""
    columns = list(EVENT_KEYS)
    return pd.concat([requests[columns], messages[columns]], ignore_index=True)


def event_sessions(
    requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Session code of every request then every message (-1 when in none) and the
    session_id of each code, without building a string per event.

    Requests and messages are keyed together because a message can bridge the gap
    between two requests; keying either alone could split a session build_sessions
    keeps whole.
    """
    codes, ids, _ = _event_sessions(event_keys(requests, messages), gap_minutes)
    return codes, ids


def build_sessions(requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float = 30) -> pd.DataFrame:
    """One row per session, ordered by start then session_id (columns SESSION_COLUMNS).

    A request ends at timestamp + latency_ms (at its timestamp when latency is
    missing), a message at its timestamp. turns counts user messages when the session
    has messages, else requests, so request-only sources still report a turn count.
    user_id is the earliest non-null user_id seen in the session.
    """
    events = event_keys(requests, messages)
    codes, ids, explicit_count = _event_sessions(events, gap_minutes)
    user_codes, users = pd.factorize(events["user_id"])
    starts = events["timestamp"].to_numpy(dtype="datetime64[ns]")
    latency = pd.to_timedelta(requests["latency_ms"].fillna(0), unit="ms").to_numpy(dtype="timedelta64[ns]")
    is_request = np.arange(len(events)) < len(requests)
    frame = pd.DataFrame(
        {
            "code": codes,
            "start": starts,
            "end": starts + np.concatenate([latency, np.zeros(len(messages), dtype="timedelta64[ns]")]),
            "user_id": pd.Categorical.from_codes(user_codes, categories=users),
            "requests": is_request.astype("int64"),
            "messages": (~is_request).astype("int64"),
            "turns": np.concatenate([np.zeros(len(requests), bool), (messages["role"] == "user").to_numpy(bool)]),
        }
    )
    frame = frame[frame["code"] >= 0].sort_values("start", kind="stable")
    grouped = frame.groupby("code").agg(
        user_id=("user_id", "first"),
        start=("start", "min"),
        end=("end", "max"),
        turns=("turns", "sum"),
        messages=("messages", "sum"),
        requests=("requests", "sum"),
    )
    session_codes = grouped.index.to_numpy()
    sessions = pd.DataFrame(
        {
            "session_id": pd.Series(ids[session_codes], index=grouped.index, dtype="str"),
            "user_id": grouped["user_id"].astype("str"),
            "start": grouped["start"].dt.tz_localize("UTC"),
            "end": grouped["end"].dt.tz_localize("UTC"),
            "duration_s": (grouped["end"] - grouped["start"]).dt.total_seconds(),
            "turns": grouped["turns"].where(grouped["messages"] > 0, grouped["requests"]).astype("int64"),
            "messages": grouped["messages"].astype("int64"),
            "requests": grouped["requests"].astype("int64"),
            "delimited_by": pd.Series(
                np.where(session_codes < explicit_count, "session_id", "inactivity_gap"),
                index=grouped.index,
                dtype="str",
            ),
        }
    )
    # Two stable sorts: by start, ties by session_id.
    sessions = sessions.sort_values("session_id", kind="stable").sort_values("start", kind="stable")
    return sessions.reset_index(drop=True)
