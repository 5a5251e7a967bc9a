"""Request frequency, concurrency, latency and errors: each figure recomputed by brute force."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest

from chatpulse.metrics.errors import ERROR_KINDS, error_kind, error_kinds, failed_requests, slowest_requests
from chatpulse.metrics.traffic import REQUEST_METRIC_COLUMNS, minute_metrics, request_metrics

from fixtures import METRIC_DAY as DAY
from fixtures import clean_requests as requests

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _random_day(seed: int = 7, n: int = 400) -> tuple[list[dict], pd.DataFrame]:
    """Requests bunched into a few minutes so peaks and overlaps happen; times in whole ms,
    latencies in tenths of a ms, so the brute force can use exact integers."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start_ms = rng.choice([rng.randrange(86_400_000), 36_000_000 + rng.randrange(90_000)])
        latency = rng.choice([None, rng.randrange(1, 200_000) / 10, rng.randrange(100_000, 150_000) / 10])
        ttft = None if latency is None or rng.random() < 0.2 else round(latency * rng.random(), 1)
        status = rng.choice([200] * 8 + [429, 500, 504, 400, None])
        rows.append(
            {
                "request_id": f"r{i:03d}",
                "timestamp": (MIDNIGHT + dt.timedelta(milliseconds=start_ms)).isoformat(),
                "user_id": rng.choice(["u1", "u2", "u3", None]),
                "model": rng.choice(["m1", "m2", None]),
                "endpoint": rng.choice(["chat", "embeddings"]),
                "status_code": status,
                "error_type": rng.choice([None] * 9 + ["content_filter"]),
                "latency_ms": latency,
                "ttft_ms": ttft,
                "completion_tokens": rng.choice([None, 0, rng.randrange(1, 900)]),
                "reasoning_tokens": rng.choice([None, 0, 5]),
                "_start_ms": start_ms,
            }
        )
    frame = requests(*({k: v for k, v in r.items() if k != "_start_ms"} for r in rows))
    return rows, frame


def _failed(r: dict) -> bool:
    return (r["status_code"] or 0) >= 400 or bool(r["error_type"])


def _expected(rows: list[dict], slow_ms: float) -> dict[tuple[str, str | None], dict]:
    """Every figure per (dimension, value), by plain Python and NumPy broadcasting."""
    groups: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    for r in rows:
        groups[("all", None)].append(r)
        groups[("model", r["model"])].append(r)
        groups[("endpoint", r["endpoint"])].append(r)
    seconds = np.arange(86_400) * 10_000  # each second's start in tenths of a ms
    out = {}
    for key, members in groups.items():
        minutes = Counter(r["_start_ms"] // 60_000 for r in members)
        secs = Counter(r["_start_ms"] // 1000 for r in members)
        minute, rpm = min(minutes.items(), key=lambda kv: (-kv[1], kv[0]))
        second, rps = min(secs.items(), key=lambda kv: (-kv[1], kv[0]))
        timed = [
            (r["_start_ms"] * 10, r["_start_ms"] * 10 + round(r["latency_ms"] * 10))
            for r in members
            if r["latency_ms"] is not None
        ]
        at_starts = [(sum(s <= t < e for s, e in timed), t) for t, _ in timed]
        peak, peak_at = max(at_starts, key=lambda x: (x[0], -x[1]))
        starts, ends = np.array([s for s, _ in timed]), np.array([e for _, e in timed])
        sampled = ((starts[None, :] <= seconds[:, None]) & (seconds[:, None] < ends[None, :])).sum(axis=1)
        latencies = [r["latency_ms"] for r in members if r["latency_ms"] is not None]
        ttfts = [r["ttft_ms"] for r in members if r["ttft_ms"] is not None]
        speeds = [
            (r["completion_tokens"] - (r["reasoning_tokens"] or 0)) / ((r["latency_ms"] - r["ttft_ms"]) / 1000)
            for r in members
            if not _failed(r)
            and r["ttft_ms"] is not None
            and r["completion_tokens"] is not None
            and r["latency_ms"] > r["ttft_ms"]
            and r["completion_tokens"] - (r["reasoning_tokens"] or 0) > 0
        ]
        errors = sum(_failed(r) for r in members)
        slow = sum(x > slow_ms for x in latencies)
        out[key] = {
            "requests": len(members),
            "errors": errors,
            "error_rate": errors / len(members),
            "peak_rpm": rpm,
            "peak_minute": (MIDNIGHT + dt.timedelta(minutes=minute)).isoformat(),
            "peak_rps": rps,
            "peak_second": (MIDNIGHT + dt.timedelta(seconds=second)).isoformat(),
            "concurrency_peak": peak,
            "concurrency_peak_at": pd.Timestamp(MIDNIGHT + dt.timedelta(microseconds=peak_at * 100)).isoformat(),
            "concurrency_p95": np.percentile(sampled, 95),
            "latency_mean_ms": np.mean(latencies),
            "latency_p50_ms": np.percentile(latencies, 50),
            "latency_p90_ms": np.percentile(latencies, 90),
            "latency_p95_ms": np.percentile(latencies, 95),
            "latency_p99_ms": np.percentile(latencies, 99),
            "latency_max_ms": max(latencies),
            "ttft_p50_ms": np.percentile(ttfts, 50),
            "ttft_p99_ms": np.percentile(ttfts, 99),
            "output_tps_p10": np.percentile(speeds, 10),
            "output_tps_p50": np.percentile(speeds, 50),
            "output_tps_mean": np.mean(speeds),
            "slow_requests": slow,
            "slow_share": slow / len(latencies),
            "users": len({r["user_id"] for r in members if r["user_id"] is not None}),
        }
    return out


def test_request_metrics_match_a_brute_force_count() -> None:
    rows, frame = _random_day()
    table = request_metrics(frame, DAY, "UTC", slow_ms=10_000.0)
    assert list(table.columns) == list(REQUEST_METRIC_COLUMNS)
    expected = _expected(rows, 10_000.0)
    actual = {(r["dimension"], r["value"]): r for r in table.to_dict("records")}
    assert set(actual) == set(expected)
    assert table["dimension"].tolist()[:1] == ["all"]
    for key, figures in expected.items():
        for column, value in figures.items():
            got = actual[key][column]
            if isinstance(value, str | int):
                assert got == value, (key, column)
            else:
                assert got == pytest.approx(value, rel=1e-9), (key, column)
    assert expected[("all", None)]["concurrency_peak"] >= 3  # the bunched minutes overlap


def test_concurrency_counts_a_request_until_its_end_only() -> None:
    frame = requests(
        {"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 2000.0},
        {"timestamp": "2026-11-20T10:00:01Z", "latency_ms": 1000.0},  # ends at 10:00:02, as the first
        {"timestamp": "2026-11-20T10:00:02Z", "latency_ms": 500.0},  # starts when both end
        {"timestamp": "2026-11-20T10:00:03Z", "latency_ms": None},  # no latency: not in flight
    )
    row = request_metrics(frame, DAY, "UTC").iloc[0]
    assert (row["concurrency_peak"], row["concurrency_peak_at"]) == (2, "2026-11-20T10:00:01+00:00")
    assert row["concurrency_p95"] == 0.0  # in flight at 3 of 86,400 second starts
    assert (row["peak_rps"], row["peak_second"]) == (1, "2026-11-20T10:00:00+00:00")


def test_an_empty_day_has_one_all_row_without_figures() -> None:
    table = request_metrics(requests(), DAY, "UTC")
    row = table.iloc[0]
    assert len(table) == 1 and (row["dimension"], row["requests"], row["peak_rpm"]) == ("all", 0, 0)
    assert row["peak_minute"] is None and pd.isna(row["concurrency_peak"]) and np.isnan(row["latency_p50_ms"])


def test_minutes_in_local_time_including_a_daylight_saving_day() -> None:
    rows, frame = _random_day(seed=3, n=200)
    table = minute_metrics(frame, DAY, "UTC")
    per_minute = Counter(r["_start_ms"] // 60_000 for r in rows)
    failed = Counter(r["_start_ms"] // 60_000 for r in rows if _failed(r))
    assert len(table) == 1440
    assert table["requests"].tolist() == [per_minute[m] for m in range(1440)]
    assert table["errors"].tolist() == [failed[m] for m in range(1440)]
    assert table["hour"].tolist() == [m // 60 for m in range(1440)]
    # New York falls back on 2026-11-01: 25 hours, the 01:xx hour twice.
    fall = minute_metrics(requests({"timestamp": "2026-11-01T06:30:00Z"}), dt.date(2026, 11, 1), "America/New_York")
    assert len(fall) == 1500 and (fall["hour"] == 1).sum() == 120
    assert fall.loc[fall["requests"] == 1, "start"].tolist() == [pd.Timestamp("2026-11-01T06:30:00Z")]


def test_error_kinds_from_status_and_error_type() -> None:
    frame = requests(
        {"timestamp": "2026-11-20T01:00:00Z", "status_code": 200},
        {"timestamp": "2026-11-20T01:00:01Z", "status_code": 429},
        {"timestamp": "2026-11-20T01:00:02Z", "status_code": 400, "error_type": "rate_limit_exceeded"},
        {"timestamp": "2026-11-20T01:00:03Z", "status_code": 504},
        {"timestamp": "2026-11-20T01:00:04Z", "status_code": None, "error_type": "Request timed out"},
        {"timestamp": "2026-11-20T01:00:05Z", "status_code": 503},
        {"timestamp": "2026-11-20T01:00:06Z", "status_code": 404},
        {"timestamp": "2026-11-20T01:00:07Z", "status_code": 400, "error_type": "content_filter"},
        {"timestamp": "2026-11-20T01:00:08Z", "status_code": 200, "error_type": "cancelled"},
        {"timestamp": "2026-11-20T01:00:09Z", "status_code": 500, "error_type": "empty_response"},
    )
    assert error_kind(frame).tolist() == [
        None,
        "rate_limit",
        "rate_limit",
        "timeout",
        "timeout",
        "server",
        "client",
        "content_filter",
        "other",
        "server",
    ]
    table = error_kinds(frame, DAY, "UTC")
    assert table["error_kind"].tolist() == list(ERROR_KINDS)
    counts = {"rate_limit": 2, "timeout": 2, "server": 2, "content_filter": 1, "client": 1, "other": 1}
    assert dict(zip(table["error_kind"], table["errors"], strict=True)) == {k: counts.get(k, 0) for k in ERROR_KINDS}
    assert table["share_of_errors"].tolist() == [counts.get(k, 0) / 9 for k in ERROR_KINDS]
    assert table["share_of_requests"].tolist() == [counts.get(k, 0) / 10 for k in ERROR_KINDS]


def test_failed_and_slowest_requests_carry_ids_not_content() -> None:
    rows, frame = _random_day(seed=11, n=300)
    failed = failed_requests(frame, DAY, "UTC")
    expected = sorted((r["_start_ms"], r["request_id"]) for r in rows if _failed(r))
    assert failed["request_id"].tolist() == [rid for _, rid in expected]
    assert "content" not in failed.columns and "metadata" not in failed.columns
    slowest = slowest_requests(frame, DAY, "UTC", count=5)
    ranked = sorted((r for r in rows if r["latency_ms"] is not None), key=lambda r: (-r["latency_ms"], r["_start_ms"]))[
        :5
    ]
    assert slowest["request_id"].tolist() == [r["request_id"] for r in ranked]
    assert slowest["rank"].tolist() == [1, 2, 3, 4, 5]
    assert slowest["latency_ms"].tolist() == [r["latency_ms"] for r in ranked]


def test_requests_without_a_latency_are_never_among_the_slowest() -> None:
    """A log with latencies on 2 of 300 requests has 2 slowest requests, and one without latencies has none."""
    rows, frame = _random_day(seed=12, n=300)
    timed = frame["latency_ms"].notna()
    kept = frame.index[timed][:2]
    few = frame.assign(latency_ms=frame["latency_ms"].where(frame.index.isin(kept)))
    assert sorted(slowest_requests(few, DAY, "UTC", count=5)["request_id"]) == sorted(frame.loc[kept, "request_id"])
    assert slowest_requests(frame.assign(latency_ms=float("nan")), DAY, "UTC").empty
