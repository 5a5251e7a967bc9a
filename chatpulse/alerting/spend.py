"""Spend alerts: budgets (use and month-end forecast) and the gap between the provider's bill and the log.

Pure logic over the `dimension_daily` and `cost_reconciliation` tables. The alerts come out as breach
rows of the same shape as the rules' (chatpulse.alerting.evaluate.evaluate), so the alerts asset folds
them into the one alert table, lifecycle and delivery.

A budget's spend on a day is `dimension_daily.spend_usd` of its value (or of the overall row): the logged
cost where a request has one, else its estimate (chatpulse.metrics.attribution). A month's spend so far
sums the days of the calendar month run through the day; the trailing mean is the mean daily spend over
the days run among the 7 ending on the day; the month-end forecast is the spend so far plus that mean
times the days left in the month after the day.

An alert fires on the day a threshold is passed, once per breach: a day budget on every day its spend
reaches a share of it; a month budget on the day its spend so far reaches a share (it had not by the
day before); its forecast on the day the forecast first exceeds the budget (it did not the day before,
or the month has just begun), unless the spend itself already has. Like every alert it is one day's
(the alert table and its lifecycle are per day), so it closes when that day ends although the month's
spend stays over: an alert open until the month ended would be open on days whose runs no longer see
it. The report says "passed" for such an alert, not "resolved" (chatpulse.reports.alerts).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from chatpulse.alerting.evaluate import BREACH_COLUMNS
from chatpulse.days import day_bounds
from chatpulse.spendconfig import OVERALL, Budget
from chatpulse.tables import table_columns

TRAILING_DAYS = 7
STATUS_COLUMNS = table_columns("budget_status")
SPEND, FORECAST, BILL_GAP = "budget_spend_usd", "budget_forecast_usd", "bill_gap_share"
# Metrics whose alert fires on the value's size either way (a bill above or below the log): their threshold
# reads "±5%" beside a signed value such as -5.7%.
TWO_SIDED = frozenset({BILL_GAP})
# Metrics whose alert is the day a budget's threshold was passed: it fires once and its day's end closes
# it, while the spend (or forecast) stays over for the rest of the period.
PASSED_ONCE = frozenset({SPEND, FORECAST})


@dataclass(frozen=True)
class BudgetState:
    """A budget as of the end of a day: spend (USD) in its period so far and its requests, the days of the
    period run, the trailing mean daily spend and the days left after the day (months only, else NaN and 0),
    and the forecast spend at the period's end (NaN for a day budget, or without a trailing mean)."""

    spend: float
    requests: int
    days_run: int
    days_in_period: int
    trailing_mean: float
    days_left: int
    forecast: float


def history_start(day: date) -> date:
    """The first day whose `dimension_daily` rows the budgets of `day` read: its month's first day, or the
    first day of the trailing window of the day before, whichever is earlier."""
    return min(day.replace(day=1), day - timedelta(days=TRAILING_DAYS))


def _daily_spend(daily: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """Per day run (it has an overall row): the budget's spend (unknown as 0) and requests, indexed by day."""
    run = pd.Index(sorted(set(daily.loc[daily["dimension"] == OVERALL, "day"])), name="day")
    if budget.dimension is None:
        mine = daily[daily["dimension"] == OVERALL]
    else:
        mine = daily[(daily["dimension"] == budget.dimension) & (daily["bucket"] == "value")]
        mine = mine[mine["value"] == budget.value]
    sums = mine.groupby("day")[["spend_usd", "requests"]].sum(min_count=0)
    return sums.reindex(run, fill_value=0.0).fillna(0.0)


def budget_state(budget: Budget, daily: pd.DataFrame, day: date) -> BudgetState:
    """The budget as of the end of `day`, from `dimension_daily` rows covering history_start(day) to `day`."""
    spend = _daily_spend(daily, budget)
    spend = spend[spend.index <= day.isoformat()]
    if budget.period == "day":
        today = spend[spend.index == day.isoformat()]
        return BudgetState(
            float(today["spend_usd"].sum()), int(today["requests"].sum()), len(today), 1, np.nan, 0, np.nan
        )
    first = day.replace(day=1)
    month = spend[spend.index >= first.isoformat()]
    trailing = spend[spend.index > (day - timedelta(days=TRAILING_DAYS)).isoformat()]
    mean = float(trailing["spend_usd"].mean()) if len(trailing) else np.nan
    length = calendar.monthrange(day.year, day.month)[1]
    left = length - day.day
    so_far = float(month["spend_usd"].sum())
    forecast = so_far if left == 0 else so_far + mean * left
    return BudgetState(so_far, int(month["requests"].sum()), len(month), length, mean, left, forecast)


def budget_status(budgets: Sequence[Budget], daily: pd.DataFrame, day: date) -> pd.DataFrame:
    """One `budget_status` row per budget for `day` (columns STATUS_COLUMNS): its use and forecast."""
    rows = []
    for budget in budgets:
        state = budget_state(budget, daily, day)
        rows.append(
            {
                "day": day.isoformat(),
                "budget": budget.label,
                "dimension": budget.dimension or OVERALL,
                "value": budget.value,
                "period": budget.period,
                "budget_usd": budget.usd,
                "spend_usd": state.spend,
                "used_share": state.spend / budget.usd,
                "trailing_mean_usd": state.trailing_mean,
                "forecast_usd": state.forecast,
                "forecast_share": state.forecast / budget.usd,
                "days_run": state.days_run,
                "days_in_period": state.days_in_period,
                "days_left": state.days_left,
            }
        )
    return pd.DataFrame(rows, columns=list(STATUS_COLUMNS))


def _share_name(share: float) -> str:
    return f"{share * 100:g}%"


def _breach(rule: str, metric: str, severity: str, window: tuple[pd.Timestamp, pd.Timestamp], **values: object) -> dict:
    """One breach row (without day and ongoing): a spend alert has no baseline."""
    start, end = window
    return {"rule": rule, "metric": metric, "severity": severity, "window_start": start, "window_end": end} | {
        "baseline": np.nan,
        **values,
    }


def budget_breaches(budgets: Sequence[Budget], daily: pd.DataFrame, day: date, tz: str, now: datetime) -> pd.DataFrame:
    """The budget alerts of `day` (columns BREACH_COLUMNS, see the module for when each fires).

    `daily` holds the `dimension_daily` rows from history_start(day) through `day`. A share of 1 or more
    is an error, a lower share and the forecast a warning. Each alert's window runs from the start of its
    period (local midnight of the day or of the month's first day) to the end of `day`, and stays ongoing
    while `day` has not ended at `now`.
    """
    start, end = day_bounds(day, tz)
    month_start = day_bounds(day.replace(day=1), tz)[0]
    rows = []
    for budget in budgets:
        state = budget_state(budget, daily, day)
        before = None
        if budget.period == "month" and day.day > 1:
            before = budget_state(budget, daily, day - timedelta(days=1))
        window = (start if budget.period == "day" else month_start, end)
        for share in budget.shares:
            threshold = share * budget.usd
            if state.spend >= threshold and (before is None or before.spend < threshold):
                rows.append(
                    _breach(
                        f"budget {budget.label} {_share_name(share)}",
                        SPEND,
                        "error" if share >= 1 else "warn",
                        window,
                        value=state.spend,
                        threshold=threshold,
                        requests=state.requests,
                    )
                )
        crossed = state.forecast > budget.usd and not (before is not None and before.forecast > budget.usd)
        if budget.period == "month" and budget.forecast and crossed and state.spend < budget.usd:
            rows.append(
                _breach(
                    f"budget {budget.label} forecast",
                    FORECAST,
                    "warn",
                    window,
                    value=state.forecast,
                    threshold=budget.usd,
                    requests=state.requests,
                )
            )
    return _frame(rows, day, now, end)


def bill_gap(row: Any) -> tuple[str, float]:
    """Which of the log's costs an `all` row of `cost_reconciliation` holds against the bill, and that gap's share
    of the bill (NaN when there is none): the logged cost when every request logged one, else the estimate when
    every request has one, else the logged cost where any was logged, else the estimate. A log that recorded
    the cost of some requests only would otherwise show a gap as large as the requests it did not record."""
    if row.requests and row.logged_requests == row.requests:
        return "logged", row.logged_gap_share
    if row.requests and row.unpriced_requests == 0 and pd.notna(row.estimated_gap_share):
        return "estimated", row.estimated_gap_share
    if pd.notna(row.logged_gap_share):
        return "logged", row.logged_gap_share
    return "estimated", row.estimated_gap_share


def bill_gap_breaches(
    reconciliation: pd.DataFrame, warn_share: float, day: date, tz: str, now: datetime
) -> pd.DataFrame:
    """A warning per provider whose bill of `day` differs from the log by more than `warn_share` of the bill
    (columns BREACH_COLUMNS), by the gap `bill_gap` chooses.

    `reconciliation` holds the day's `cost_reconciliation` rows; only their `all` rows are read.
    """
    start, end = day_bounds(day, tz)
    rows = []
    for row in reconciliation[reconciliation["scope"] == "all"].itertuples():
        _, gap = bill_gap(row)
        if pd.notna(gap) and abs(gap) > warn_share:
            rows.append(
                _breach(
                    f"bill gap {row.provider}",
                    BILL_GAP,
                    "warn",
                    (start, end),
                    value=float(gap),
                    threshold=warn_share,
                    requests=int(row.requests),
                )
            )
    return _frame(rows, day, now, end)


def _frame(rows: list[dict], day: date, now: datetime, end: pd.Timestamp) -> pd.DataFrame:
    ongoing = pd.Timestamp(now) < end
    return pd.DataFrame(
        [{**row, "day": day.isoformat(), "ongoing": ongoing} for row in rows], columns=list(BREACH_COLUMNS)
    )
