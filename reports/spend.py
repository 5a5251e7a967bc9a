"""The report's spend sections: who spends, each budget's use and forecast, and the provider's bill against the log.

Built from the warehouse's `dimension_daily`, `budget_status` and `cost_reconciliation` tables; each section
appears only when its part of the configuration is there (`dimensions`, `budgets`, `provider_bills`). Values
of a dimension are labels from the logs: shown through reports.labels (shortened, control characters
visible), and a user id (or a session id derived from one) through UserDisplay, as its pseudonym when the
configuration asks for pseudonyms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from chatpulse.formatting import (
    DASH,
    format_change,
    format_int,
    format_ms,
    format_pct,
    format_usd,
    missing,
)
from chatpulse.pseudonyms import UserDisplay
from chatpulse.reports.labels import display_label, inline_label
from chatpulse.reports.sections import Column, Section
from chatpulse.spendconfig import Dimension

VALUES_SHOWN = 5  # per dimension; dimension_daily keeps up to top_values, the page the busiest few
BILL_ROWS = 25


def _rows(table: pd.DataFrame, columns: Sequence[Column]) -> list[dict[str, str]]:
    return [
        {column.key: column.format(record.get(column.key)) for column in columns} for record in table.to_dict("records")
    ]


def _shown_value(dimension: Dimension | None, display: UserDisplay) -> Callable[[Any], str]:
    """How a dimension's values are shown: user and session ids through `display`, every value as a label."""
    column = None if dimension is None else dimension.column
    if column == "user_id":
        return lambda value: display_label(display(value))
    if column == "session_id":
        return lambda value: display_label(display.session(value))
    return display_label


def _spend_change(row: pd.Series, before: pd.DataFrame | None) -> str:
    """The spend's change against the same row a week before: "+12%", "new", or a dash when unknown."""
    if before is None or before.empty or row["bucket"] == "other":
        return DASH  # that day was not run; an "other" row folds different values each day
    same = before[(before["dimension"] == row["dimension"]) & (before["bucket"] == row["bucket"])]
    same = same[same["value"] == row["value"]] if row["bucket"] == "value" else same
    if same.empty:
        return "new"
    return format_change(row["spend_usd"], same.iloc[0]["spend_usd"], False) or DASH


def who_spends(
    today: pd.DataFrame | None,
    week_ago: pd.DataFrame | None,
    dimensions: Sequence[Dimension],
    day: date,
    display: UserDisplay | None = None,
) -> Section:
    """The "Who spends" section: per configured dimension, its VALUES_SHOWN biggest spenders, the requests
    without a value and the folded rest, each with the spend's change against the same weekday a week before.

    ``today`` and ``week_ago`` are ``dimension_daily`` rows of ``day`` and of seven days before (None or empty
    when not run).
    """
    display = display or UserDisplay()
    columns = (
        Column("Dimension", "dimension", numeric=False),
        Column("Value", "shown", str, numeric=False),
        Column("Spend", "spend_usd", format_usd),
        Column(f"vs {day - timedelta(days=7):%a %d %b}", "change", str),
        Column("Requests", "requests", format_int),
        Column("Error rate", "error_rate", format_pct),
        Column("Tokens", "total_tokens", format_int),
        Column("Latency p95", "latency_p95_ms", format_ms),
        Column("Users", "users", format_int),
    )
    by_name = {dimension.name: dimension for dimension in dimensions}
    records = []
    folded = 0
    if today is not None and not today.empty:
        for name in by_name:
            rows = today[today["dimension"] == name]
            values = rows[rows["bucket"] == "value"].sort_values("rank").head(VALUES_SHOWN)
            rest = rows[rows["bucket"] != "value"]
            shown = _shown_value(by_name[name], display)
            for _, row in pd.concat([values, rest]).iterrows():
                if row["bucket"] == "other":
                    folded += int(row["folded_values"])
                    label = f"other ({format_int(row['folded_values'])} values)"
                else:
                    label = "(not set)" if row["bucket"] == "unset" else shown(row["value"])
                records.append({**row.to_dict(), "shown": label, "change": _spend_change(row, week_ago)})
    note = (
        "Spend is each request's logged cost, or its estimate where the log has none. "
        f"The {VALUES_SHOWN} biggest spenders per dimension; change against the same weekday a week before."
    )
    if folded:
        note += f" 'other' folds the smaller values ({format_int(folded)} in all)."
    empty = "No requests on this day."
    return Section("Who spends", columns, _rows(pd.DataFrame(records), columns) if records else [], empty, note)


def _period(row: Mapping[str, Any]) -> str:
    if row["period"] == "day":
        return "day"
    return f"month ({format_int(row['days_run'])} of {format_int(row['days_in_period'])} days run)"


def budgets(status: pd.DataFrame | None) -> Section:
    """The "Budgets" section: each budget's spend so far, its share, and a month's forecast and its share,
    from the day's ``budget_status`` rows."""
    columns = (
        Column("Budget", "budget", numeric=False),
        Column("Period", "period_shown", str, numeric=False),
        Column("Limit", "budget_usd", format_usd),
        Column("Spent", "spend_usd", format_usd),
        Column("Used", "used_share", format_pct),
        Column("Forecast", "forecast_usd", format_usd),
        Column("Forecast use", "forecast_share", format_pct),
    )
    rows = [] if status is None else [{**row, "period_shown": _period(row)} for row in status.to_dict("records")]
    note = (
        "A month's forecast is its spend so far plus the mean daily spend of the last 7 days run times the days "
        "left; spend is the logged cost, or the estimate where the log has none."
    )
    return Section("Budgets", columns, _rows(pd.DataFrame(rows), columns) if rows else [], "No budget status.", note)


def _gap(amount: Any, share: Any) -> str:
    """A difference with its sign and share of the bill: "-$0.13 (-5.7%)"; float dust below a micro-dollar is $0."""
    if missing(amount):
        return DASH
    amount = round(float(amount), 6)
    text = ("-" if amount < 0 else "+" if amount > 0 else "") + format_usd(abs(amount))
    if missing(share):
        return text
    percent = round(float(share) * 100, 1) + 0.0  # a share that rounds to zero is unsigned, never "-0.0%"
    return f"{text} ({percent:+.1f}%)" if percent else f"{text} (0.0%)"


def _bill_value(row: Mapping[str, Any]) -> str:
    """What a reconciliation row compares: "all", its project or model as a label, "(none)" for lines without one."""
    if row["scope"] == "all":
        return "all"
    return "(none)" if missing(row["value"]) else display_label(row["value"])


def provider_bill(reconciliation: pd.DataFrame | None) -> Section:
    """The "Provider bill" section: the day's bill against the log's logged and estimated cost, overall and per
    project and model, from its ``cost_reconciliation`` rows (at most BILL_ROWS; the note says what is cut)."""
    columns = (
        Column("Provider", "provider", numeric=False),
        Column("Scope", "scope", numeric=False),
        Column("Value", "shown", str, numeric=False),
        Column("Billed", "billed_usd", format_usd),
        Column("Logged", "logged_usd", format_usd),
        Column("Logged − billed", "logged_gap", str),
        Column("Estimated", "estimated_usd", format_usd),
        Column("Estimated − billed", "estimated_gap", str),
    )
    if reconciliation is None or reconciliation.empty:
        return Section("Provider bill", columns, [], "No provider bill covers this day.")
    records = [
        {
            **row,
            "shown": _bill_value(row),
            "logged_gap": _gap(row["logged_gap_usd"], row["logged_gap_share"]),
            "estimated_gap": _gap(row["estimated_gap_usd"], row["estimated_gap_share"]),
        }
        for row in reconciliation.to_dict("records")
    ]
    notes = ["Differences are the log's cost minus the bill, and their share of the bill."]
    if len(records) > BILL_ROWS:
        notes.append(f"The first {BILL_ROWS} of {len(records)} rows.")
    overall = reconciliation[reconciliation["scope"] == "all"]
    foreign = overall[overall["non_usd_lines"] > 0]
    for row in foreign.itertuples():
        notes.append(
            f"{format_int(row.non_usd_lines)} {inline_label(row.provider)} bill lines in "
            f"{inline_label(row.non_usd_currencies)} are not converted and not in Billed."
        )
    return Section("Provider bill", columns, _rows(pd.DataFrame(records[:BILL_ROWS]), columns), "", " ".join(notes))


def spend_sections(
    tables: Mapping[str, pd.DataFrame | None],
    day: date,
    dimensions: Sequence[Dimension],
    has_budgets: bool,
    has_bills: bool,
    display: UserDisplay | None = None,
) -> list[Section]:
    """The spend sections the configuration asks for, in reading order: "Who spends" (with ``dimensions``),
    "Budgets" (``has_budgets``), "Provider bill" (``has_bills``).

    ``tables`` holds the day's ``dimension_daily``, ``budget_status`` and ``cost_reconciliation`` rows and
    ``dimension_daily_week_ago``, the ``dimension_daily`` rows of seven days before.
    """
    sections = []
    if dimensions:
        sections.append(
            who_spends(tables.get("dimension_daily"), tables.get("dimension_daily_week_ago"), dimensions, day, display)
        )
    if has_budgets:
        sections.append(budgets(tables.get("budget_status")))
    if has_bills:
        sections.append(provider_bill(tables.get("cost_reconciliation")))
    return sections
