"""Sessions across midnight: a session counts once, whole, on the local day of its first event.

A day's sessions are built from its own events and those of the neighbouring days that can share a
session with them (`neighbour_rows`; `neighbour_condition` is the same rule in SQL, for a neighbour
already in the warehouse); then only the sessions starting on the day are kept (`day_sessions`).

Of the day before, the rows that can make one of the day's sessions start earlier:

- rows whose session_id is also on the day;
- rows without a session_id, with a user_id, at most gap_minutes before the day starts, of users
  with such a row on the day less than gap_minutes after it starts (an inactivity-gap chain over
  midnight: two events chain when at most gap_minutes apart).

Of the day after, the rows that can continue one of the day's sessions:

- rows whose session_id is also on the day;
- every row without a session_id of users with such a row on the day at most gap_minutes before
  it ends (their session may go on all day).

Days further away are not read, so a day's sessions depend on three days' rows whichever order the
days are run in: a session is followed to the end of the day after the one it starts on, and a
session_id seen on two days with a day without it in between counts once on each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatpulse.behaviour.sessions import coded_sessions
from chatpulse.days import DayGrid, day_bounds
from chatpulse.schema import stacked
from chatpulse.tables import TABLES

# The tables of events that make sessions: a session_id or a user seen in either links rows of both.
EVENT_TABLES = ("requests", "messages")


def neighbour_rows(
    events: pd.DataFrame, rows: pd.DataFrame, day: date, neighbour: date, tz: str, gap_minutes: float
) -> np.ndarray:
    """Which of `rows` (events of `neighbour`, the day before or after `day`) can share a session with
    `events` (the day's requests and messages): a bool array in row order (module docstring).

    Both frames need the columns timestamp (UTC), user_id and session_id (sessions.EVENT_KEYS).
    """
    start, end = day_bounds(day, tz)
    gap = pd.Timedelta(minutes=gap_minutes)
    before = neighbour < day
    explicit = events["session_id"].notna().to_numpy()
    by_gap = ~explicit & events["user_id"].notna().to_numpy()
    near = (events["timestamp"] < start + gap) if before else (events["timestamp"] >= end - gap)
    users = events["user_id"][by_gap & near.to_numpy(dtype=bool)].unique()
    same_session = rows["session_id"].isin(events["session_id"][explicit].unique()).to_numpy(dtype=bool)
    same_user = rows["session_id"].isna().to_numpy() & rows["user_id"].isin(users).to_numpy(dtype=bool)
    if before:
        same_user &= (rows["timestamp"] >= start - gap).to_numpy(dtype=bool)
    return same_session | same_user


def neighbour_condition(
    table: sa.Table, day: date, neighbour: date, tz: str, gap_minutes: float
) -> sa.ColumnElement[bool]:
    """neighbour_rows as a WHERE clause on `table` (requests or messages): its rows of `neighbour` that can
    share a session with the rows the same warehouse holds for `day` in both EVENT_TABLES."""
    # UTC datetimes: SQLite compares the stored UTC text, which drops any offset a bound value had.
    start, end = (bound.to_pydatetime() for bound in day_bounds(day, tz))
    gap = timedelta(minutes=gap_minutes)
    before = neighbour < day
    sources = [TABLES[name] for name in EVENT_TABLES]
    ids = sa.union(
        *(sa.select(t.c.session_id).where((t.c.day == day.isoformat()) & t.c.session_id.is_not(None)) for t in sources)
    )
    users = sa.union(
        *(
            sa.select(t.c.user_id).where(
                (t.c.day == day.isoformat())
                & t.c.session_id.is_(None)
                & t.c.user_id.is_not(None)
                & ((t.c.timestamp < start + gap) if before else (t.c.timestamp >= end - gap))
            )
            for t in sources
        )
    )
    same_user = table.c.session_id.is_(None) & table.c.user_id.in_(users)
    if before:
        same_user &= table.c.timestamp >= start - gap
    return (table.c.day == neighbour.isoformat()) & (table.c.session_id.in_(ids) | same_user)


# Keys per IN list: SQLite allows 32,766 bound parameters a statement.
_KEYS_PER_QUERY = 10_000


def rejoined_days(
    read_where: Callable[[str, sa.ColumnElement[bool]], pd.DataFrame],
    rows: pd.DataFrame,
    tz: str,
    gap_minutes: float,
) -> set[str]:
    """The days either side of changed rows whose stored sessions those rows can join, so they must be rerun too.

    `rows` are new or changed events (columns day as YYYY-MM-DD, timestamp UTC, user_id as stored, session_id);
    `read_where(table, condition)` reads a warehouse table's rows. A day counts when `neighbour_rows`, given the
    events the warehouse holds for it, takes any of the rows of the day next to it: a session of that day starts
    earlier or goes on longer with them. The warehouse's events are read only where they share a session_id or a
    user with the rows. Returns the days as YYYY-MM-DD; a day never run holds no events and is not returned.
    """
    found: set[str] = set()
    for name, changed in rows.groupby("day", sort=True):
        own = date.fromisoformat(str(name))
        ids = changed["session_id"].dropna().unique().tolist()
        users = changed.loc[changed["session_id"].isna(), "user_id"].dropna().unique().tolist()
        for day in (own - timedelta(days=1), own + timedelta(days=1)):
            if day.isoformat() in found:
                continue
            tables = [TABLES[table] for table in EVENT_TABLES]
            keys = [
                (t, t.c.session_id, ids[i : i + _KEYS_PER_QUERY])
                for t in tables
                for i in range(0, len(ids), _KEYS_PER_QUERY)
            ]
            keys += [
                (t, t.c.user_id, users[i : i + _KEYS_PER_QUERY])
                for t in tables
                for i in range(0, len(users), _KEYS_PER_QUERY)
            ]
            for table, column, chunk in keys:
                events = read_where(table.name, (table.c.day == day.isoformat()) & column.in_(chunk))
                if len(events) and neighbour_rows(events, changed, day, own, tz, gap_minutes).any():
                    found.add(day.isoformat())
                    break
    return found


def with_neighbours(frame: pd.DataFrame, neighbours: pd.DataFrame) -> pd.DataFrame:
    """The day's rows (`frame`) followed by the neighbouring days' rows, in frame's columns and types.

    `frame` itself when there are none, so a big day is not copied for nothing.
    """
    if neighbours.empty:
        return frame
    # Coded columns are stacked, not cast to the day's categories, which would lose the neighbours' other values.
    types = {name: dtype for name, dtype in frame.dtypes.items() if not isinstance(dtype, pd.CategoricalDtype)}
    return stacked([frame, neighbours.reindex(columns=frame.columns).astype(types)])


def day_sessions(
    requests: pd.DataFrame, messages: pd.DataFrame, day: date, tz: str, gap_minutes: float = 30
) -> pd.DataFrame:
    """build_sessions of the events given (the day's with its neighbours', see with_neighbours), keeping the
    sessions whose start falls on the local `day` in `tz`, numbered from 0 in build_sessions' order."""
    return day_sessions_and_rows(requests, messages, day, tz, gap_minutes)[0]


def day_sessions_and_rows(
    requests: pd.DataFrame, messages: pd.DataFrame, day: date, tz: str, gap_minutes: float = 30
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """day_sessions, and the row in it of each request's and of each message's session (-1 when in none, or
    in a session starting on another day), as scenarios.session_rows gives them: from the sessions' codes,
    without keying the events a second time nor looking each session_id up."""
    sessions, codes = coded_sessions(requests, messages, gap_minutes)
    table = DayGrid.of(day, tz).select(sessions, "start")
    row_of_code = np.full(len(sessions) + 1, -1, dtype=np.int64)  # the last one for code -1
    row_of_code[table.index.to_numpy()] = np.arange(len(table))
    rows = row_of_code[codes]
    return table.reset_index(drop=True), rows[: len(requests)], rows[len(requests) :]
