"""Hourly and daily metrics: counts, errors, peaks, percentiles, local-day boundaries."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from chatpulse.behaviour.sessions import build_sessions
from chatpulse.metrics.daily import DAILY_COLUMNS, HOURLY_COLUMNS, daily_metrics, hourly_metrics

from fixtures import METRIC_DAY as DAY
from fixtures import clean_requests as requests
from fixtures import no_messages


def at(time: str, **fields) -> dict:
    return {"timestamp": f"2026-11-20T{time}Z", **fields}


# Hour 10 UTC: three requests in minute 10:03, one in 10:04, two in 10:30; hour 11: one.
SAMPLE = requests(
    at(
        "10:03:00",
        user_id="u1",
        session_id="s1",
        model="m1",
        status_code=200,
        latency_ms=100.0,
        ttft_ms=10.0,
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost_usd=0.25,
    ),
    at(
        "10:03:20",
        user_id="u1",
        session_id="s1",
        model="m1",
        status_code=429,
        latency_ms=200.0,
        ttft_ms=20.0,
        prompt_tokens=20,
        completion_tokens=None,
        total_tokens=20,
        cost_usd=0.5,
    ),
    at(
        "10:03:59.999",
        user_id="u2",
        session_id="s2",
        model="m2",
        status_code=200,
        error_type="timeout",
        latency_ms=300.0,
    ),
    at(
        "10:04:00",
        user_id="u2",
        session_id="s2",
        model="m2",
        status_code=399,
        latency_ms=400.0,
        ttft_ms=40.0,
        prompt_tokens=1,
        completion_tokens=1,
        total_tokens=2,
    ),
    at("10:30:00", user_id=None, session_id="s3", model=None, status_code=None, latency_ms=1000.0),
    at("10:30:30", user_id="u3", session_id="s3", model="m1", status_code=500, latency_ms=None, ttft_ms=100.0),
    at(
        "11:00:00",
        user_id="u1",
        session_id="s4",
        model="m1",
        status_code=200,
        latency_ms=50.0,
        prompt_tokens=3,
        completion_tokens=4,
        total_tokens=7,
        cost_usd=1.0,
    ),
)


def test_hourly_counts_errors_and_peak():
    hourly = hourly_metrics(SAMPLE, DAY, "UTC")
    assert list(hourly.columns) == list(HOURLY_COLUMNS)
    assert hourly["hour"].tolist() == list(range(24))
    assert set(hourly["day"]) == {"2026-11-20"}
    ten, eleven = hourly.iloc[10], hourly.iloc[11]
    assert (ten["requests"], ten["errors"], ten["peak_rpm"]) == (6, 3, 3)  # 429, error_type only, 500
    assert ten["error_rate"] == 0.5
    assert (eleven["requests"], eleven["errors"], eleven["peak_rpm"], eleven["error_rate"]) == (1, 0, 1, 0.0)
    assert hourly["requests"].sum() == 7
    quiet = hourly.drop(index=[10, 11])
    assert (quiet[["requests", "errors", "peak_rpm", "total_tokens"]] == 0).all().all()
    assert quiet[["error_rate", "latency_mean_ms", "latency_p99_ms"]].isna().all().all()


def test_hourly_latency_percentiles_and_tokens():
    ten = hourly_metrics(SAMPLE, DAY, "UTC").iloc[10]
    latencies = [100.0, 200.0, 300.0, 400.0, 1000.0]  # the NaN latency is left out
    assert ten["latency_mean_ms"] == 400.0
    assert ten["latency_p50_ms"] == 300.0
    assert ten["latency_p95_ms"] == pytest.approx(880.0)  # 400 + 0.8 * (1000 - 400)
    assert ten["latency_p95_ms"] == np.percentile(latencies, 95)
    assert ten["latency_p99_ms"] == pytest.approx(976.0)  # 400 + 0.96 * (1000 - 400)
    assert (ten["prompt_tokens"], ten["completion_tokens"], ten["total_tokens"]) == (31, 6, 37)


def test_daily_metrics():
    sessions = build_sessions(SAMPLE, no_messages())
    daily = daily_metrics(SAMPLE, sessions, DAY, "UTC")
    assert list(daily.columns) == list(DAILY_COLUMNS)
    assert len(daily) == 1
    row = daily.iloc[0].to_dict()
    assert row["day"] == "2026-11-20"
    assert (row["requests"], row["errors"], row["peak_rpm"]) == (7, 3, 3)
    assert row["error_rate"] == 3 / 7
    assert row["peak_minute"] == "2026-11-20T10:03:00+00:00"
    latencies = [100.0, 200.0, 300.0, 400.0, 1000.0, 50.0]
    assert row["latency_mean_ms"] == 2050.0 / 6
    assert row["latency_p50_ms"] == 250.0
    assert row["latency_p95_ms"] == pytest.approx(850.0)  # 400 + 0.75 * 600
    assert row["latency_p99_ms"] == np.percentile(latencies, 99)
    assert row["ttft_p50_ms"] == 30.0  # of 10, 20, 40, 100
    assert row["ttft_p95_ms"] == pytest.approx(91.0)  # 40 + 0.85 * 60
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (34, 10, 44)
    assert row["cost_usd"] == 1.75
    assert (row["users"], row["models"], row["sessions"]) == (3, 2, 4)
    # Durations (a request ends at timestamp + latency): s1 10:03:00 -> 10:03:20.2 is 20.2 s,
    # s2 10:03:59.999 -> 10:04:00.4 is 0.401 s, s3 10:30:00 -> 10:30:30 is 30 s (the 10:30:01
    # end is earlier), s4 0.05 s.
    durations = [20.2, 0.401, 30.0, 0.05]
    assert row["session_duration_p50_s"] == pytest.approx((0.401 + 20.2) / 2)
    assert row["session_duration_p50_s"] == pytest.approx(np.percentile(durations, 50))
    assert row["session_duration_p95_s"] == pytest.approx(20.2 + 0.85 * (30.0 - 20.2))
    assert row["turns_mean"] == 7 / 4


def test_peak_minute_ties_take_the_earliest_and_use_local_time():
    reqs = requests(at("03:10:00"), at("03:10:30"), at("01:05:00"), at("01:05:59"))
    daily = daily_metrics(reqs, build_sessions(reqs, no_messages()), DAY, "Asia/Shanghai")
    assert daily["peak_rpm"].iloc[0] == 2
    assert daily["peak_minute"].iloc[0] == "2026-11-20T09:05:00+08:00"


def test_shanghai_day_and_hour_boundaries():
    reqs = requests(
        {"timestamp": "2026-11-19T15:59:59.999Z"},  # 23:59:59.999 on the 19th: not this day
        {"timestamp": "2026-11-19T16:00:00Z"},  # 00:00 local: hour 0
        {"timestamp": "2026-11-19T16:59:59.999Z"},  # hour 0
        {"timestamp": "2026-11-19T17:00:00Z"},  # hour 1
        {"timestamp": "2026-11-20T15:59:59Z"},  # 23:59:59 local: hour 23
        {"timestamp": "2026-11-20T16:00:00Z"},  # next local day
    )
    hourly = hourly_metrics(reqs, DAY, "Asia/Shanghai")
    assert hourly["requests"].tolist() == [2, 1] + [0] * 21 + [1]
    assert hourly["peak_rpm"].tolist() == [1, 1] + [0] * 21 + [1]
    assert daily_metrics(reqs, build_sessions(reqs, no_messages()), DAY, "Asia/Shanghai")["requests"].iloc[0] == 4


def test_daylight_saving_days_still_have_24_rows():
    # 2026-11-01 New York falls back: 01:30 EDT (05:30Z) and 01:30 EST (06:30Z) are both local hour 1.
    fall = requests(
        {"timestamp": "2026-11-01T05:30:00Z"},
        {"timestamp": "2026-11-01T06:30:00Z"},
        {"timestamp": "2026-11-02T04:59:00Z"},
    )  # 23:59 EST
    hourly = hourly_metrics(fall, dt.date(2026, 11, 1), "America/New_York")
    assert len(hourly) == 24
    assert (hourly["requests"][1], hourly["peak_rpm"][1], hourly["requests"][23]) == (2, 1, 1)
    # 2026-03-08 springs forward: 02:00 does not exist, 07:00Z is 03:00 EDT.
    spring = requests({"timestamp": "2026-03-08T06:59:00Z"}, {"timestamp": "2026-03-08T07:00:00Z"})
    hourly = hourly_metrics(spring, dt.date(2026, 3, 8), "America/New_York")
    assert hourly["requests"].tolist() == [0, 1, 0, 1] + [0] * 20


def test_sessions_count_toward_the_day_they_start():
    reqs = requests(
        {"timestamp": "2026-11-19T23:50:00Z", "session_id": "late", "latency_ms": 20 * 60_000.0},
        {"timestamp": "2026-11-20T00:10:00Z", "session_id": "early"},
    )
    daily = daily_metrics(reqs, build_sessions(reqs, no_messages()), DAY, "UTC")
    assert (daily["requests"].iloc[0], daily["sessions"].iloc[0]) == (1, 1)


def test_empty_inputs():
    hourly = hourly_metrics(requests(), DAY, "UTC")
    assert len(hourly) == 24
    assert hourly[["requests", "errors", "peak_rpm", "prompt_tokens"]].sum().sum() == 0
    assert hourly[["error_rate", "latency_mean_ms", "latency_p50_ms"]].isna().all().all()
    row = daily_metrics(requests(), build_sessions(requests(), no_messages()), DAY, "UTC").iloc[0]
    assert (row["requests"], row["errors"], row["peak_rpm"], row["users"], row["sessions"]) == (0, 0, 0, 0, 0)
    assert (row["total_tokens"], row["unmetered_requests"], row["estimated_requests"]) == (0, 0, 0)
    assert row["peak_minute"] is None
    for column in (
        "error_rate",
        "latency_mean_ms",
        "latency_p99_ms",
        "ttft_p50_ms",
        "session_duration_p50_s",
        "turns_mean",
        "cost_usd",  # no request logged a cost: missing, not $0
        "cost_estimate_usd",
    ):
        assert math.isnan(row[column]), column


def test_random_day_matches_plain_python():
    rng = random.Random(7)
    start = pd.Timestamp("2026-11-19T16:00:00Z")  # local midnight in Shanghai
    rows = [
        {
            "timestamp": start + pd.Timedelta(seconds=rng.randrange(-3600, 25 * 3600)),
            "status_code": rng.choice([200, 200, 404, None]),
            "latency_ms": rng.choice([None, float(rng.randrange(1, 5000))]),
            "total_tokens": rng.choice([None, rng.randrange(0, 100)]),
        }
        for _ in range(3000)
    ]
    hourly = hourly_metrics(requests(*rows), DAY, "Asia/Shanghai")
    in_day = [r for r in rows if pd.Timedelta(0) <= r["timestamp"] - start < pd.Timedelta(days=1)]
    hour_of = {id(r): int((r["timestamp"] - start) // pd.Timedelta(hours=1)) for r in in_day}
    per_minute = Counter((r["timestamp"] - start) // pd.Timedelta(minutes=1) for r in in_day)
    for hour in range(24):
        mine = [r for r in in_day if hour_of[id(r)] == hour]
        row = hourly.iloc[hour]
        assert row["requests"] == len(mine)
        assert row["errors"] == sum(r["status_code"] == 404 for r in mine)
        assert row["peak_rpm"] == max(per_minute[hour * 60 + m] for m in range(60))
        assert row["total_tokens"] == sum(r["total_tokens"] or 0 for r in mine)
        latencies = [r["latency_ms"] for r in mine if r["latency_ms"] is not None]
        assert row["latency_p95_ms"] == pytest.approx(np.percentile(latencies, 95), rel=1e-12)
