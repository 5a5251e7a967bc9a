"""Day boundaries in the configured time zone.

A row belongs to the local day of its own timestamp, so every stage asks the
same question the same way: which UTC instants make up this local day?
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

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


class DayOutOfRange(ValueError):
    """A day that is no partition (before start_date or after today); the message says which days are."""


@dataclass(frozen=True)
class DaySpan:
    """The days that can be run: `first` (start_date) through `last` (today), local to `tz`.

    The range of the Dagster partitions (pipelines.definitions.daily_partitions, where the day in
    progress is a partition too). A row filed on any other day is recorded as outside the range.
    """

    first: date
    last: date
    tz: str

    @classmethod
    def through_today(cls, start: date, tz: str, now: datetime | None = None) -> DaySpan:
        """start_date through the local day of `now` (default: the current time)."""
        now = now or datetime.now(ZoneInfo(tz))
        return cls(start, now.astimezone(ZoneInfo(tz)).date(), tz)

    def where(self, day: date) -> str | None:
        """Why a day cannot be run, "before start_date" or "after today"; None for a day that can."""
        if day < self.first:
            return "before start_date"
        return "after today" if day > self.last else None

    def check(self, day: date) -> None:
        """Raise DayOutOfRange, naming the days that can be run, unless `day` is one of them."""
        where = self.where(day)
        if where is None:
            return
        detail = f"before start_date {self.first}" if where == "before start_date" else "after today"
        if self.first > self.last:
            raise DayOutOfRange(f"day {day} is {detail}: no day can be run before start_date {self.first}")
        raise DayOutOfRange(
            f"day {day} is {detail}: the days that can be run are {self.first} (start_date) "
            f"to {self.last} (today in {self.tz})"
        )

    def outside(self, days: pd.Series) -> pd.Series:
        """Which of `days` (naive midnights, as local_days gives them) cannot be run."""
        return (days < pd.Timestamp(self.first)) | (days > pd.Timestamp(self.last))


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


def window_text(start: pd.Timestamp, end: pd.Timestamp, dash: str = "–", dated: bool = False) -> str:
    """A time window (tz-aware timestamps, shown in their zone) as text: hours within one day (``14:00–15:00 UTC``,
    with the day first when ``dated``), both dates where it spans midnights (a day's bill, a month's budget),
    which bare hours would show as 00:00–00:00. An end at midnight closes its start's day. Where the two ends
    fall in different offsets (a window across a daylight-saving change), each end names its own."""
    own = f" {start:%Z}" if start.tzname() != end.tzname() else ""
    if end - start < pd.Timedelta(days=1) and (end - pd.Timedelta(microseconds=1)).date() == start.date():
        return f"{start:%Y-%m-%d }" * dated + f"{start:%H:%M}{own}{dash}{end:%H:%M %Z}"
    return f"{start:%Y-%m-%d %H:%M}{own}{dash}{end:%Y-%m-%d %H:%M %Z}"
