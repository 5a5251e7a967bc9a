"""Active users over rolling windows, new versus returning, trends, and their correctness
when days are run out of order."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from chatpulse.config import load_settings
from chatpulse.metrics.trends import HEADLINES, TREND_COLUMNS, headlines, trends
from chatpulse.metrics.users import USER_METRIC_COLUMNS, user_metrics
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

from fixtures import write_jsonl


def _day(offset: int) -> str:
    return (date(2026, 11, 1) + timedelta(days=offset)).isoformat()


# Who was active on which day (offsets from 2026-11-01), with their request counts.
ACTIVE = {0: {"a": 3, "b": 1}, 5: {"c": 2}, 20: {"a": 1, "d": 4}, 29: {"a": 2, "e": 1}, 30: {"e": 5}}


def _daily_users() -> pd.DataFrame:
    rows = [
        {"day": _day(d), "user_id": u, "requests": n, "total_tokens": 10 * n, "cost_estimate_usd": 0.5 * n}
        for d, users in ACTIVE.items()
        for u, n in users.items()
    ]
    return pd.DataFrame(rows)


def test_rolling_active_users_and_new_versus_returning() -> None:
    frame = _daily_users()
    first_seen = frame.groupby("user_id")["day"].min()
    days = [_day(d) for d in (0, 5, 20, 29, 30)]
    table = user_metrics(frame, first_seen, set(days) | {_day(25)}, days).set_index("day")
    assert list(table.reset_index().columns) == list(USER_METRIC_COLUMNS)
    for d in (0, 5, 20, 29, 30):
        row = table.loc[_day(d)]
        week = set().union(*(ACTIVE[x] for x in ACTIVE if d - 6 <= x <= d))
        month = set().union(*(ACTIVE[x] for x in ACTIVE if d - 27 <= x <= d))
        earlier = set().union(set(), *(ACTIVE[x] for x in ACTIVE if x < d))
        today = ACTIVE[d]
        assert (row["active_users"], row["wau"], row["mau"]) == (len(today), len(week), len(month))
        assert row["new_users"] == len(set(today) - earlier)
        assert row["returning_users"] == len(set(today) & earlier)
        assert row["requests_per_user_mean"] == pytest.approx(np.mean(list(today.values())))
        assert row["top_user_share"] == pytest.approx(max(today.values()) / sum(today.values()))
    # Day 29's 28-day window is days 2..29: c (day 5), a and d (20), a and e (29).
    assert table.loc[_day(29), "mau"] == 4
    assert table.loc[_day(30), ["days_7", "days_28"]].tolist() == [3, 5]  # 25, 29, 30; and 5, 20


def test_trends_deltas_and_rolling_means_skip_days_not_run() -> None:
    values = pd.DataFrame(
        {"requests": [10.0, 20.0, 0.0, 40.0], "error_rate": [0.1, np.nan, 0.2, 0.3]},
        index=[_day(0), _day(1), _day(6), _day(7)],
    )
    table = trends(values, [_day(7), _day(6)])
    assert list(table.columns) == list(TREND_COLUMNS)
    rows = {(r["day"], r["metric"]): r for r in table.to_dict("records")}
    r = rows[(_day(7), "requests")]
    assert (r["value"], r["previous_day"], r["day_over_day"]) == (40.0, 0.0, 40.0)
    assert np.isnan(r["day_over_day_pct"])  # against 0
    assert (r["week_ago"], r["week_over_week"], r["week_over_week_pct"]) == (10.0, 30.0, 3.0)
    assert r["mean_7d"] == pytest.approx((20 + 0 + 40) / 3) and r["days_7"] == 3  # days 1..7
    assert r["mean_28d"] == pytest.approx(70 / 4) and r["days_28"] == 4
    e = rows[(_day(6), "error_rate")]
    assert np.isnan(e["previous_day"]) and np.isnan(e["day_over_day"])  # day 5 was not run
    assert e["mean_7d"] == pytest.approx(0.15) and e["days_7"] == 2  # day 1 has no rate


def test_logged_cost_trend_is_missing_not_zero_on_a_day_that_logged_none() -> None:
    days = [_day(0), _day(1)]
    # Day 0 ran but no request logged a cost: daily_metrics' plain sum says 0, model_costs NULL per model.
    tables = {name: pd.DataFrame({"day": days}) for name, _ in HEADLINES.values()}
    tables["model_costs"] = pd.DataFrame({"day": [_day(0), _day(0), _day(1), _day(1)], "model": ["a", "b"] * 2})
    for name, column in HEADLINES.values():
        tables[name][column] = np.nan
    tables["daily_metrics"]["cost_usd"] = [0.0, 1.5]
    tables["model_costs"]["cost_logged_usd"] = [np.nan, np.nan, 1.0, 0.5]
    values = headlines(tables)
    assert np.isnan(values.loc[_day(0), "cost_usd"]) and values.loc[_day(1), "cost_usd"] == 1.5
    rows = trends(values, days).set_index(["day", "metric"])
    none, logged = rows.loc[(_day(0), "cost_usd")], rows.loc[(_day(1), "cost_usd")]
    assert np.isnan(none["value"]) and np.isnan(none["mean_7d"]) and none["days_7"] == 0
    assert np.isnan(logged["previous_day"]) and np.isnan(logged["day_over_day"])
    assert (logged["mean_7d"], logged["days_7"]) == (1.5, 1)


def test_the_spend_trend_is_the_cost_the_cost_card_shows() -> None:
    """The Cost card shows spend (logged, else estimated) where only some requests logged a cost; the trends
    showed only the logged part under "cost" ($0.06 beside a $0.39 card, a new user's day)."""
    days = [_day(0), _day(1)]
    tables = {name: pd.DataFrame({"day": days}) for name, _ in HEADLINES.values()}
    tables["model_costs"] = pd.DataFrame({"day": days, "model": ["a", "a"]})
    for name, column in HEADLINES.values():
        tables[name][column] = np.nan
    tables["daily_metrics"]["spend_usd"] = [1.08315, 0.39015]
    tables["model_costs"]["cost_logged_usd"] = [0.95, 0.06]
    rows = trends(headlines(tables), days).set_index(["day", "metric"])
    spend = rows.loc[(_day(1), "spend_usd")]
    assert (spend["value"], spend["previous_day"]) == (0.39015, 1.08315)
    assert spend["day_over_day_pct"] == pytest.approx(0.39015 / 1.08315 - 1)
    assert rows.loc[(_day(1), "cost_usd"), "value"] == 0.06


def test_a_days_cost_is_the_same_sum_whatever_order_the_warehouse_returns_its_models_in() -> None:
    # Summed in floats, 0.1, 0.2, 0.3 and 0.3, 0.2, 0.1 differ in the last bit. A later day's trend read a day's
    # rows in another order than that day's own run, and its 7-day mean differed (PostgreSQL, days at once).
    tables = {name: pd.DataFrame({"day": [_day(0)]}) for name, _ in HEADLINES.values()}
    for name, column in HEADLINES.values():
        tables[name][column] = np.nan
    costs = pd.DataFrame({"day": [_day(0)] * 3, "model": ["a", "b", "c"]})
    for name, column in HEADLINES.values():
        if name == "model_costs":
            costs[column] = np.nan
    costs["cost_estimate_usd"] = [0.1, 0.2, 0.3]
    sums = {headlines({**tables, "model_costs": order})["cost_estimate_usd"].iloc[0] for order in (costs, costs[::-1])}
    assert len(sums) == 1 and sums.pop() == pytest.approx(0.6)  # read in either order: one sum, to the last bit


def _requests(day: str, users: list[str]) -> list[dict]:
    return [
        {
            "request_id": f"{day}-{i}",
            "timestamp": f"{day}T10:00:0{i}Z",
            "user_id": u,
            "model": "gpt-4o",
            "status_code": 200,
            "latency_ms": 100,
            "prompt_tokens": 10,
            "completion_tokens": 5,
        }
        for i, u in enumerate(users)
    ]


@pytest.mark.pipeline
def test_a_day_run_late_corrects_the_later_days(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "landing" / "requests-1.jsonl",
        [
            *_requests("2026-11-20", ["u1", "u2"]),
            *_requests("2026-11-22", ["u1", "u3", "u3"]),
        ],
    )
    (tmp_path / "chatpulse.yaml").write_text("data_home: .\nstart_date: 2026-11-01\n")
    config = tmp_path / "chatpulse.yaml"
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    for day in ("2026-11-22", "2026-11-20"):  # the later day first
        assert job.execute_in_process(partition_key=day, instance=DagsterInstance.ephemeral()).success
        if day == "2026-11-22":
            alone = warehouse.read("user_metrics", day).iloc[0]
            assert (alone["wau"], alone["new_users"]) == (2, 2)
    later = warehouse.read("user_metrics", "2026-11-22").iloc[0]
    assert (later["active_users"], later["wau"], later["new_users"], later["returning_users"]) == (2, 3, 1, 1)
    assert (later["days_7"], later["days_28"]) == (2, 2)
    trend = warehouse.read("daily_trends", "2026-11-22").set_index("metric")
    assert trend.loc["requests", ["value", "mean_7d", "days_7"]].tolist() == [3.0, 2.5, 2]
    assert trend.loc["wau", "value"] == 3.0 and pd.isna(trend.loc["requests", "previous_day"])
    assert trend.loc["cost_estimate_usd", "value"] == pytest.approx(3 * (10 * 2.5 + 5 * 10.0) / 1e6)
    early = warehouse.read("user_metrics", "2026-11-20").iloc[0]
    assert (early["active_users"], early["new_users"]) == (2, 2)
    assert len(warehouse.read("daily_trends", "2026-11-20")) == len(warehouse.read("daily_trends", "2026-11-22"))
