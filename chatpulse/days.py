"""Day boundaries in the configured time zone.

A row belongs to the local day of its own timestamp, so every stage asks the
same question the same way: which UTC instants make up this local day?
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd


def day_bounds(day: date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC start (inclusive) and end (exclusive) of a local day.

    Where daylight saving skips midnight the day starts at the next valid instant;
    where midnight repeats, at its first occurrence.
    """
    start, end = (
        pd.Timestamp(d).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
        for d in (day, day + timedelta(days=1))
    )
    return start.tz_convert("UTC"), end.tz_convert("UTC")


def local_days(timestamps: pd.Series, tz: str) -> pd.Series:
    """The local calendar day of each UTC timestamp, as naive midnight timestamps.

    Naive, because where daylight saving skips midnight (America/Santiago, Cairo, ...)
    that day has no local midnight to be a time-zone-aware timestamp.
    """
    return timestamps.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def in_day(timestamps: pd.Series, day: date, tz: str) -> pd.Series:
    """Boolean mask of timestamps that fall on the local day."""
    start, end = day_bounds(day, tz)
    return (timestamps >= start) & (timestamps < end)
