"""The day at a glance: 24 hourly rows and one daily row of traffic, latency, tokens and sessions.

A request counts toward the day when its timestamp falls in [local midnight of day,
local midnight of the next day) in tz; its hour is the local clock hour, so on a
day that falls back from daylight saving the repeated hour is one row.
Percentiles are chatpulse.stats'. Errors are schema.is_error. docs/metrics.md defines every column.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from chatpulse.days import MINUTE, DayGrid
from chatpulse.metrics.pricing import DayPrices, estimate_cost, unpriced
from chatpulse.schema import is_error
from chatpulse.stats import mean, percentiles, present
from chatpulse.tables import table_columns
from chatpulse.tokens import unmetered

HOURLY_COLUMNS = table_columns("hourly_metrics")

DAILY_COLUMNS = table_columns("daily_metrics")

TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")


def hourly_metrics(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """24 rows, local hours 0..23 of day in tz (columns HOURLY_COLUMNS).

    An hour without requests has zero counts and sums, NaN error_rate and latencies.
    """
    grid = DayGrid.of(day, tz)
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
    latency_stats = np.array([[mean(values), *percentiles(values, [50, 95, 99])] for values in by_hour])

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


def daily_metrics(
    requests: pd.DataFrame, sessions: pd.DataFrame, day: dt.date, tz: str, rates: DayPrices | None = None
) -> pd.DataFrame:
    """One row summarising day in tz (columns DAILY_COLUMNS).

    sessions is build_sessions output; a session counts toward the day its start
    falls on. peak_minute is the busiest minute's local start in ISO form, the
    earliest on ties, None without requests. cost_usd sums the logged costs, NULL when
    no request logged one. rates (pricing.prices_on; None: no prices) give
    cost_estimate_usd, the sum of the estimates (NULL when none), estimated_requests,
    how many requests it covers, and unpriced_requests, how many need a price nothing gives
    (pricing.unpriced; all that have a model without rates); unmetered_requests counts
    chatpulse.tokens.unmetered. logged_requests counts the requests with a logged cost; spend_usd sums
    each request's logged cost, else its estimate (NULL when neither is known for any), as
    dimension_daily's spend.
    """
    grid = DayGrid.of(day, tz)
    rows = grid.select(requests, "timestamp")
    day_sessions = grid.select(sessions, "start")
    per_minute = grid.minute_counts(grid.minute_of(rows["timestamp"]))
    busiest = int(per_minute.argmax())
    count = len(rows)
    errors = int(is_error(rows).sum())
    resolved = rates.resolve(rows) if rates is not None else None
    each = estimate_cost(rows, resolved) if resolved is not None else np.full(count, np.nan)
    estimate = each[~np.isnan(each)]
    logged = rows["cost_usd"].to_numpy(dtype="float64", na_value=np.nan)
    spend = np.where(np.isnan(logged), each, logged)
    needs_price = int(unpriced(rows, resolved).sum()) if resolved is not None else count
    latency = present(rows["latency_ms"])
    latency_p50, latency_p95, latency_p99 = percentiles(latency, [50, 95, 99])
    ttft_p50, ttft_p95 = percentiles(present(rows["ttft_ms"]), [50, 95])
    duration_p50, duration_p95 = percentiles(present(day_sessions["duration_s"]), [50, 95])
    record = {
        "day": day.isoformat(),
        "requests": count,
        "errors": errors,
        "error_rate": errors / count if count else np.nan,
        "peak_rpm": int(per_minute[busiest]),
        "peak_minute": (grid.start + busiest * MINUTE).isoformat() if count else None,
        "latency_mean_ms": mean(latency),
        "latency_p50_ms": latency_p50,
        "latency_p95_ms": latency_p95,
        "latency_p99_ms": latency_p99,
        "ttft_p50_ms": ttft_p50,
        "ttft_p95_ms": ttft_p95,
        **{column: int(rows[column].sum()) for column in TOKEN_COLUMNS},
        "cost_usd": float(rows["cost_usd"].sum(min_count=1)),
        "users": int(rows["user_id"].nunique()),
        "models": int(rows["model"].nunique()),
        "sessions": len(day_sessions),
        "session_duration_p50_s": duration_p50,
        "session_duration_p95_s": duration_p95,
        "turns_mean": mean(present(day_sessions["turns"])),
        "unmetered_requests": int(unmetered(rows).sum()),
        "cost_estimate_usd": float(estimate.sum()) if len(estimate) else np.nan,
        "estimated_requests": len(estimate),
        "unpriced_requests": needs_price,
        "logged_requests": int((~np.isnan(logged)).sum()),
        "spend_usd": float(np.nansum(spend)) if (~np.isnan(spend)).any() else np.nan,
    }
    return pd.DataFrame([record], columns=list(DAILY_COLUMNS)).astype({"peak_minute": object})
