"""Request frequency, response time and errors of one local day, overall and per model and endpoint.

Peaks are clock minutes and seconds of the local day; percentiles are chatpulse.stats'.
docs/metrics.md defines every column.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

import numpy as np
import pandas as pd

from chatpulse import stats
from chatpulse.days import DayGrid
from chatpulse.schema import is_error
from chatpulse.tables import table_columns

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
            p95.append(stats.percentile(sampled, 95))
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
        row = ([stats.mean(values)] if mean else []) + stats.percentiles(values, qs)
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
    grid = DayGrid.of(day, tz)
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
    grid = DayGrid.of(day, tz)
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
