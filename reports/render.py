"""Render the daily report: one self-contained HTML page, its charts embedded as data: URIs.

The charts are also kept as PNG files beside the page, for reuse elsewhere; the page does
not need them, so it can be opened, moved or sent as a single file. All numbers are
formatted here, so the template only lays them out. Only counts and labels reach the
page: session content is never passed in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from chatpulse.reports import charts

if TYPE_CHECKING:
    from chatpulse.reports.sections import Section

_TEMPLATES = Path(__file__).parent / "templates"
# autoescape=True, not select_autoescape(): the ".html.j2" suffix would not match its extension list.
_ENV = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_DASH = "—"  # shown for a number the day doesn't have (e.g. latency with no requests)
_TOP_REASONS = 3
_COMPLETE = '<meta name="chatpulse-day" content="complete">'  # written by report.html.j2 for a finished day


def _missing(value: Any) -> bool:
    """True for None/NaN/NA, which pandas uses interchangeably for absent numbers."""
    return value is None or bool(pd.isna(value))


def format_int(value: Any) -> str:
    """Whole number with thousands separators: 1234 -> "1,234"."""
    return _DASH if _missing(value) else f"{round(float(value)):,}"


def format_decimal(value: Any) -> str:
    """A mean with one decimal: 3.14 -> "3.1"."""
    return _DASH if _missing(value) else f"{float(value):,.1f}"


def format_pct(rate: Any) -> str:
    """A 0-1 fraction as a percentage with one decimal: 0.025 -> "2.5%"."""
    return _DASH if _missing(rate) else f"{float(rate) * 100:.1f}%"


def format_ms(ms: Any) -> str:
    """Latency in ms below a second, else seconds: 420 -> "420 ms", 1834 -> "1.8 s"."""
    if _missing(ms):
        return _DASH
    ms = float(ms)
    return f"{ms:,.0f} ms" if ms < 1000 else f"{ms / 1000:,.1f} s"


def format_duration(seconds: Any) -> str:
    """Session length in the largest sensible unit: "45 s", "3.5 min", "1.2 h"."""
    if _missing(seconds):
        return _DASH
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:,.1f} h"


def format_usd(amount: Any) -> str:
    """Dollars with cents; sub-cent spend shows as "<$0.01" rather than a misleading "$0.00"."""
    if _missing(amount):
        return _DASH
    amount = float(amount)
    return "<$0.01" if 0 < amount < 0.005 else f"${amount:,.2f}"


def format_clock(iso: Any) -> str:
    """Time of day from an ISO timestamp: "2026-11-20T14:32:00+00:00" -> "14:32 UTC"."""
    if _missing(iso):
        return _DASH
    return pd.Timestamp(iso).strftime("%H:%M %Z").strip()


def _top_reasons(reasons: Any) -> tuple[list[dict[str, str]], int]:
    """The most frequent rejection reasons with their counts, plus how many more were left out."""
    if _missing(reasons) or not str(reasons).strip():
        return [], 0
    counts: dict[str, int] = json.loads(reasons)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [{"reason": reason, "count": format_int(count)} for reason, count in ranked[:_TOP_REASONS]]
    return shown, len(ranked) - len(shown)


def _detail(text: str, *values: Any) -> str:
    """A card's footnote, left blank when a number it quotes is missing rather than showing dashes."""
    return "" if any(_missing(value) for value in values) else text


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


def format_change(now: Any, then: Any, points: bool) -> str | None:
    """'+12%' (relative) or '+0.4 pp' (a rate's difference); None when it cannot be said."""
    if _missing(now) or _missing(then):
        return None
    if points:
        return f"{(float(now) - float(then)) * 100:+.1f} pp"
    if float(then) == 0:
        return None
    return f"{(float(now) - float(then)) / float(then):+.0%}"


def _deltas(label: str, row: pd.Series, comparisons: Mapping[str, pd.Series]) -> list[str]:
    if label not in _DELTAS:
        return []
    column, points = _DELTAS[label]
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
            "value": _DASH if _missing(peak) else f"{format_int(peak)} req/min",
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
        {"label": "Cost", "value": format_usd(get("cost_usd")), "detail": _detail("USD", get("cost_usd"))},
        {
            "label": "Satisfaction",
            "value": format_pct(get("satisfaction")),
            "detail": _detail(f"{format_int(get('ratings'))} ratings", get("ratings"), get("satisfaction")),
        },
    ]


def _quality_rows(quality: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per record kind with its counts and top rejection reasons."""
    rows: list[dict[str, Any]] = []
    for row in quality.itertuples(index=False):
        reasons, more = _top_reasons(row.reasons)
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
            }
        )
    return rows


def report_file(out_dir: Path, day: date) -> Path:
    """Where a day's report lives: ``<out_dir>/<day>.html``; copies of its charts go to ``<out_dir>/<day>/``."""
    return Path(out_dir) / f"{day.isoformat()}.html"


def rated_days(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """The ``feedback_daily`` rows of days someone rated: on the others satisfaction says nothing, so none is shown."""
    if feedback is None:
        return pd.DataFrame(columns=["day", "ratings", "satisfaction"])
    return feedback[feedback["ratings"] > 0]


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
        ("Tokens and cost by model", "tokens_and_cost.png", _has_rows(costs, "requests"),
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
) -> Path:
    """Write ``out_dir/<day>.html`` and its charts as PNGs in ``out_dir/<day>/``; return the HTML path.

    Frames must already hold only ``day``'s rows; ``sections`` are the table sections
    (reports.sections.detail_sections); ``comparisons`` maps a name
    ("yesterday") to that day's daily row (with ``satisfaction`` where known), for the headline deltas.
    ``tables`` are the day's warehouse tables by name (``sessions``, ``error_kinds``, ``scenario_daily``,
    ``model_costs``, ``feedback_daily``), ``hourly_previous`` the hourly rows of the 7 days before and
    ``history`` the daily rows of the last 30 days, for the charts beside the sections. The page embeds
    every chart, so it shows them all without the PNG folder, wherever the file is moved.
    ``in_progress_at`` (local time) marks a page drawn before the day ended: it says so, and leaves out
    the deltas, since part of a day against a whole one would read as a drop; ``is_complete`` reads the mark.
    """
    stamp = day.isoformat()
    tables = tables or {}
    chart_dir = report_file(out_dir, day).with_suffix("")
    chart_dir.mkdir(parents=True, exist_ok=True)
    row = pd.Series({**(daily.iloc[0].to_dict() if len(daily) else {}), **_feedback(tables)}, dtype=object)
    previous = hourly_previous if hourly_previous is not None else hourly.iloc[0:0]
    drawn = [
        ("Requests per hour", charts.requests_per_hour(hourly, previous, chart_dir / "requests_per_hour.png")),
        ("Latency distribution", charts.latency_distribution(latencies, daily, chart_dir / "latency_distribution.png")),
        ("Error rate by hour", charts.error_rate_by_hour(hourly, chart_dir / "error_rate_by_hour.png")),
    ]
    beside = _section_charts(chart_dir, tables, history)
    sections = [
        replace(section, charts=tuple(_chart_ref(_title(png), png) for png in beside.get(section.title, [])))
        for section in sections
    ]
    requests = row.get("requests")
    html = _ENV.get_template("report.html.j2").render(
        day=stamp,
        no_requests=_missing(requests) or float(requests) == 0,
        cards=_cards(row, {} if in_progress_at else comparisons or {}),
        in_progress_at=None if in_progress_at is None else in_progress_at.strftime("%H:%M %Z"),
        charts=[_chart_ref(title, png) for title, png in drawn],
        sections=sections,
        quality=_quality_rows(quality),
    )
    html_path = report_file(out_dir, day)
    html_path.write_text(html, encoding="utf-8")
    return html_path


def is_complete(html: str) -> bool:
    """Whether a report page was drawn after its day ended, as the page itself records.

    The mail step can run after midnight while the page it finds was drawn before (the same run, or a retry):
    only the page knows, not the clock.
    """
    return _COMPLETE in html


def _chart_ref(title: str, png: Path) -> dict[str, str]:
    """What the template needs for an <img>: the PNG as a data: URI, its name and alt text.

    Browsers show data: URIs but mail clients block them: the e-mail swaps each one for a CID
    attachment named after ``name`` (reports.mail.inline_report).
    """
    data = png.read_bytes()
    width, height = _png_size(data)
    return {
        "title": title,
        "name": png.stem,
        "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        "width": str(width),
        "height": str(height),
    }


def _title(png: Path) -> str:
    return png.stem.replace("_", " ").capitalize()


def _png_size(data: bytes) -> tuple[int, int]:
    """Pixel width and height from the PNG header (IHDR), so the <img> reserves its space before it is decoded."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
