"""Active users over rolling windows and new versus returning users.

Computed from the small `daily_users` table (one row per user and day), never from
raw requests, so a window of 28 days reads 28 days of distinct users, not 28 days
of requests. A user is active on a day when they made a request with their user_id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, timedelta

import numpy as np
import pandas as pd

from chatpulse import stats
from chatpulse.tables import table_columns

WINDOWS = (7, 28)
USER_METRIC_COLUMNS = table_columns("user_metrics")


def window(day: str, days: int) -> tuple[str, str]:
    """First and last day (ISO) of the `days`-day window ending on day."""
    last = date.fromisoformat(day)
    return (last - timedelta(days=days - 1)).isoformat(), day


def user_metrics(
    daily_users: pd.DataFrame, first_seen: pd.Series, known_days: Collection[str], days: Iterable[str]
) -> pd.DataFrame:
    """One row per day in days (columns USER_METRIC_COLUMNS).

    daily_users holds the daily_users rows of at least the 27 days before the earliest
    of days through the latest; first_seen maps each user_id to the first day they were
    active in the whole warehouse. wau and mau count distinct users over the 7 and 28
    days ending on the day; days_7 and days_28 say how many of those days have been
    run (known_days), so a partial window is visible. A new user's first active day is
    this day; a returning user was active on some earlier day.
    """
    rows = []
    for day in days:
        today = daily_users[daily_users["day"] == day]
        active = today["user_id"].to_numpy(dtype=object)
        requests = today["requests"].to_numpy(dtype="float64")
        distinct = {}
        present = {}
        for span in WINDOWS:
            first, last = window(day, span)
            in_window = (daily_users["day"] >= first) & (daily_users["day"] <= last)
            distinct[span] = int(daily_users.loc[in_window, "user_id"].nunique())
            present[span] = sum(first <= d <= last for d in known_days)
        new = int((first_seen.reindex(active).to_numpy(dtype=object) == day).sum())
        rows.append(
            {
                "day": day,
                "active_users": len(active),
                "wau": distinct[7],
                "mau": distinct[28],
                "new_users": new,
                "returning_users": len(active) - new,
                "days_7": present[7],
                "days_28": present[28],
                "requests_per_user_mean": float(requests.mean()) if len(requests) else np.nan,
                "requests_per_user_p50": stats.percentile(requests, 50),
                "tokens_per_user_mean": float(today["total_tokens"].mean()) if len(today) else np.nan,
                "cost_estimate_per_user_mean": float(today["cost_estimate_usd"].mean()) if len(today) else np.nan,
                "top_user_share": float(requests.max() / requests.sum()) if requests.sum() else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=list(USER_METRIC_COLUMNS))
