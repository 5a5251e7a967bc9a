"""Render the daily report: one self-contained HTML page, its charts embedded as data: URIs, and its e-mail body.

The charts are also kept as PNG files beside the page, in ``<out_dir>/<day>/``: the page does not need
them, so it can be opened, moved or sent as a single file. Mail clients block data: URIs, so the e-mail
body is rendered in the same call from the same template with ``cid_images`` set, every chart a cid:
link to its PNG, and kept beside the charts as ``mail.json`` (reports.mail sends it): the mail then
carries the very numbers, charts and "complete" or "in progress" mark of the page, whenever it is sent.
All numbers are formatted here, so the template only lays them out. Only counts and labels reach the
page: session content is never passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from chatpulse.formatting import (
    DASH,
    format_change,
    format_clock,
    format_decimal,
    format_duration,
    format_int,
    format_ms,
    format_pct,
    format_usd,
    missing,
    plural,
)
from chatpulse.reports.alerts import AlertSummary
from chatpulse.reports.labels import REASON_MAX, display_label
from chatpulse.reports.sections import Section, rated_days
from chatpulse.reports.templating import chart_ref, render_template, write_page

_TOP_REASONS = 3
_COMPLETE = '<meta name="chatpulse-day" content="complete">'  # written by report.html.j2 for a finished day


def _top_reasons(reasons: Any) -> tuple[list[dict[str, str]], int]:
    """The most frequent rejection reasons with their counts, plus how many more were left out."""
    if missing(reasons) or not str(reasons).strip():
        return [], 0
    counts: dict[str, int] = json.loads(reasons)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [
        {"reason": display_label(reason, REASON_MAX), "count": format_int(count)}
        for reason, count in ranked[:_TOP_REASONS]
    ]
    return shown, len(ranked) - len(shown)


def _detail(text: str, *values: Any) -> str:
    """A card's footnote, left blank when a number it quotes is missing rather than showing dashes."""
    return "" if any(missing(value) for value in values) else text


# Headline cards that carry deltas: label -> (daily column, relative change or percentage points).
_DELTAS = {
    "Requests": ("requests", False),
    "Active users": ("users", False),
    "Sessions": ("sessions", False),
    "Error rate": ("error_rate", True),
    "Latency p95": ("latency_p95_ms", False),
    "Tokens": ("total_tokens", False),
    "Cost": ("cost_usd", False),
    "Satisfaction": ("satisfaction", True),
}


def cost_column(row: pd.Series) -> str:
    """The daily_metrics column the Cost card (and the mail's Cost line) shows: the logged cost when every
    request logged one, the spend (logged, else estimated) when only some did, the estimate when none did.
    A row from before `logged_requests` was kept shows its logged cost."""
    logged, requests = row.get("logged_requests"), row.get("requests")
    if missing(row.get("cost_usd")):
        return "cost_estimate_usd"
    partial = not missing(logged) and not missing(requests) and logged < requests
    return "spend_usd" if partial and not missing(row.get("spend_usd")) else "cost_usd"


def _cost_detail(row: pd.Series) -> str:
    """What the Cost card's number is, and the requests it leaves out (never a silent $0). All logged:
    "logged · estimate $4.10 covers 2,990 of 2,998 requests · 8 unmetered · 3 unpriced"; some logged:
    "logged for 120 of 180 requests, estimated for the rest · estimate $0.69 covers 180 of 180 requests";
    none: "no request logged a cost: estimate covers 1 of 3 requests · 2 unmetered"; unmetered requests
    were served without token counts, unpriced ones are of a model no price matches."""
    get = row.get
    requests, estimated, shown = get("requests"), get("estimated_requests"), cost_column(row)
    logged = shown != "cost_estimate_usd"
    parts = ["logged"] if shown == "cost_usd" else []
    if shown == "spend_usd":
        logged_count = format_int(get("logged_requests"))
        parts.append(f"logged for {logged_count} of {format_int(requests)} requests, estimated for the rest")
    if not missing(estimated) and not missing(requests) and requests:
        estimate = f"estimate {format_usd(get('cost_estimate_usd'))}" if logged and estimated else "estimate"
        covers = f"{estimate} covers {format_int(estimated)} of {format_int(requests)} requests"
        parts.append(covers if logged else f"no request logged a cost: {covers}")
    for column, name in (("unmetered_requests", "unmetered"), ("unpriced_requests", "unpriced")):
        count = get(column)
        if not missing(count) and count:
            parts.append(f"{format_int(count)} {name}")
    return " · ".join(parts)


def _deltas(label: str, row: pd.Series, comparisons: Mapping[str, pd.Series]) -> list[str]:
    if label not in _DELTAS:
        return []
    column, points = _DELTAS[label]
    if label == "Cost":  # compared as shown: logged with logged, spend with spend, estimated with estimated
        column = cost_column(row)
    changes = ((format_change(row.get(column), then.get(column), points), name) for name, then in comparisons.items())
    return [f"{change} vs {name}" for change, name in changes if change is not None]


def _cards(row: pd.Series, comparisons: Mapping[str, pd.Series]) -> list[dict[str, Any]]:
    """Headline numbers as label/value/detail cards, in reading order, with their deltas."""
    return [{**card, "deltas": _deltas(card["label"], row, comparisons)} for card in _card_values(row)]


def _card_values(row: pd.Series) -> list[dict[str, str]]:
    get = row.get
    models, peak, turns = get("models"), get("peak_rpm"), get("turns_mean")
    median_session = get("session_duration_p50_s")
    return [
        {
            "label": "Requests",
            "value": format_int(get("requests")),
            "detail": _detail(f"across {format_int(models)} model{'' if models == 1 else 's'}", models),
        },
        {"label": "Active users", "value": format_int(get("users")), "detail": ""},
        {
            "label": "Sessions",
            "value": format_int(get("sessions")),
            "detail": _detail(
                f"median {format_duration(median_session)} · {format_decimal(turns)} turns avg", median_session, turns
            ),
        },
        {
            "label": "Error rate",
            "value": format_pct(get("error_rate")),
            "detail": _detail(f"{format_int(get('errors'))} errors", get("errors")),
        },
        {
            "label": "Latency p50",
            "value": format_ms(get("latency_p50_ms")),
            "detail": _detail(f"first token {format_ms(get('ttft_p50_ms'))}", get("ttft_p50_ms")),
        },
        {
            "label": "Latency p95",
            "value": format_ms(get("latency_p95_ms")),
            "detail": _detail(f"first token {format_ms(get('ttft_p95_ms'))}", get("ttft_p95_ms")),
        },
        {
            "label": "Latency p99",
            "value": format_ms(get("latency_p99_ms")),
            "detail": _detail(f"mean {format_ms(get('latency_mean_ms'))}", get("latency_mean_ms")),
        },
        {
            "label": "Peak load",
            "value": DASH if missing(peak) else f"{format_int(peak)} req/min",
            "detail": _detail(f"at {format_clock(get('peak_minute'))}", get("peak_minute")),
        },
        {
            "label": "Tokens",
            "value": format_int(get("total_tokens")),
            "detail": _detail(
                f"{format_int(get('prompt_tokens'))} prompt · {format_int(get('completion_tokens'))} completion",
                get("prompt_tokens"),
                get("completion_tokens"),
            ),
        },
        {"label": "Cost", "value": format_usd(get(cost_column(row))), "detail": _cost_detail(row)},
        {
            "label": "Satisfaction",
            "value": format_pct(get("satisfaction")),
            "detail": _detail(
                "" if missing(get("ratings")) else plural(int(get("ratings")), "rating"),
                get("ratings"),
                get("satisfaction"),
            ),
        },
    ]


def _quality_rows(quality: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per record kind with its counts, top rejection reasons and top flags (kept rows worth
    a look: token counts that contradict the convention, unmetered requests)."""
    rows: list[dict[str, Any]] = []
    for row in quality.itertuples(index=False):
        reasons, more = _top_reasons(row.reasons)
        flags, more_flags = _top_reasons(getattr(row, "flags", None))
        rows.append(
            {
                "kind": str(row.kind),
                "rows_in": format_int(row.rows_in),
                "clean": format_int(row.clean),
                "quarantined": format_int(row.quarantined),
                "duplicates": format_int(row.duplicates),
                "repaired": format_int(row.repaired),
                "reasons": reasons,
                "more_reasons": more,
                "flagged": format_int(getattr(row, "flagged", None)),
                "flags": flags,
                "more_flags": more_flags,
            }
        )
    return rows


def _outside(outside: pd.DataFrame | None, span: tuple[str, str] | None) -> dict[str, Any] | None:
    """The rows quarantined as outside the partition range, per kind, for the note below data quality."""
    if outside is None or span is None or outside.empty:
        return None
    rows = [
        {"kind": str(row.kind), "rows": format_int(row.rows), "files": format_int(row.files)}
        for row in outside.itertuples(index=False)
    ]
    return {"first": span[0], "last": span[1], "rows": rows}


def report_file(out_dir: Path, day: date) -> Path:
    """Where a day's report lives: ``<out_dir>/<day>.html``; copies of its charts go to ``<out_dir>/<day>/``."""
    return Path(out_dir) / f"{day.isoformat()}.html"


def _feedback(tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The day's satisfaction and rating count for the headline, empty when nobody rated anything."""
    rated = rated_days(tables.get("feedback_daily"))
    if rated.empty:
        return {}
    return {"satisfaction": rated.iloc[0]["satisfaction"], "ratings": rated.iloc[0]["ratings"]}


def _has_rows(table: pd.DataFrame | None, column: str) -> bool:
    return table is not None and bool((table[column] > 0).any())


def _section_charts(
    chart_dir: Path, tables: Mapping[str, pd.DataFrame], history: pd.DataFrame | None
) -> dict[str, list[Path]]:
    """Charts drawn beside a table section, by section title; a chart whose data the day lacks is left out.

    The table of that section then says what is missing, and a stale PNG from an earlier run is removed
    so neither the page nor the e-mail can pick it up.
    """
    from chatpulse.reports import charts  # matplotlib: imported by the step that draws, not with the Definitions

    sessions, kinds, scenario_daily, costs = (
        tables.get(name) for name in ("sessions", "error_kinds", "scenario_daily", "model_costs")
    )
    wanted: list[tuple[str, str, bool, Callable[[Path], Path]]] = [
        ("Trends", "daily_trends.png", history is not None and not history.empty,
         lambda path: charts.daily_trends(history, path)),
        ("Scenarios", "scenarios.png", _has_rows(scenario_daily, "sessions"),
         lambda path: charts.scenarios(scenario_daily, path)),
        ("Scenarios", "session_length.png", sessions is not None and sessions["duration_s"].notna().any(),
         lambda path: charts.session_length(sessions["duration_s"], path)),
        ("Errors by kind", "error_rate_by_kind.png", _has_rows(kinds, "errors"),
         lambda path: charts.error_rate_by_kind(kinds, path)),
        ("Models", "tokens_and_cost.png", _has_rows(costs, "requests"),
         lambda path: charts.tokens_and_cost(costs, path)),
    ]  # fmt: skip
    drawn: dict[str, list[Path]] = {}
    for title, name, has_data, draw in wanted:
        path = chart_dir / name
        if has_data:
            drawn.setdefault(title, []).append(draw(path))
        else:
            path.unlink(missing_ok=True)
    return drawn


def render_report(
    day: date,
    daily: pd.DataFrame,
    hourly: pd.DataFrame,
    latencies: pd.Series,
    quality: pd.DataFrame,
    sections: Sequence[Section],
    out_dir: Path,
    comparisons: Mapping[str, pd.Series] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    hourly_previous: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    in_progress_at: datetime | None = None,
    outside: pd.DataFrame | None = None,
    span: tuple[str, str] | None = None,
    alerts: AlertSummary | None = None,
) -> Path:
    """Write ``out_dir/<day>.html``, its charts as PNGs in ``out_dir/<day>/`` and its e-mail body; return the HTML path.

    Frames must already hold only ``day``'s rows; ``sections`` are the table sections
    (reports.sections.detail_sections); ``comparisons`` maps a name
    ("yesterday") to that day's daily row (with ``satisfaction`` where known), for the headline deltas.
    ``tables`` are the day's warehouse tables by name (``sessions``, ``error_kinds``, ``scenario_daily``,
    ``model_costs``, ``feedback_daily``), ``hourly_previous`` the hourly rows of the 7 days before and
    ``history`` the daily rows of the last 30 days, for the charts beside the sections. The page embeds
    every chart, so it shows them all without the PNG folder, wherever the file is moved.
    ``in_progress_at`` (local time) marks a page drawn before the day ended: it says so, and leaves out
    the deltas, since part of a day against a whole one would read as a drop; ``is_complete`` reads the mark.
    ``outside`` (Warehouse.outside_counts: ``kind``, ``rows``, ``files``) counts the quarantined rows on
    days outside ``span`` (the first and last day that can be run), noted below the data quality.
    ``alerts`` (reports.alerts.alert_summary) open the page, above the headline numbers.
    The e-mail body (``read_mail_body``) is the same page with the charts as cid: links to the PNGs, kept with
    the alerts it shows, so the message's subject and text part count the very alerts of its page.
    """
    from chatpulse.reports import charts  # matplotlib: imported by the step that draws, not with the Definitions

    stamp = day.isoformat()
    tables = tables or {}
    html_path = report_file(out_dir, day)
    chart_dir = html_path.with_suffix("")
    chart_dir.mkdir(parents=True, exist_ok=True)
    row = pd.Series({**(daily.iloc[0].to_dict() if len(daily) else {}), **_feedback(tables)}, dtype=object)
    previous = hourly_previous if hourly_previous is not None else hourly.iloc[0:0]
    drawn = [
        ("Requests per hour", charts.requests_per_hour(hourly, previous, chart_dir / "requests_per_hour.png")),
        ("Latency distribution", charts.latency_distribution(latencies, daily, chart_dir / "latency_distribution.png")),
        ("Error rate by hour", charts.error_rate_by_hour(hourly, chart_dir / "error_rate_by_hour.png")),
    ]
    beside = _section_charts(chart_dir, tables, history)
    headline = [_chart(title, png, stamp) for title, png in drawn]
    sections = [
        replace(section, charts=tuple(_chart(_title(png), png, stamp) for png in beside.get(section.title, [])))
        for section in sections
    ]
    requests = row.get("requests")
    alerts = alerts or AlertSummary()
    context = {
        "day": stamp,
        "alerts": alerts,
        "no_requests": missing(requests) or float(requests) == 0,
        "cards": _cards(row, {} if in_progress_at else comparisons or {}),
        "in_progress_at": None if in_progress_at is None else in_progress_at.strftime("%H:%M %Z"),
        "charts": headline,
        "sections": sections,
        "quality": _quality_rows(quality),
        "outside": _outside(outside, span),
    }
    in_page_order = [*headline, *(chart for section in sections for chart in section.charts)]
    # The body before the page: a page on disk always has the body of the same render beside it.
    write_page(
        mail_body_file(html_path),
        json.dumps(
            {
                "html": render_template("report.html.j2", **context, cid_images=True),
                "images": {chart["cid"]: f"{chart['name']}.png" for chart in in_page_order},
                "alerts": alerts.as_json(),
            }
        ),
    )
    write_page(html_path, render_template("report.html.j2", **context, cid_images=False))
    return html_path


def is_complete(html: str) -> bool:
    """Whether a report page (or its e-mail body) was drawn after its day ended, as the page itself records.

    The mail step can run after midnight while the page it finds was drawn before (the same run, or a retry):
    only the page knows, not the clock.
    """
    return _COMPLETE in html


def mail_body_file(report: Path) -> Path:
    """Where the e-mail body of the report page ``<out_dir>/<day>.html`` is kept: ``<out_dir>/<day>/mail.json``."""
    return report.with_suffix("") / "mail.json"


@dataclass(frozen=True)
class MailBody:
    """The e-mail body rendered with a report page: its HTML (the page's, with every chart a ``cid:`` link and
    the CSS still in its <style>), the PNG each CID names in page order, and the alerts the page shows."""

    html: str
    images: dict[str, Path]
    alerts: AlertSummary


def read_mail_body(report: Path) -> MailBody:
    """The e-mail body rendered with the report page ``report`` (``<out_dir>/<day>.html``).

    A CID names the chart and the day, e.g. ``requests_per_hour.2026-11-20@chatpulse``: unique, since the
    charts are files of one folder. Raises FileNotFoundError when the page has no body beside it, ValueError
    when the body was kept by an older version, without the alerts.
    """
    path = mail_body_file(report)
    body = json.loads(path.read_text(encoding="utf-8"))
    if "alerts" not in body:
        raise ValueError(f"{path} was written by an older version, without the day's alerts")
    return MailBody(
        body["html"],
        {cid: path.parent / name for cid, name in body["images"].items()},
        AlertSummary.of_json(body["alerts"]),
    )


def _chart(title: str, png: Path, stamp: str) -> dict[str, str]:
    """The page's reference to a chart (templating.chart_ref), plus the CID the e-mail attaches it under."""
    return {**chart_ref(title, png), "cid": f"{png.stem}.{stamp}@chatpulse"}


def _title(png: Path) -> str:
    return png.stem.replace("_", " ").capitalize()
