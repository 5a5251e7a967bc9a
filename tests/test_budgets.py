"""Budgets: use, trailing mean and month-end forecast by hand, when each alert fires, and the bill-gap alert."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from chatpulse.alerting.evaluate import ALERT_COLUMNS, update_alerts
from chatpulse.alerting.spend import (
    BREACH_COLUMNS,
    STATUS_COLUMNS,
    bill_gap_breaches,
    budget_breaches,
    budget_state,
    budget_status,
    history_start,
)
from chatpulse.reports.alerts import alert_summary
from chatpulse.spendconfig import Budget

TEAM = Budget(period="month", usd=100.0, dimension="team", value="search")
OVERALL_DAY = Budget(period="day", usd=50.0)


def daily(spend: dict[str, float], team: dict[str, float] | None = None) -> pd.DataFrame:
    """dimension_daily rows: an overall row per day run with `spend`, and team=search rows with `team`."""
    rows = [{"day": d, "dimension": "all", "value": None, "bucket": "all", "spend_usd": s, "requests": 10}
            for d, s in spend.items()]  # fmt: skip
    rows += [
        {"day": d, "dimension": "team", "value": "search", "bucket": "value", "spend_usd": s, "requests": 3}
        for d, s in (team or {}).items()
    ]
    rows.append({"day": next(iter(spend)), "dimension": "team", "value": "other-team", "bucket": "value",
                 "spend_usd": 1000.0, "requests": 1})  # fmt: skip
    return pd.DataFrame(rows)


def nov(day: int) -> str:
    return date(2026, 11, day).isoformat()


def test_month_state_by_hand() -> None:
    # Run: Nov 10, 12, 13, 14, 15 (11 not run); search spends 4, 6, NaN (unknown: 0), 8, 10 on them.
    team = {nov(10): 4.0, nov(12): 6.0, nov(13): np.nan, nov(14): 8.0, nov(15): 10.0}
    frame = daily({d: 50.0 for d in team}, team)
    state = budget_state(TEAM, frame, date(2026, 11, 15))
    assert state.spend == 4 + 6 + 0 + 8 + 10
    assert state.days_run == 5 and state.days_in_period == 30 and state.days_left == 15
    # The trailing window is Nov 9-15: the 5 days run in it.
    assert state.trailing_mean == pytest.approx((4 + 6 + 0 + 8 + 10) / 5)
    assert state.forecast == pytest.approx(28 + 15 * 28 / 5)
    assert state.requests == 3 * 5


def test_the_trailing_mean_crosses_the_month_and_the_last_day_forecasts_its_spend() -> None:
    team = {"2026-10-30": 7.0, "2026-10-31": 9.0, nov(1): 2.0, nov(2): 4.0}
    state = budget_state(TEAM, daily({d: 0.0 for d in team}, team), date(2026, 11, 2))
    assert state.spend == 6.0 and state.days_run == 2
    assert state.trailing_mean == pytest.approx((7 + 9 + 2 + 4) / 4)
    assert state.forecast == pytest.approx(6 + 28 * 22 / 4)
    end = budget_state(TEAM, daily({"2026-10-31": 0.0}, {"2026-10-31": 9.0}), date(2026, 10, 31))
    assert (end.days_left, end.forecast, end.spend) == (0, 9.0, 9.0)
    assert history_start(date(2026, 11, 2)) == date(2026, 10, 26)
    assert history_start(date(2026, 11, 20)) == date(2026, 11, 1)


def test_day_state_is_the_days_spend() -> None:
    frame = daily({nov(19): 40.0, nov(20): 45.5})
    state = budget_state(OVERALL_DAY, frame, date(2026, 11, 20))
    assert (state.spend, state.days_run, state.days_left) == (45.5, 1, 0) and np.isnan(state.forecast)
    status = budget_status([OVERALL_DAY, TEAM], frame, date(2026, 11, 20))
    assert list(status.columns) == list(STATUS_COLUMNS)
    row = status.iloc[0]
    assert (row["budget"], row["dimension"], row["used_share"]) == ("all day", "all", 45.5 / 50)
    assert status.iloc[1]["budget"] == "team=search month" and status.iloc[1]["spend_usd"] == 0.0


def _rules(breaches: pd.DataFrame) -> list[tuple[str, str, float, float]]:
    return [(r.rule, r.severity, round(r.value, 6), r.threshold) for r in breaches.itertuples()]


def test_a_month_alert_fires_on_the_day_each_share_is_passed_and_the_forecast_first_crosses() -> None:
    budget = Budget(period="month", usd=100.0, dimension="team", value="search", shares=(0.5, 0.8, 1.0))
    # search spends 10 a day from Nov 1: the forecast (spend + 10 x days left) is 300 > 100 at once.
    spend = {nov(d): 10.0 for d in range(1, 12)}
    frame = daily({d: 0.0 for d in spend}, spend)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fired = {d: _rules(budget_breaches([budget], frame, date(2026, 11, d), "UTC", now)) for d in range(1, 12)}
    name = "budget team=search month"
    assert fired[1] == [(f"{name} forecast", "warn", 300.0, 100.0)]
    assert fired[5] == [(f"{name} 50%", "warn", 50.0, 50.0)]  # 50 >= 50: passed on the 5th, not again on the 6th
    assert fired[8] == [(f"{name} 80%", "warn", 80.0, 80.0)]
    assert fired[10] == [(f"{name} 100%", "error", 100.0, 100.0)]
    assert all(not fired[d] for d in (2, 3, 4, 6, 7, 9, 11))


def test_the_forecast_alert_waits_for_a_crossing_and_stays_quiet_once_the_spend_has_passed() -> None:
    budget = Budget(period="month", usd=100.0, dimension="team", value="search", shares=(1.0,))
    # 2 a day for 10 days (forecast 2 x 30 = 60), then 20 a day: the forecast crosses on Nov 11.
    spend = {nov(d): 2.0 if d <= 10 else 20.0 for d in range(1, 16)}
    frame = daily({d: 0.0 for d in spend}, spend)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fired = {d: _rules(budget_breaches([budget], frame, date(2026, 11, d), "UTC", now)) for d in range(1, 16)}
    for d in range(1, 16):
        state = budget_state(budget, frame, date(2026, 11, d))
        before = budget_state(budget, frame, date(2026, 11, d - 1)) if d > 1 else None
        crossing = state.forecast > 100 and (before is None or before.forecast <= 100) and state.spend < 100
        assert any(rule.endswith("forecast") for rule, *_ in fired[d]) == crossing, d
    # By hand: Nov 11 spend 40, trailing mean (2x6 + 20)/7, 19 days left.
    assert budget_state(budget, frame, date(2026, 11, 11)).forecast == pytest.approx(40 + 19 * 32 / 7)
    assert [d for d in fired if fired[d]] == [11, 14]  # forecast crosses on the 11th; spend reaches 100 on the 14th
    assert fired[14] == [("budget team=search month 100%", "error", 100.0, 100.0)]


def test_a_day_budget_fires_every_day_it_is_passed_with_the_days_window() -> None:
    frame = daily({nov(19): 45.0, nov(20): 45.0, nov(21): 10.0})
    evening = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    today = budget_breaches([OVERALL_DAY], frame, date(2026, 11, 20), "Asia/Shanghai", evening)
    assert list(today.columns) == list(BREACH_COLUMNS)
    assert _rules(today) == [("budget all day 80%", "warn", 45.0, 40.0)]
    row = today.iloc[0]
    assert row["window_start"] == pd.Timestamp("2026-11-19 16:00", tz="UTC")  # Shanghai's midnight
    assert row["window_end"] == pd.Timestamp("2026-11-20 16:00", tz="UTC")
    assert not row["ongoing"] and row["metric"] == "budget_spend_usd"
    assert _rules(budget_breaches([OVERALL_DAY], frame, date(2026, 11, 19), "UTC", evening)) == _rules(today)
    during = budget_breaches([OVERALL_DAY], frame, date(2026, 11, 20), "UTC", evening)
    assert during.iloc[0]["ongoing"]  # the day is not over at 20:00 UTC
    assert budget_breaches([OVERALL_DAY], frame, date(2026, 11, 21), "UTC", evening).empty


def test_a_passed_month_budget_reads_passed_not_resolved_while_its_spend_stays_over() -> None:
    """The demo's case: engineering's $9 month budget passed on a day run after it ended."""
    budget = Budget(period="month", usd=9.0, dimension="team", value="search", shares=(1.0,))
    spend = {nov(18): 4.0, nov(19): 4.0, nov(20): 1.97, nov(21): 0.5}
    frame = daily({d: 0.0 for d in spend}, spend)
    name = "budget team=search month 100%"
    morning = datetime(2026, 11, 21, 6, tzinfo=UTC)  # the schedule's run of Nov 20, the day over
    breaches = budget_breaches([budget], frame, date(2026, 11, 20), "UTC", morning)
    breaches = pd.concat([breaches, bill_gap_breaches(_gap(0.2), 0.05, date(2026, 11, 20), "UTC", morning)])
    alerts = update_alerts(pd.DataFrame(columns=list(ALERT_COLUMNS)), breaches, morning)
    assert alerts["resolved_at"].notna().all()  # one day's alerts: its end closes them
    rows = {row["rule"]: row for row in alert_summary(alerts, "UTC").rows}
    # 4 + 4 < 9 <= 4 + 4 + 1.97: passed on the 20th, and still over on the 21st, when nothing fires again.
    assert rows[name]["status"] == "passed" and rows[name]["value"] == "$9.97"
    assert rows["bill gap openai"]["status"] == "resolved"  # a day's own gap is over with the day
    assert "does not mean the spend fell back" in alert_summary(alerts, "UTC").note
    status = budget_status([budget], frame, date(2026, 11, 21)).iloc[0]
    assert status["used_share"] == pytest.approx((4 + 4 + 1.97 + 0.5) / 9) and status["used_share"] > 1
    assert budget_breaches([budget], frame, date(2026, 11, 21), "UTC", morning).empty
    assert alert_summary(alerts[alerts["rule"] != name], "UTC").note == ""


def _gap(share: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider": ["openai"],
            "scope": ["all"],
            "logged_gap_share": [share],
            "estimated_gap_share": [0.0],
            "requests": [9],
            "logged_requests": [9],
            "unpriced_requests": [0],
        }
    )


def test_the_bill_gap_alert_uses_the_cost_the_log_knows_for_every_request() -> None:
    """The logged gap where every request logged a cost, else the estimated one where every request has one,
    else the logged one where any was logged: mistral logged 2 of 3 costs, and its -40% was not the bill's."""
    reconciliation = pd.DataFrame(
        {
            "provider": ["openai", "openai", "anthropic", "google", "mistral", "deepseek"],
            "scope": ["all", "project", "all", "all", "all", "all"],
            "logged_gap_share": [-0.06, -0.9, np.nan, 0.01, -0.4, -0.3],
            "estimated_gap_share": [0.0, 0.0, 0.07, 0.5, 0.0, np.nan],
            "requests": [100, 10, 5, 7, 3, 3],
            "logged_requests": [100, 10, 0, 7, 2, 2],
            "unpriced_requests": [0, 0, 0, 0, 0, 1],
        }
    )
    now = datetime(2026, 11, 21, tzinfo=UTC)
    fired = bill_gap_breaches(reconciliation, 0.05, date(2026, 11, 20), "UTC", now)
    assert _rules(fired) == [
        ("bill gap openai", "warn", -0.06, 0.05),
        ("bill gap anthropic", "warn", 0.07, 0.05),
        ("bill gap deepseek", "warn", -0.3, 0.05),
    ]
    assert fired["requests"].tolist() == [100, 5, 3] and set(fired["metric"]) == {"bill_gap_share"}
    assert bill_gap_breaches(reconciliation.iloc[0:0], 0.05, date(2026, 11, 20), "UTC", now).empty


def test_budget_alert_rules_fit_the_alert_table() -> None:
    longest = Budget(period="month", usd=1.0, name="x" * 40, shares=(10.0,))
    frame = daily({nov(1): 0.0}, {nov(1): 0.0}).assign(spend_usd=100.0)
    rules = budget_breaches([longest], frame, date(2026, 11, 1), "UTC", datetime(2026, 12, 1, tzinfo=UTC))["rule"]
    assert rules.str.len().max() <= 64  # alerts.rule is VARCHAR(64) on PostgreSQL
    assert sorted(rules) == [f"budget {'x' * 40} 1000%"]  # the spend passed 10x the budget: no forecast alert
