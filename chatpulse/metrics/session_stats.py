"""Sessions in depth for one local day: durations, turns, gaps between turns, unanswered sessions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from chatpulse.behaviour.scenarios import session_rows
from chatpulse.days import DayGrid
from chatpulse.schema import is_error
from chatpulse.stats import mean, percentiles
from chatpulse.tables import table_columns

SESSION_METRIC_COLUMNS = table_columns("session_metrics")


def session_metrics(
    sessions: pd.DataFrame,
    requests: pd.DataFrame,
    messages: pd.DataFrame,
    day: dt.date,
    tz: str,
    gap_minutes: float = 30,
) -> pd.DataFrame:
    """One row on the sessions starting on day (columns SESSION_METRIC_COLUMNS).

    sessions is build_sessions(requests, messages, gap_minutes) of the same rows. A turn is
    a user message, or a request in a session without messages (as build_sessions counts
    turns); a turn gap is the time from one turn's start to the next one's in the same
    session. A session is unanswered when its last turn got no answer: no assistant message
    at or after its last user message, or, without messages, its last request failed.
    """
    grid = DayGrid.of(day, tz)
    day_sessions = grid.select(sessions, "start").reset_index(drop=True)
    # Row in day_sessions of each event's session (-1: none, or a session starting on another day).
    request_pos, message_pos = session_rows(day_sessions, requests, messages, gap_minutes)
    without_messages = day_sessions["messages"].to_numpy() == 0
    is_user = (message_pos >= 0) & (messages["role"] == "user").to_numpy(dtype=bool, na_value=False)
    is_answer = (message_pos >= 0) & (messages["role"] == "assistant").to_numpy(dtype=bool, na_value=False)
    turn_request = request_pos >= 0
    turn_request[turn_request] = without_messages[request_pos[turn_request]]

    def instants(frame: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
        return frame["timestamp"].to_numpy(dtype="datetime64[ns]")[mask].view("int64")

    # Turn gaps: turns in session then time order, differences within a session.
    turn_pos = np.concatenate([message_pos[is_user], request_pos[turn_request]])
    turn_at = np.concatenate([instants(messages, is_user), instants(requests, turn_request)])
    order = np.lexsort((turn_at, turn_pos))
    turn_pos, turn_at = turn_pos[order], turn_at[order]
    same = turn_pos[1:] == turn_pos[:-1]
    gaps = np.diff(turn_at)[same] / 1e9

    n = len(day_sessions)
    never = np.iinfo("int64").min
    last_user = np.full(n, never)
    np.maximum.at(last_user, message_pos[is_user], instants(messages, is_user))
    last_answer = np.full(n, never)
    np.maximum.at(last_answer, message_pos[is_answer], instants(messages, is_answer))
    # The last request of each message-less session, in session then time order.
    request_at = instants(requests, turn_request)
    by_session = np.lexsort((request_at, request_pos[turn_request]))
    ordered_pos = request_pos[turn_request][by_session]
    ordered_failed = is_error(requests).to_numpy(dtype=bool)[turn_request][by_session]
    last = np.r_[ordered_pos[1:] != ordered_pos[:-1], True][: len(ordered_pos)]
    last_failed = np.zeros(n, dtype=bool)
    last_failed[ordered_pos[last]] = ordered_failed[last]
    unanswered = np.where(without_messages, last_failed, (last_user > never) & (last_answer < last_user))

    turns = day_sessions["turns"].to_numpy(dtype="float64")
    durations = day_sessions["duration_s"].to_numpy(dtype="float64")
    duration_p50, duration_p90 = percentiles(durations, [50, 90])
    turns_p50, turns_p90 = percentiles(turns, [50, 90])
    gap_p50, gap_p90 = percentiles(gaps, [50, 90])
    single = int((turns == 1).sum())
    record = {
        "day": day.isoformat(),
        "sessions": n,
        "duration_mean_s": mean(durations),
        "duration_p50_s": duration_p50,
        "duration_p90_s": duration_p90,
        "duration_max_s": float(durations.max()) if n else np.nan,
        "turns_mean": mean(turns),
        "turns_p50": turns_p50,
        "turns_p90": turns_p90,
        "turns_max": int(turns.max()) if n else 0,
        "messages_mean": mean(day_sessions["messages"].to_numpy(dtype="float64")),
        "requests_mean": mean(day_sessions["requests"].to_numpy(dtype="float64")),
        "turn_gaps": len(gaps),
        "turn_gap_mean_s": mean(gaps),
        "turn_gap_p50_s": gap_p50,
        "turn_gap_p90_s": gap_p90,
        "single_turn_sessions": single,
        "single_turn_share": single / n if n else np.nan,
        "unanswered_sessions": int(unanswered.sum()),
        "unanswered_share": float(unanswered.sum()) / n if n else np.nan,
    }
    return pd.DataFrame([record], columns=list(SESSION_METRIC_COLUMNS))
