"""Usage metrics for one local day: traffic, latency, errors, tokens, cost and sessions.

A request counts toward the day when its timestamp falls in [local midnight of day,
local midnight of the next day) in tz; its hour is the local clock hour, so on a
day that falls back from daylight saving the repeated hour is one row.
Percentiles use numpy's default (linear interpolation) over non-null values.
Errors are schema.is_error. docs/metrics.md defines every column.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from chatpulse.behaviour.scenarios import session_rows
from chatpulse.days import day_bounds
from chatpulse.metrics.pricing import estimate_cost
from chatpulse.schema import is_error
from chatpulse.tables import table_columns

HOURLY_COLUMNS = table_columns("hourly_metrics")

DAILY_COLUMNS = table_columns("daily_metrics")

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
        """Rows of frame whose column instant falls on this day (frame itself when all do:
        a clean day's frame usually does, and filtering would copy every column)."""
        inside = (frame[column] >= self.start) & (frame[column] < self.end)
        return frame if inside.all() else frame[inside]

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


# ---- Request frequency, response time and errors, overall and per model and endpoint ----

MINUTE_COLUMNS = table_columns("minute_metrics")

REQUEST_METRIC_COLUMNS = table_columns("request_metrics")

# (dimension, request column): "all" is every request as one group.
DIMENSIONS = (("all", None), ("model", "model"), ("endpoint", "endpoint"))

ERROR_KINDS = ("rate_limit", "timeout", "server", "client", "content_filter", "other")
ERROR_KIND_COLUMNS = table_columns("error_kinds")
FAILED_COLUMNS = table_columns("failed_requests")
SLOWEST_COUNT = 20
SLOWEST_COLUMNS = table_columns("slowest_requests")

_SECOND_NS = 1_000_000_000
_MINUTE_NS = 60 * _SECOND_NS
# Group code above the nanoseconds since midnight in one sortable int64 (2**47 ns is 39 h,
# more than a 25 h day plus the longest valid latency).
_GROUP_SHIFT = 47


def _since_start_ns(timestamps: pd.Series, start: pd.Timestamp) -> np.ndarray:
    """Nanoseconds from the day's start to each timestamp."""
    return (timestamps - start).to_numpy(dtype="timedelta64[ns]").view("int64")


def _local_iso(start: pd.Timestamp, offset_ns: int) -> str:
    """The local ISO time offset_ns after the day's (local) start."""
    return (start + pd.Timedelta(offset_ns, unit="ns")).isoformat()


def _split(order: np.ndarray, sorted_codes: np.ndarray, groups: int, values: np.ndarray) -> list[np.ndarray]:
    """The non-NaN values of each group, in group order (order sorts the rows by group)."""
    ordered = values[order]
    present = ~np.isnan(ordered)
    bounds = np.cumsum(np.bincount(sorted_codes[present], minlength=groups))[:-1]
    return np.split(ordered[present], bounds)[:groups]  # no groups: no (empty) split


def _peaks(sorted_codes: np.ndarray, sorted_slots: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the most requests in one slot and that slot (earliest on ties; -1 when none).

    Rows come sorted by group then time, so each (group, slot) is one run: no further sort.
    """
    peak, slot = np.zeros(groups, dtype="int64"), np.full(groups, -1, dtype="int64")
    if not len(sorted_codes):
        return peak, slot
    new_run = np.r_[True, (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_slots[1:] != sorted_slots[:-1])]
    run_start = np.flatnonzero(new_run)
    counts = np.diff(np.r_[run_start, len(sorted_codes)])
    owner, run_slot = sorted_codes[run_start], sorted_slots[run_start]
    np.maximum.at(peak, owner, counts)
    best = np.flatnonzero(counts == peak[owner])  # in (group, slot) order: earliest first
    first = best[np.r_[True, owner[best][1:] != owner[best][:-1]]]
    slot[owner[first]] = run_slot[first]
    return peak, slot


def _concurrency(
    sorted_keys: np.ndarray, sorted_latency_ms: np.ndarray, groups: int, seconds: int
) -> tuple[list[int | None], list[int], list[float]]:
    """Per group: peak in-flight requests, the offset (ns) it is first reached, and the p95
    of the in-flight count sampled at the start of every second of the day.

    sorted_keys are (group << _GROUP_SHIFT | ns since the day's start), ascending, with each
    row's latency. A request is in flight over [start, start + latency); rows without a
    latency are left out.
    """
    known = ~np.isnan(sorted_latency_ms)
    starts = sorted_keys[known]
    ends = np.sort(starts + np.round(sorted_latency_ms[known] * 1e6).astype("int64"))
    # Started minus ended by each start (earlier groups contribute as many of each). Among
    # equal starts only the last counts them all; the others are lower, never the maximum.
    in_flight = np.arange(1, len(starts) + 1) - np.searchsorted(ends, starts, "right")
    bounds = np.searchsorted(starts, np.arange(groups + 1, dtype="int64") << _GROUP_SHIFT)
    samples = np.arange(seconds, dtype="int64") * _SECOND_NS
    peaks, at, p95 = [], [], []
    for g in range(groups):
        segment = in_flight[bounds[g] : bounds[g + 1]]
        if len(segment):
            best = int(segment.argmax())
            probe = (g << _GROUP_SHIFT) | samples
            sampled = np.searchsorted(starts, probe, "right") - np.searchsorted(ends, probe, "right")
            peaks.append(int(segment[best]))
            at.append(int(starts[bounds[g] + best] & ((1 << _GROUP_SHIFT) - 1)))
            p95.append(float(np.percentile(sampled, 95)))
        else:
            peaks.append(None)
            at.append(-1)
            p95.append(np.nan)
    return peaks, at, p95


def _output_speed(rows: pd.DataFrame, failed: np.ndarray) -> np.ndarray:
    """Visible output tokens per second after the first token; NaN where undefined.

    Reasoning tokens are produced before the first visible token, so they are
    subtracted from completion tokens; a failed request, a missing TTFT or a
    non-positive decode time gives NaN.
    """
    latency = rows["latency_ms"].to_numpy(dtype="float64", na_value=np.nan)
    ttft = rows["ttft_ms"].to_numpy(dtype="float64", na_value=np.nan)
    visible = rows["completion_tokens"].to_numpy(dtype="float64", na_value=np.nan) - np.nan_to_num(
        rows["reasoning_tokens"].to_numpy(dtype="float64", na_value=np.nan)
    )
    decode_s = (latency - ttft) / 1000.0
    valid = ~failed & (decode_s > 0) & (visible > 0)
    return np.divide(visible, decode_s, out=np.full(len(rows), np.nan), where=valid)


def _stats(groups: list[np.ndarray], qs: list[float], mean: bool = False, peak: bool = False) -> np.ndarray:
    """Rows of [mean?, percentiles..., max?] per group; NaN for an empty group."""
    width = len(qs) + mean + peak
    out = np.full((len(groups), width), np.nan)
    for i, values in enumerate(groups):
        row = ([_mean(values)] if mean else []) + _percentiles(values, qs)
        if peak:
            row.append(float(values.max()) if len(values) else np.nan)
        out[i] = row
    return out


def request_metrics(requests: pd.DataFrame, day: dt.date, tz: str, slow_ms: float = 10_000.0) -> pd.DataFrame:
    """Traffic, latency and error figures of day, one row per dimension value
    (columns REQUEST_METRIC_COLUMNS): dimension "all" (value None), then each model and
    each endpoint (a missing model or endpoint is its own value, None).

    Peaks are clock minutes and seconds, given as local ISO starts (earliest on ties).
    slow_requests counts latency above slow_ms; slow_share divides by requests with a latency.
    """
    grid = _Day.of(day, tz)
    rows = grid.select(requests, "timestamp")
    since = _since_start_ns(rows["timestamp"], grid.start)
    seconds = int((grid.end - grid.start) // pd.Timedelta(seconds=1))
    latency = rows["latency_ms"].to_numpy(dtype="float64", na_value=np.nan)
    ttft = rows["ttft_ms"].to_numpy(dtype="float64", na_value=np.nan)
    failed = is_error(rows).to_numpy(dtype=bool)
    speed = _output_speed(rows, failed)
    user_codes, users = pd.factorize(rows["user_id"])
    frames = []
    for dimension, column in DIMENSIONS:
        if column is None:
            codes, labels = np.zeros(len(rows), dtype="int64"), [None]
        else:
            codes, uniques = pd.factorize(rows[column], use_na_sentinel=False)
            labels = [None if pd.isna(v) else str(v) for v in uniques]
        n = len(labels)
        count = np.bincount(codes, minlength=n)
        errors = np.bincount(codes, weights=failed, minlength=n).astype("int64")
        # One sort per dimension, by group then start time, serves every figure below.
        keys = codes.astype("int64") << _GROUP_SHIFT | since
        order = np.argsort(keys)
        sorted_codes, sorted_since = codes[order], since[order]
        rpm, minute = _peaks(sorted_codes, sorted_since // _MINUTE_NS, n)
        rps, second = _peaks(sorted_codes, sorted_since // _SECOND_NS, n)
        c_peak, c_at, c_p95 = _concurrency(keys[order], latency[order], n, seconds)
        split = partial(_split, order, sorted_codes, n)
        latency_stats = _stats(split(latency), [50, 90, 95, 99], mean=True, peak=True)
        ttft_stats = _stats(split(ttft), [50, 90, 95, 99])
        speed_stats = _stats(split(speed), [10, 50], mean=True)
        timed = np.bincount(codes, weights=~np.isnan(latency), minlength=n)
        slow = np.bincount(codes, weights=latency > slow_ms, minlength=n).astype("int64")
        pairs = np.unique(codes[user_codes >= 0].astype("int64") * max(len(users), 1) + user_codes[user_codes >= 0])
        frames.append(
            pd.DataFrame(
                {
                    "dimension": dimension,
                    "value": pd.Series(labels, dtype=object),
                    "requests": count,
                    "errors": errors,
                    "error_rate": np.divide(errors, count, out=np.full(n, np.nan), where=count > 0),
                    "peak_rpm": rpm,
                    "peak_minute": [_local_iso(grid.start, m * _MINUTE_NS) if m >= 0 else None for m in minute],
                    "peak_rps": rps,
                    "peak_second": [_local_iso(grid.start, s * _SECOND_NS) if s >= 0 else None for s in second],
                    "concurrency_peak": pd.array(c_peak, dtype="Int64"),
                    "concurrency_peak_at": [_local_iso(grid.start, t) if t >= 0 else None for t in c_at],
                    "concurrency_p95": c_p95,
                    **dict(
                        zip(
                            [
                                "latency_mean_ms",
                                "latency_p50_ms",
                                "latency_p90_ms",
                                "latency_p95_ms",
                                "latency_p99_ms",
                                "latency_max_ms",
                            ],
                            latency_stats.T,
                            strict=True,
                        )
                    ),
                    **dict(
                        zip(["ttft_p50_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms"], ttft_stats.T, strict=True)
                    ),
                    **dict(zip(["output_tps_mean", "output_tps_p10", "output_tps_p50"], speed_stats.T, strict=True)),
                    "slow_requests": slow,
                    "slow_share": np.divide(slow, timed, out=np.full(n, np.nan), where=timed > 0),
                    "users": np.bincount(pairs // max(len(users), 1), minlength=n),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True).assign(day=day.isoformat())
    return out[list(REQUEST_METRIC_COLUMNS)]


def minute_metrics(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """One row per clock minute of the local day (1440, or 1380/1500 on DST days):
    its UTC start, local hour, requests and errors (columns MINUTE_COLUMNS)."""
    grid = _Day.of(day, tz)
    rows = grid.select(requests, "timestamp")
    minutes = grid.minute_of(rows["timestamp"])
    slots = len(grid.hour_of_minute)
    return pd.DataFrame(
        {
            "day": day.isoformat(),
            "start": pd.date_range(grid.start, grid.end, freq="min", inclusive="left").tz_convert("UTC"),
            "hour": grid.hour_of_minute.astype("int64"),
            "requests": grid.minute_counts(minutes),
            "errors": np.bincount(minutes, weights=is_error(rows).to_numpy(dtype="float64"), minlength=slots).astype(
                "int64"
            ),
        }
    )[list(MINUTE_COLUMNS)]


def error_kind(requests: pd.DataFrame) -> pd.Series:
    """The kind of each failed request (None when it did not fail), first match wins:

    content_filter (error_type mentions "content"), rate_limit (429 or "rate"),
    timeout (408, 504 or "timeout"/"timed out"), server (5xx), client (other 4xx), else other.
    """
    failed = is_error(requests).to_numpy(dtype=bool)
    status = requests["status_code"].to_numpy(dtype="float64", na_value=0.0)[failed]
    text = requests["error_type"][failed].fillna("").astype("str").str.lower()
    has = {
        word: text.str.contains(pattern, regex=True).to_numpy(dtype=bool)
        for word, pattern in (("content", "content"), ("rate", "rate"), ("timeout", r"timeout|timed out"))
    }
    kinds = np.select(
        [
            has["content"],
            (status == 429) | has["rate"],
            np.isin(status, (408, 504)) | has["timeout"],
            status >= 500,
            status >= 400,
        ],
        ["content_filter", "rate_limit", "timeout", "server", "client"],
        "other",
    )
    kind = np.full(len(requests), None, dtype=object)
    kind[failed] = kinds
    return pd.Series(kind, index=requests.index, name="error_kind", dtype=object)


def error_kinds(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """Errors of day per kind, every kind of ERROR_KINDS (0 when none); columns ERROR_KIND_COLUMNS."""
    rows = _Day.of(day, tz).select(requests, "timestamp")
    counts = error_kind(rows).value_counts().reindex(list(ERROR_KINDS), fill_value=0).to_numpy(dtype="int64")
    total, count = int(counts.sum()), len(rows)
    return pd.DataFrame(
        {
            "day": day.isoformat(),
            "error_kind": list(ERROR_KINDS),
            "errors": counts,
            "share_of_errors": counts / total if total else np.nan,
            "share_of_requests": counts / count if count else np.nan,
        }
    )[list(ERROR_KIND_COLUMNS)]


def failed_requests(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """Every failed request of day in time order: ids, model, user, status, kind, latency (no content)."""
    rows = _Day.of(day, tz).select(requests, "timestamp")
    failed = rows[is_error(rows)]
    out = failed.assign(day=day.isoformat(), error_kind=error_kind(failed))
    return out.sort_values(["timestamp", "request_id"], kind="stable")[list(FAILED_COLUMNS)].reset_index(drop=True)


def slowest_requests(requests: pd.DataFrame, day: dt.date, tz: str, count: int = SLOWEST_COUNT) -> pd.DataFrame:
    """The count slowest requests of day by latency (ties: earlier first), ranked from 1."""
    rows = _Day.of(day, tz).select(requests, "timestamp")
    candidates = rows.nlargest(count, "latency_ms", keep="all")  # NaN latencies are never picked
    top = candidates.sort_values(["latency_ms", "timestamp"], ascending=[False, True], kind="stable").head(count)
    out = top.assign(day=day.isoformat(), rank=np.arange(1, len(top) + 1, dtype="int64"))
    return out[list(SLOWEST_COLUMNS)].reset_index(drop=True)


# ---- Tokens and cost per model, usage per user ----

MODEL_COST_COLUMNS = table_columns("model_costs")
USAGE_TOKENS = ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens", "total_tokens")
USER_COLUMNS = table_columns("daily_users")


def _labels(uniques: pd.Index) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in uniques]


def _floats(rows: pd.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy(dtype="float64", na_value=np.nan)


def _sum_where(codes: np.ndarray, groups: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the sum of the non-NaN values (NaN when there are none) and their count."""
    present = ~np.isnan(values)
    count = np.bincount(codes, weights=present, minlength=groups)
    total = np.bincount(codes, weights=np.where(present, values, 0.0), minlength=groups)
    return np.where(count > 0, total, np.nan), count.astype("int64")


def model_costs(requests: pd.DataFrame, day: dt.date, tz: str, rates: pd.DataFrame) -> pd.DataFrame:
    """Tokens and cost of day per model (a missing model is its own row, None), columns
    MODEL_COST_COLUMNS, ordered by model name.

    rates is pricing.prices_on(table, day). A model without a rate in force has NULL
    prices and estimate, and all its requests in unpriced_requests. cost_difference_usd
    is the logged minus the estimated cost over requests that have both.
    """
    rows = _Day.of(day, tz).select(requests, "timestamp")
    estimate = estimate_cost(rows, rates)
    logged = _floats(rows, "cost_usd")
    codes, uniques = pd.factorize(rows["model"], use_na_sentinel=False)
    models = _labels(uniques)
    n = len(models)
    count = np.bincount(codes, minlength=n)
    rate = rates.reindex(pd.Index(models, dtype=object))
    priced = rate["input"].notna().to_numpy()
    logged_sum, logged_count = _sum_where(codes, n, logged)
    estimate_sum, _ = _sum_where(codes, n, estimate)
    difference, _ = _sum_where(codes, n, logged - estimate)
    out = pd.DataFrame(
        {
            "day": day.isoformat(),
            "model": pd.Series(models, dtype=object),
            "requests": count,
            **{
                c: np.bincount(codes, weights=np.nan_to_num(_floats(rows, c)), minlength=n).astype("int64")
                for c in USAGE_TOKENS
            },
            "input_usd_per_mtok": rate["input"].to_numpy(),
            "cached_input_usd_per_mtok": rate["cached_input"].to_numpy(),
            "output_usd_per_mtok": rate["output"].to_numpy(),
            "price_from": rate["price_from"].to_numpy(dtype=object),
            "unpriced_requests": np.where(priced, 0, count),
            "cost_estimate_usd": np.where(priced, np.nan_to_num(estimate_sum), np.nan),
            "cost_logged_usd": logged_sum,
            "logged_requests": logged_count,
            "cost_difference_usd": difference,
        }
    )
    return out.sort_values("model", na_position="last", kind="stable")[list(MODEL_COST_COLUMNS)].reset_index(drop=True)


def daily_users(requests: pd.DataFrame, day: dt.date, tz: str, rates: pd.DataFrame) -> pd.DataFrame:
    """One row per user active on day (made a request with a user_id), columns USER_COLUMNS.

    rank 1 is the user with the most requests (ties: more tokens, then user_id).
    cost_estimate_usd sums the user's priced requests (NULL when none is priced);
    unpriced_requests counts the rest.
    """
    rows = _Day.of(day, tz).select(requests, "timestamp")
    rows = rows[rows["user_id"].notna()]
    estimate = estimate_cost(rows, rates)
    codes, uniques = pd.factorize(rows["user_id"])
    n = len(uniques)
    count = np.bincount(codes, minlength=n)
    tokens = np.bincount(codes, weights=np.nan_to_num(_floats(rows, "total_tokens")), minlength=n).astype("int64")
    estimate_sum, priced = _sum_where(codes, n, estimate)
    users = np.asarray(uniques, dtype=object)
    order = np.lexsort((users.astype(str), -tokens, -count))
    rank = np.empty(n, dtype="int64")
    rank[order] = np.arange(1, n + 1)
    out = pd.DataFrame(
        {
            "day": day.isoformat(),
            "user_id": pd.Series(users, dtype="str"),
            "rank": rank,
            "requests": count,
            "errors": np.bincount(codes, weights=is_error(rows).to_numpy(dtype="float64"), minlength=n).astype("int64"),
            "total_tokens": tokens,
            "cost_logged_usd": _sum_where(codes, n, _floats(rows, "cost_usd"))[0],
            "cost_estimate_usd": estimate_sum,
            "unpriced_requests": count - priced,
        }
    )
    return out.sort_values("rank")[list(USER_COLUMNS)].reset_index(drop=True)


# ---- Sessions in depth ----

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
    grid = _Day.of(day, tz)
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
    duration_p50, duration_p90 = _percentiles(durations, [50, 90])
    turns_p50, turns_p90 = _percentiles(turns, [50, 90])
    gap_p50, gap_p90 = _percentiles(gaps, [50, 90])
    single = int((turns == 1).sum())
    record = {
        "day": day.isoformat(),
        "sessions": n,
        "duration_mean_s": _mean(durations),
        "duration_p50_s": duration_p50,
        "duration_p90_s": duration_p90,
        "duration_max_s": float(durations.max()) if n else np.nan,
        "turns_mean": _mean(turns),
        "turns_p50": turns_p50,
        "turns_p90": turns_p90,
        "turns_max": int(turns.max()) if n else 0,
        "messages_mean": _mean(day_sessions["messages"].to_numpy(dtype="float64")),
        "requests_mean": _mean(day_sessions["requests"].to_numpy(dtype="float64")),
        "turn_gaps": len(gaps),
        "turn_gap_mean_s": _mean(gaps),
        "turn_gap_p50_s": gap_p50,
        "turn_gap_p90_s": gap_p90,
        "single_turn_sessions": single,
        "single_turn_share": single / n if n else np.nan,
        "unanswered_sessions": int(unanswered.sum()),
        "unanswered_share": float(unanswered.sum()) / n if n else np.nan,
    }
    return pd.DataFrame([record], columns=list(SESSION_METRIC_COLUMNS))
