"""Pages over many days: the index of every report and the weekly report.

They sit beside the daily pages in the reports folder and link to them relatively,
so the folder can be published as it is; the weekly chart is embedded like the daily
ones. Only daily numbers and alert counts reach them, never content. The index marks the days
that are incomplete (chatpulse/daystate.py), and ``mark_day_state`` shows a day's state on its own page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from chatpulse.daystate import DayState
from chatpulse.formatting import DASH, format_int, format_ms, format_pct, format_usd
from chatpulse.reports.alerts import day_marks
from chatpulse.reports.render import mail_body_file, report_file
from chatpulse.reports.templating import chart_ref, render_template, write_page

_WEEK_PREFIX = "week-"
_SUNDAY = 6  # date.weekday() of the day whose run also writes the Monday-to-Sunday weekly report


def week_file(out_dir: Path, monday: date) -> Path:
    """Where the week starting on ``monday`` is reported: ``<out_dir>/week-<monday>.html``."""
    return Path(out_dir) / f"{_WEEK_PREFIX}{monday.isoformat()}.html"


def _report_days(out_dir: Path) -> list[date]:
    """Days with a daily report on disk, newest first: the index lists what can be opened, not what was planned."""
    days = []
    for page in Path(out_dir).glob("????-??-??.html"):
        try:
            days.append(date.fromisoformat(page.stem))
        except ValueError:
            continue
    return sorted(days, reverse=True)


def _stale(state: DayState | None) -> str:
    """A day's stale steps for a page, in the job's order; empty for a complete or unrecorded day."""
    if state is None or not state.recorded:
        return ""
    return ", ".join(state.stale)


def write_index(
    out_dir: Path,
    daily: pd.DataFrame,
    alerts: pd.DataFrame | None = None,
    states: Mapping[str, DayState] | None = None,
) -> Path:
    """Write ``<out_dir>/index.html``: every daily report, newest first, with its requests, error rate and,
    for a day that had alerts, their count ("5 alerts, 0 open") in its worst severity's colour.

    ``daily`` is ``daily_metrics`` over any span, ``alerts`` the ``alerts`` table over any span; a report
    without a row there shows dashes. A day whose state in ``states`` (by day) is incomplete is marked
    so, its stale steps in the marker's title.
    """
    rows = daily.set_index("day") if len(daily) else pd.DataFrame(columns=["requests", "error_rate"])
    states = states or {}
    marks = day_marks(alerts)
    days = []
    for day in _report_days(out_dir):
        row = rows.loc[day.isoformat()] if day.isoformat() in rows.index else pd.Series(dtype=object)
        mark = marks.get(day.isoformat(), {})
        days.append(
            {
                "day": day.isoformat(),
                "href": report_file(Path("."), day).name,
                "requests": format_int(row.get("requests")),
                "error_rate": format_pct(row.get("error_rate")),
                "stale": _stale(states.get(day.isoformat())),
                "alerts": mark.get("count", ""),
                "severity": mark.get("severity", ""),
            }
        )
    weeks = [
        {"label": f"{page.stem.removeprefix(_WEEK_PREFIX)} week", "href": page.name}
        for page in sorted(Path(out_dir).glob(f"{_WEEK_PREFIX}????-??-??.html"), reverse=True)
    ]
    path = Path(out_dir) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_page(path, render_template("index.html.j2", days=days, weeks=weeks))
    return path


_WEEK_HEADERS = ("Day", "Requests", "Errors", "Error rate", "Active users", "Sessions", "Latency p95", "Tokens", "Cost")


def write_week(out_dir: Path, sunday: date, daily: pd.DataFrame) -> Path:
    """Write the report of the Monday-to-Sunday week ending on ``sunday``; return its path.

    ``daily`` is ``daily_metrics`` over any span holding the week; a day without a row is listed with dashes
    and counts as nothing in the week's totals.
    """
    from chatpulse.reports import charts  # matplotlib: imported by the step that draws, not with the Definitions

    monday = sunday - timedelta(days=6)
    week = [monday + timedelta(days=offset) for offset in range(7)]
    rows = daily[daily["day"].isin([day.isoformat() for day in week])].set_index("day")
    table = []
    for day in week:
        row = rows.loc[day.isoformat()] if day.isoformat() in rows.index else pd.Series(dtype=object)
        get = row.get
        table.append(
            {
                "day": f"{day:%a} {day.isoformat()}",
                "href": report_file(Path("."), day).name if report_file(out_dir, day).is_file() else "",
                "numbers": [
                    format_int(get("requests")),
                    format_int(get("errors")),
                    format_pct(get("error_rate")),
                    format_int(get("users")),
                    format_int(get("sessions")),
                    format_ms(get("latency_p95_ms")),
                    format_int(get("total_tokens")),
                    format_usd(get("cost_usd")),
                ],
            }
        )
    requests, errors = rows["requests"].sum(), rows["errors"].sum()
    rate = errors / requests if requests else None
    sessions, tokens, cost = rows["sessions"].sum(), rows["total_tokens"].sum(), rows["cost_usd"].sum(min_count=1)
    totals = [format_int(requests), format_int(errors), format_pct(rate), DASH, format_int(sessions), DASH]
    totals += [format_int(tokens), format_usd(cost)]
    path = week_file(out_dir, monday)
    png = charts.daily_trends(rows.reset_index(), path.with_suffix("") / "trend.png", title="The week")
    cards = [
        {"label": "Requests", "value": format_int(requests)},
        {"label": "Error rate", "value": format_pct(rate)},
        {"label": "Sessions", "value": format_int(sessions)},
        {"label": "Tokens", "value": format_int(tokens)},
        {"label": "Cost", "value": format_usd(cost)},
    ]
    html = render_template(
        "week.html.j2",
        first=monday.isoformat(),
        last=sunday.isoformat(),
        cards=cards,
        chart=chart_ref("Requests, latency p50/p95/p99 and error rate by day", png),
        headers=_WEEK_HEADERS,
        rows=table,
        totals=totals,
    )
    write_page(path, html)
    return path


def write_pages(
    out_dir: Path,
    day: date,
    daily: pd.DataFrame,
    alerts: pd.DataFrame | None = None,
    states: Mapping[str, DayState] | None = None,
) -> dict[str, Path]:
    """After ``day``'s report: the weekly report when ``day`` is a Sunday, then the index (which lists it).

    ``daily`` is ``daily_metrics`` of every day: the index lists them all, the week takes its seven;
    ``alerts`` the ``alerts`` table of every day, for the index to mark the days that had alerts;
    ``states`` are the days' states, by day, for the index's incomplete marks.
    """
    pages = {}
    if day.weekday() == _SUNDAY:
        pages["week"] = write_week(out_dir, day, daily)
    pages["index"] = write_index(out_dir, daily, alerts, states)
    return pages


# What report.html.j2 renders through _day_state.html.j2: two markers with the day's state between them.
_DAY_STATE = re.compile(r"<!-- chatpulse:day-state -->.*?<!-- /chatpulse:day-state -->", re.DOTALL)


def day_state_html(state: DayState) -> str:
    """The page's day-state block for ``state``: the two markers, with a notice between them when the day
    is incomplete (its stale steps, the last run and when it finished, UTC)."""
    notice = None
    if state.recorded and state.stale:
        finished = state.last_finished.strftime("%Y-%m-%d %H:%M UTC") if state.last_finished is not None else ""
        notice = {"stale": _stale(state), "last_run": state.last_run, "finished": finished}
    return render_template("_day_state.html.j2", day_state=notice)


def mark_day_state(page: Path, state: DayState) -> bool:
    """Show ``state`` on the report page ``page`` and in its e-mail body (so a mail sent later says it too).

    Rewrites only the day-state block; returns whether the page changed. A page without the block (drawn
    by an earlier version) is left as it is. Raises OSError when the page cannot be read or written.
    """
    block = day_state_html(state)
    html = page.read_text(encoding="utf-8")
    marked = _DAY_STATE.sub(lambda _: block, html, count=1)
    if marked == html:
        return False
    body_file = mail_body_file(page)
    if body_file.is_file():  # the body first, as render_report writes them: the page never outruns its body
        body = json.loads(body_file.read_text(encoding="utf-8"))
        body["html"] = _DAY_STATE.sub(lambda _: block, body["html"], count=1)
        write_page(body_file, json.dumps(body))
    write_page(page, marked)
    return True
