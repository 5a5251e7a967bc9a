"""The report's table sections, each built from one warehouse table of the day.

A section is data, not markup: a title, formatted columns and rows, and what to
say when the day has no rows, so the template renders them all the same way and
a day without feedback or sessions says so instead of showing an empty table.
Only ids, labels and numbers appear: never session content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chatpulse.formatting import (
    DASH,
    format_change,
    format_decimal,
    format_int,
    format_metric,
    format_ms,
    format_pct,
    format_usd,
    missing,
    plural,
)
from chatpulse.pseudonyms import UserDisplay
from chatpulse.reports.labels import display_label, inline_label
from chatpulse.reports.usage import model_rows, user_rows

Formatter = Callable[[Any], str]


def rated_days(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """The ``feedback_daily`` rows of days someone rated: on the others satisfaction says nothing, so none is shown."""
    if feedback is None:
        return pd.DataFrame(columns=["day", "ratings", "satisfaction"])
    return feedback[feedback["ratings"] > 0]


def _shown(display: Callable[[Any], str]) -> Formatter:
    """A formatter rendering ids through `display` (a user's pseudonym), shortened like any label; a dash for none."""
    return lambda value: DASH if missing(value) else display_label(display(value))


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    format: Formatter = display_label  # text from the logs: shortened, never trusted
    numeric: bool = True


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, str]]
    empty: str
    note: str = ""
    charts: tuple[dict[str, str], ...] = ()  # filled in by render_report: the PNGs drawn beside the table


def _section(
    title: str, table: pd.DataFrame | None, columns: tuple[Column, ...], empty: str, note: str = ""
) -> Section:
    rows = (
        []
        if table is None
        else [
            {column.key: column.format(record.get(column.key)) for column in columns}
            for record in table.to_dict("records")
        ]
    )
    return Section(title, columns, rows, empty, note)


# Three costs side by side: named apart, as "cost" beside the Cost card (which shows spend) read as the same.
_COST_NAMES = {"cost_usd": "cost logged", "spend_usd": "spend (logged, else estimated)"}


def _metric_name(metric: str) -> str:
    """A metric's name for people, its unit left to its formatted value: "latency_p95_ms" -> "latency p95"."""
    return _COST_NAMES.get(metric) or metric.removesuffix("_ms").removesuffix("_usd").replace("_", " ")


def _trend_rows(trends: pd.DataFrame | None) -> pd.DataFrame | None:
    """Trend rows with each metric's values formatted by its unit, changes as % or pp."""
    if trends is None or trends.empty:
        return None
    records = []
    for row in trends.to_dict("records"):
        fmt, rate = format_metric(row["metric"]), row["metric"].endswith(("_rate", "_share"))
        mean = format_decimal if fmt is format_int else fmt  # a mean of counts is no count: 1.5, not "2"
        records.append(
            {
                "metric": _metric_name(row["metric"]),
                "value": fmt(row["value"]),
                "day_over_day": format_change(row["value"], row["previous_day"], rate) or DASH,
                "week_over_week": format_change(row["value"], row["week_ago"], rate) or DASH,
                "mean_7d": mean(row["mean_7d"]),
                "mean_28d": mean(row["mean_28d"]),
            }
        )
    return pd.DataFrame(records)


IN_PROGRESS_NOTE = (
    "The day is in progress: its value so far is compared with nothing, and the means are of the days before it."
)


def in_progress_trends(today: pd.DataFrame, yesterday: pd.DataFrame) -> pd.DataFrame:
    """The trend rows of a day still in progress, as its page shows them: its values so far, no change against
    earlier days (part of a day against whole ones), and the means (and their day counts) of the windows that
    end the day before, so the part of a day does not count as a day. Both frames are daily_trends rows."""
    means = ["mean_7d", "mean_28d", "days_7", "days_28"]
    before = yesterday.set_index("metric")[means] if len(yesterday) else pd.DataFrame(columns=means)
    changes = [c for c in today.columns if c.startswith(("day_over_day", "week_over_week", "previous_day", "week_ago"))]
    rows = today.assign(**dict.fromkeys(changes, np.nan))
    rows[means] = before.reindex(rows["metric"]).to_numpy()
    return rows


def _trend_note(trends: pd.DataFrame | None, in_progress: bool = False) -> str:
    """What the means are over when the window holds days that were not run: a mean is of the days present;
    and, for a day in progress, that its changes are left out and its means are of the days before it."""
    if trends is None or trends.empty:
        return ""
    days_7, days_28 = (int(trends[c].fillna(0).max()) for c in ("days_7", "days_28"))
    lead = f"{IN_PROGRESS_NOTE} " if in_progress else ""
    if days_7 == 7 and days_28 == 28:
        return lead.strip()
    return lead + (
        f"The means are over the days run: {days_7} of the last 7 and {days_28} of the last 28 "
        "(a day not run counts as missing, not as zero)."
    )


TOP_LANGUAGES = 8  # rows of the scenarios-by-language table; the rest are summed into one
TOP_SCENARIOS = 3  # named per language


def _language_rows(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per language (most sessions first, TOP_LANGUAGES of them, the rest as "others"): its sessions, its share
    of the day's sessions and its TOP_SCENARIOS scenarios with their share of the language's sessions."""
    if table is None or table.empty:
        return None
    totals = table.groupby("language", sort=False)["sessions"].sum()
    languages = list(totals.index[:TOP_LANGUAGES])
    grouped = table.assign(language=table["language"].where(table["language"].isin(languages), "others"))
    grouped = grouped.groupby(["language", "scenario"], sort=False, as_index=False)["sessions"].sum()
    records = []
    for language, rows in grouped.groupby("language", sort=False):
        count = int(rows["sessions"].sum())
        top = rows.sort_values(["sessions", "scenario"], ascending=[False, True], kind="stable").head(TOP_SCENARIOS)
        scenarios = ", ".join(
            f"{inline_label(name)} {format_pct(n / count)}"
            for name, n in zip(top["scenario"], top["sessions"], strict=True)
        )
        records.append({"language": language, "sessions": count, "share": count / totals.sum(), "top": scenarios})
    return pd.DataFrame(records)


def _spotlight_rows(spotlight: pd.DataFrame | None) -> pd.DataFrame | None:
    """Spotlight rows with today's value and the week's baseline in the metric's unit."""
    if spotlight is None or spotlight.empty:
        return None
    return pd.DataFrame(
        [
            {
                "metric": _metric_name(row["metric"]),
                "scenario": row["scenario"],
                "value": format_metric(row["metric"])(row["value"]),
                "baseline": format_metric(row["metric"])(row["baseline"]),
            }
            for row in spotlight.sort_values(["metric", "rank"]).to_dict("records")
        ]
    )


def detail_sections(
    tables: Mapping[str, pd.DataFrame], display: UserDisplay | None = None, in_progress: bool = False
) -> list[Section]:
    """Every table section of the report, in reading order, from the day's tables by name (``daily_trends``,
    ``scenario_daily``, ``scenario_language_daily``, ``scenario_spotlight``, ``feedback_daily``,
    ``feedback_by_model``, ``feedback_by_latency``,
    ``negative_sessions``, ``error_kinds``, ``request_metrics``, ``model_costs``, ``daily_users``,
    ``slowest_requests``); a table that is missing or empty gives its section's "no data" line. The day's alerts
    are not a section: the page opens with them (reports.alerts).
    Every user id (and session id derived from one) is rendered through ``display`` (pseudonyms with
    ``pseudonymize_users``; default: as stored). ``in_progress``: the day is not over (its trends, from
    in_progress_trends, say so).
    """
    display = display or UserDisplay()
    get = tables.get
    rated = rated_days(get("feedback_daily"))
    feedback_note = ""
    if len(rated):
        row = rated.iloc[0]
        feedback_note = (
            f"{plural(int(row['ratings']), 'rating')}; {plural(int(row['rated_sessions']), 'session')} of this day "
            f"rated ({format_pct(row['feedback_coverage'])} of its sessions); satisfaction "
            f"{format_pct(row['satisfaction'])}."
        )
        by_model = get("feedback_by_model")
        in_sessions = None if by_model is None else int(by_model["ratings"].sum())
        # The table is of the day's sessions; a rating of the day may be of an earlier day's session.
        if in_sessions is not None and in_sessions < row["ratings"]:
            elsewhere = int(row["ratings"]) - in_sessions
            feedback_note += (
                f" The table counts the {plural(in_sessions, 'rating')} of this day's sessions; "
                f"{format_int(elsewhere)} {'rates a session' if elsewhere == 1 else 'rate sessions'} "
                "that started on another day."
            )
    has_feedback = bool(feedback_note)
    models, models_note = model_rows(get("request_metrics"), get("model_costs"))
    users, users_note = user_rows(get("daily_users"))
    return [
        _section(
            "Trends",
            _trend_rows(get("daily_trends")),
            (
                Column("Metric", "metric", numeric=False),
                Column("Today", "value"),
                Column("vs yesterday", "day_over_day"),
                Column("vs a week ago", "week_over_week"),
                Column("7-day mean", "mean_7d"),
                Column("28-day mean", "mean_28d"),
            ),
            "No trend data yet.",
            _trend_note(get("daily_trends"), in_progress),
        ),
        _section(
            "Scenarios",
            _nonzero(get("scenario_daily"), "sessions"),
            (
                Column("Scenario", "scenario", numeric=False),
                Column("Sessions", "sessions", format_int),
                Column("Share", "share", format_pct),
                Column("Users", "users", format_int),
                Column("Requests", "requests", format_int),
                Column("Latency p95", "latency_p95_ms", format_ms),
                Column("Error rate", "error_rate", format_pct),
                Column("Rated", "feedback_coverage", format_pct),
                Column("Satisfaction", "satisfaction", format_pct),
            ),
            "No sessions recorded on this day.",
        ),
        _section(
            "Scenarios by language",
            _language_rows(get("scenario_language_daily")),
            (
                Column("Language", "language", numeric=False),
                Column("Sessions", "sessions", format_int),
                Column("Share", "share", format_pct),
                Column("Top scenarios", "top", str, numeric=False),
            ),
            "No sessions recorded on this day.",
            "The language of each session's first message (ISO 639 code; und: no user text).",
        ),
        _section(
            "Scenario spotlight",
            _spotlight_rows(get("scenario_spotlight")),
            (
                Column("Metric", "metric", numeric=False),
                Column("Scenario", "scenario", numeric=False),
                Column("Today", "value"),
                Column("Previous 7 days", "baseline"),
            ),
            "No scenario moved noticeably against the previous 7 days.",
            "Scenarios whose p95 latency, error rate or satisfaction moved most against the previous week.",
        ),
        _section(
            "Feedback by model",
            get("feedback_by_model") if has_feedback else None,
            (
                Column("Model", "model", numeric=False),
                Column("Ratings", "ratings", format_int),
                Column("Satisfaction", "satisfaction", format_pct),
            ),
            "No feedback recorded on this day.",
            feedback_note,
        ),
        _section(
            "Satisfaction by latency",
            _sorted(get("feedback_by_latency"), "bucket_order") if has_feedback else None,
            (
                Column("Latency", "bucket", numeric=False),
                Column("Ratings", "ratings", format_int),
                Column("Satisfaction", "satisfaction", format_pct),
            ),
            "No feedback recorded on this day.",
        ),
        _section(
            "Worst-rated sessions",
            _head(_sorted(get("negative_sessions"), "satisfaction"), 10),
            (
                Column("Session", "session_id", _shown(display.session), numeric=False),
                Column("Scenario", "scenario", numeric=False),
                Column("Model", "model", numeric=False),
                Column("Satisfaction", "satisfaction", format_pct),
                Column("Mean latency", "latency_mean_ms", format_ms),
                Column("Errors", "errors", format_int),
            ),
            "No negatively rated sessions on this day.",
        ),
        _section(
            "Errors by kind",
            _nonzero(get("error_kinds"), "errors"),
            (
                Column("Kind", "error_kind", numeric=False),
                Column("Errors", "errors", format_int),
                Column("Share of errors", "share_of_errors", format_pct),
                Column("Share of requests", "share_of_requests", format_pct),
            ),
            "No failed requests on this day.",
        ),
        _section(
            "Models",
            models,
            (
                Column("Model", "model", numeric=False),
                Column("Requests", "requests", format_int),
                Column("Latency p50", "latency_p50_ms", format_ms),
                Column("Latency p95", "latency_p95_ms", format_ms),
                Column("First token p50", "ttft_p50_ms", format_ms),
                Column("Error rate", "error_rate", format_pct),
                Column("Tokens", "total_tokens", format_int),
                Column("Estimated cost", "cost_estimate_usd", format_usd),
                Column("Logged cost", "cost_logged_usd", format_usd),
            ),
            "No requests on this day.",
            models_note,
        ),
        _section(
            "Users",
            users,
            (
                Column("User", "user_id", _shown(display), numeric=False),
                Column("Requests", "requests", format_int),
                Column("Errors", "errors", format_int),
                Column("Tokens", "total_tokens", format_int),
                Column("Estimated cost", "cost_estimate_usd", format_usd),
                Column("Logged cost", "cost_logged_usd", format_usd),
            ),
            "No requests with a user id on this day.",
            users_note,
        ),
        _section(
            "Slowest requests",
            _head(_sorted(get("slowest_requests"), "rank"), 10),
            (
                Column("Request", "request_id", numeric=False),
                Column("Model", "model", numeric=False),
                Column("User", "user_id", _shown(display), numeric=False),
                Column("Latency", "latency_ms", format_ms),
                Column("First token", "ttft_ms", format_ms),
            ),
            # also a day whose requests logged no latency (a batch output file): not "no requests"
            "No request with a logged latency on this day.",
        ),
    ]


def _nonzero(table: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    return None if table is None else table[table[column] > 0]


def _sorted(table: pd.DataFrame | None, column: str, descending: bool = False) -> pd.DataFrame | None:
    return None if table is None else table.sort_values(column, ascending=not descending, kind="stable")


def _head(table: pd.DataFrame | None, rows: int) -> pd.DataFrame | None:
    return None if table is None else table.head(rows)
