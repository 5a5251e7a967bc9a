"""Hourly and daily usage metrics for one local day.

A request counts toward the day when its timestamp falls in [local midnight of day,
local midnight of the next day) in tz; its hour is the local clock hour, so on a
day that falls back from daylight saving the repeated hour is one row.
Percentiles use numpy's default (linear interpolation) over non-null values.
Errors are schema.is_error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chatpulse.days import day_bounds
from chatpulse.schema import is_error

HOURLY_COLUMNS = (
    "day",
    "hour",
    "requests",
    "errors",
    "error_rate",
    "peak_rpm",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
)

DAILY_COLUMNS = (
    "day",
    "requests",
    "errors",
    "error_rate",
    "peak_rpm",
    "peak_minute",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "users",
    "models",
    "sessions",
    "session_duration_p50_s",
    "session_duration_p95_s",
    "turns_mean",
)

TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")
_MINUTE = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class _Day:
    """The local day's bounds and its minute grid, shared by hourly and daily metrics."""

    start: pd.Timestamp
    end: pd.Timestamp
    # Local clock hour of each minute of the day, minute 0 starting at local midnight.
    hour_of_minute: np.ndarray

    @classmethod
    def of(cls, day: dt.date, tz: str) -> _Day:
        """Bounds at local midnights (see days.day_bounds)."""
        start, end = (bound.tz_convert(tz) for bound in day_bounds(day, tz))
        minutes = pd.date_range(start, end, freq="min", inclusive="left")
        return cls(start, end, minutes.hour.to_numpy())

    def select(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        """Rows of frame whose column instant falls on this day."""
        return frame[(frame[column] >= self.start) & (frame[column] < self.end)]

    def minute_of(self, timestamps: pd.Series) -> np.ndarray:
        """Index into the minute grid of each (in-day) timestamp."""
        return ((timestamps - self.start) // _MINUTE).to_numpy(dtype="int64")

    def minute_counts(self, minutes: np.ndarray) -> np.ndarray:
        """Requests in each minute of the day."""
        return np.bincount(minutes, minlength=len(self.hour_of_minute))


def _values(column: pd.Series) -> np.ndarray:
    """The non-null values of a numeric column as float64."""
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    return values[~np.isnan(values)]


def _percentiles(values: np.ndarray, qs: list[float]) -> list[float]:
    """numpy percentiles of values; NaN for each q when there are none."""
    return [float(p) for p in np.percentile(values, qs)] if len(values) else [np.nan] * len(qs)


def _mean(values: np.ndarray) -> float:
    """Mean of values, NaN when there are none (without numpy's empty-mean warning)."""
    return float(values.mean()) if len(values) else np.nan


def hourly_metrics(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """24 rows, local hours 0..23 of day in tz (columns HOURLY_COLUMNS).

    An hour without requests has zero counts and sums, NaN error_rate and latencies.
    """
    grid = _Day.of(day, tz)
    rows = grid.select(requests, "timestamp")
    minutes = grid.minute_of(rows["timestamp"])
    hours = grid.hour_of_minute[minutes]
    count = np.bincount(hours, minlength=24)
    errors = np.bincount(hours, weights=is_error(rows).to_numpy(dtype="float64"), minlength=24).astype("int64")
    peak_rpm = np.zeros(24, dtype="int64")
    np.maximum.at(peak_rpm, grid.hour_of_minute, grid.minute_counts(minutes))

    latency = rows["latency_ms"].to_numpy(dtype="float64")
    present = ~np.isnan(latency)
    latency_hours = hours[present]
    by_hour = np.split(
        latency[present][np.argsort(latency_hours, kind="stable")],
        np.cumsum(np.bincount(latency_hours, minlength=24))[:-1],
    )
    latency_stats = np.array([[_mean(values), *_percentiles(values, [50, 95, 99])] for values in by_hour])

    out = pd.DataFrame(
        {
            "day": day.isoformat(),
            "hour": np.arange(24, dtype="int64"),
            "requests": count,
            "errors": errors,
            "error_rate": np.divide(errors, count, out=np.full(24, np.nan), where=count > 0),
            "peak_rpm": peak_rpm,
            "latency_mean_ms": latency_stats[:, 0],
            "latency_p50_ms": latency_stats[:, 1],
            "latency_p95_ms": latency_stats[:, 2],
            "latency_p99_ms": latency_stats[:, 3],
        }
    )
    for column in TOKEN_COLUMNS:
        weights = rows[column].fillna(0).to_numpy(dtype="float64")
        out[column] = np.bincount(hours, weights=weights, minlength=24).astype("int64")
    return out[list(HOURLY_COLUMNS)]


def daily_metrics(requests: pd.DataFrame, sessions: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """One row summarising day in tz (columns DAILY_COLUMNS).

    sessions is build_sessions output; a session counts toward the day its start
    falls on. peak_minute is the busiest minute's local start in ISO form, the
    earliest on ties, None without requests.
    """
    grid = _Day.of(day, tz)
    rows = grid.select(requests, "timestamp")
    day_sessions = grid.select(sessions, "start")
    per_minute = grid.minute_counts(grid.minute_of(rows["timestamp"]))
    busiest = int(per_minute.argmax())
    count = len(rows)
    errors = int(is_error(rows).sum())
    latency = _values(rows["latency_ms"])
    latency_p50, latency_p95, latency_p99 = _percentiles(latency, [50, 95, 99])
    ttft_p50, ttft_p95 = _percentiles(_values(rows["ttft_ms"]), [50, 95])
    duration_p50, duration_p95 = _percentiles(_values(day_sessions["duration_s"]), [50, 95])
    record = {
        "day": day.isoformat(),
        "requests": count,
        "errors": errors,
        "error_rate": errors / count if count else np.nan,
        "peak_rpm": int(per_minute[busiest]),
        "peak_minute": (grid.start + busiest * _MINUTE).isoformat() if count else None,
        "latency_mean_ms": _mean(latency),
        "latency_p50_ms": latency_p50,
        "latency_p95_ms": latency_p95,
        "latency_p99_ms": latency_p99,
        "ttft_p50_ms": ttft_p50,
        "ttft_p95_ms": ttft_p95,
        **{column: int(rows[column].sum()) for column in TOKEN_COLUMNS},
        "cost_usd": float(rows["cost_usd"].sum()),
        "users": int(rows["user_id"].nunique()),
        "models": int(rows["model"].nunique()),
        "sessions": len(day_sessions),
        "session_duration_p50_s": duration_p50,
        "session_duration_p95_s": duration_p95,
        "turns_mean": _mean(_values(day_sessions["turns"])),
    }
    return pd.DataFrame([record], columns=list(DAILY_COLUMNS)).astype({"peak_minute": object})
