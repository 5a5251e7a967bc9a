"""Day boundaries in the configured time zone.

A row belongs to the local day of its own timestamp, so every stage asks the
same question the same way: which UTC instants make up this local day?
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
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


MINUTE = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class DayGrid:
    """The local day's bounds and its minute grid, shared by hourly and daily metrics."""

    start: pd.Timestamp
    end: pd.Timestamp
    # Local clock hour of each minute of the day, minute 0 starting at local midnight.
    hour_of_minute: np.ndarray

    @classmethod
    def of(cls, day: date, tz: str) -> DayGrid:
        """Bounds at local midnights (see days.day_bounds)."""
        start, end = (bound.tz_convert(tz) for bound in day_bounds(day, tz))
        minutes = pd.date_range(start, end, freq="min", inclusive="left")
        return cls(start, end, minutes.hour.to_numpy())

    def select(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        """Rows of frame whose column instant falls on this day (frame itself when all do:
        a clean day's frame usually does, and filtering would copy every column)."""
        inside = (frame[column] >= self.start) & (frame[column] < self.end)
        return frame if inside.all() else frame[inside]

    def minute_of(self, timestamps: pd.Series) -> np.ndarray:
        """Index into the minute grid of each (in-day) timestamp."""
        return ((timestamps - self.start) // MINUTE).to_numpy(dtype="int64")

    def minute_counts(self, minutes: np.ndarray) -> np.ndarray:
        """Requests in each minute of the day."""
        return np.bincount(minutes, minlength=len(self.hour_of_minute))
