"""Sessions: one row per conversation, from explicit session ids or inactivity gaps.

Requests and messages are both events. An event with a session_id belongs to that
session. An event with no session_id but a user_id belongs to a gap-derived session:
that user's id-less events in time order, split wherever two consecutive events start
more than gap_minutes apart, keyed f"{user_id}@{start as UTC ISO}". Events with
neither id belong to no session.
"""

from __future__ import annotations

from typing import NamedTuple

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


def _factorized(parts: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize of the parts one after the other (codes, -1 for missing; distinct values as objects, in order
    of first appearance), without joining them: at 4M requests, joining the events' session ids as text took 0.23 GB."""
    codes, distinct = [], pd.Index([], dtype=object)
    for part in parts:
        part_codes, part_distinct = pd.factorize(part)
        # The values, not a categorical's CategoricalIndex (whose own order would not be the codes').
        values = pd.Index(np.asarray(part_distinct, dtype=object))
        at = distinct.get_indexer(values)
        new = at < 0
        at[new] = len(distinct) + np.arange(np.count_nonzero(new))
        distinct = distinct.append(values[new])
        codes.append(np.append(at, -1)[part_codes])  # code -1 (missing) takes the appended -1
    return np.concatenate(codes), distinct.to_numpy(dtype=object)


class _Keyed(NamedTuple):
    """Every event's keys (requests then messages), as codes: what sessions are cut by."""

    codes: np.ndarray  # session code per event, -1 when in none
    ids: np.ndarray  # session_id per code
    explicit_count: int  # leading codes that are session_ids (the rest are gap-derived)
    user_codes: np.ndarray  # code of the event's user_id, -1 when missing
    users: np.ndarray  # user_id per user code
    instants: np.ndarray  # the events' timestamps, naive UTC datetime64[ns]


def _event_sessions(requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float) -> _Keyed:
    """Session code of every request then message: its session_id's, else its user's inactivity-gap run's."""
    frames = (requests, messages)
    explicit_codes, explicit_ids = _factorized([frame["session_id"] for frame in frames])
    user_codes, users = _factorized([frame["user_id"] for frame in frames])
    instants = np.concatenate([frame["timestamp"].to_numpy(dtype="datetime64[ns]") for frame in frames])
    gap_rows = np.flatnonzero((explicit_codes < 0) & (user_codes >= 0))
    order = np.lexsort((instants[gap_rows], user_codes[gap_rows]))
    run_user, run_instants = user_codes[gap_rows[order]], instants[gap_rows[order]]
    gap = np.timedelta64(round(gap_minutes * 60e9), "ns")
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = (run_user[1:] != run_user[:-1]) | (np.diff(run_instants) > gap)
    codes = explicit_codes
    codes[gap_rows[order]] = len(explicit_ids) + np.cumsum(new_run) - 1
    run_users = np.asarray(users[run_user[new_run]], dtype=str)
    run_ids = np.char.add(np.char.add(run_users, "@"), _utc_iso(run_instants[new_run]))
    ids = np.concatenate([explicit_ids, run_ids.astype(object)])
    return _Keyed(codes, ids, len(explicit_ids), user_codes, users, instants)


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
    keyed = _event_sessions(requests, messages, gap_minutes)
    return keyed.codes, keyed.ids


def coded_sessions(
    requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float = 30
) -> tuple[pd.DataFrame, np.ndarray]:
    """build_sessions' rows and order, indexed by session code, and the code of every request then every
    message (-1 when in none): a session's events are found by integer, without a session_id per event.

    The per-session sums, minimums and maximums are bincounts and ufunc.at over the codes (no groupby of a
    frame of every event).
    """
    keyed = _event_sessions(requests, messages, gap_minutes)
    codes, ids, explicit_count, user_codes, users = keyed[:5]
    count = len(ids)  # every code has an event
    # Each array of one value per event is dropped once used: a million requests come with over two million
    # events, 18 MB an array of int64, so the ones held together set the step's peak.
    inside = codes >= 0
    starts = keyed.instants  # made the ends in place below
    del keyed
    # user_id: that of the session's earliest event naming one (by instant, missing ones last, then event order).
    named = np.flatnonzero(inside & (user_codes >= 0))
    order = named[np.argsort(starts[named], kind="stable")]  # NaT sorts last
    del named
    earliest = np.full(count, len(order))
    np.minimum.at(earliest, codes[order], np.arange(len(order)))
    user = np.append(user_codes[order], -1)[earliest]
    del user_codes, order, earliest
    # Missing instants (NaT) are skipped, as a groupby's min and max skip them.
    first = np.full(count, np.iinfo("int64").max)
    timed = inside & ~np.isnat(starts)
    np.minimum.at(first, codes[timed], starts[timed].view("int64"))
    latency = pd.to_timedelta(requests["latency_ms"].fillna(0), unit="ms").to_numpy(dtype="timedelta64[ns]")
    starts[: len(requests)] += latency  # the events' ends, in place: their starts are used no more
    ends = starts
    del starts, latency
    last = np.full(count, np.iinfo("int64").min)
    timed = inside & ~np.isnat(ends)
    np.maximum.at(last, codes[timed], ends[timed].view("int64"))
    del ends, timed
    start = np.where(first == np.iinfo("int64").max, np.datetime64("NaT"), first.view("datetime64[ns]"))
    end = np.where(last == np.iinfo("int64").min, np.datetime64("NaT"), last.view("datetime64[ns]"))
    request_codes, message_codes = codes[: len(requests)], codes[len(requests) :]
    requests_per = np.bincount(request_codes[request_codes >= 0], minlength=count)
    messages_per = np.bincount(message_codes[message_codes >= 0], minlength=count)
    is_turn = (messages["role"] == "user").to_numpy(bool) & (message_codes >= 0)
    turns = np.bincount(message_codes[is_turn], minlength=count)
    del inside, is_turn
    index = pd.RangeIndex(count)
    sessions = pd.DataFrame(
        {
            "session_id": pd.Series(ids, index=index, dtype="str"),
            # The uniques as values: a categorical's factorize gives a CategoricalIndex, whose own order from_codes
            # would take instead.
            "user_id": pd.Series(
                pd.Categorical.from_codes(user, categories=np.asarray(users, dtype=object)), index=index
            ).astype("str"),
            "start": pd.Series(start, index=index).dt.tz_localize("UTC"),
            "end": pd.Series(end, index=index).dt.tz_localize("UTC"),
            "duration_s": pd.Series(end - start, index=index).dt.total_seconds(),
            "turns": np.where(messages_per > 0, turns, requests_per).astype("int64"),
            "messages": messages_per.astype("int64"),
            "requests": requests_per.astype("int64"),
            "delimited_by": pd.Series(
                np.where(np.arange(count) < explicit_count, "session_id", "inactivity_gap"), index=index, dtype="str"
            ),
        }
    )
    # Two stable sorts: by start, ties by session_id.
    return sessions.sort_values("session_id", kind="stable").sort_values("start", kind="stable"), codes


def build_sessions(requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float = 30) -> pd.DataFrame:
    """One row per session, ordered by start then session_id (columns SESSION_COLUMNS).

    A request ends at timestamp + latency_ms (at its timestamp when latency is
    missing), a message at its timestamp. turns counts user messages when the session
    has messages, else requests, so request-only sources still report a turn count.
    user_id is the earliest non-null user_id seen in the session.
    """
    return coded_sessions(requests, messages, gap_minutes)[0].reset_index(drop=True)
