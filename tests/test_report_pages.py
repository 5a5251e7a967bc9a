"""Tests for the index page and the weekly report: days in order, the week's sums, and when a week is written."""

from __future__ import annotations

import os
import re
import stat
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.daystate import DayState
from chatpulse.reports.pages import mark_day_state, write_index, write_pages, write_week
from chatpulse.reports.render import mail_body_file, read_mail_body
from chatpulse.reports.templating import write_page

from fixtures import PNG_MAGIC, REPORT_DAY, embedded_charts, render_with, report_daily, report_tables

SUNDAY = date(2026, 11, 22)
MONDAY = SUNDAY - timedelta(days=6)


def _week() -> pd.DataFrame:
    """Monday to Sunday with 100, 200, ... 700 requests and 1, 4, ... 49 errors; Wednesday is missing.

    The error rates (1%, 2%, ... 7%) differ, so a week's rate weighted by requests differs from their mean.
    """
    rows = [
        report_daily(
            day=(MONDAY + timedelta(days=i)).isoformat(),
            requests=100 * (i + 1),
            errors=(i + 1) ** 2,
            error_rate=(i + 1) ** 2 / (100 * (i + 1)),
            sessions=10 * (i + 1),
            total_tokens=1000 * (i + 1),
            cost_usd=0.5 * (i + 1),
        )
        for i in range(7)
        if i != 2
    ]
    return pd.concat(rows, ignore_index=True)


def _pages(out_dir: Path, days: list[date]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for day in days:
        (out_dir / f"{day.isoformat()}.html").write_text("<html></html>")


def test_index_lists_days_newest_first_with_their_numbers(tmp_path: Path) -> None:
    _pages(tmp_path, [MONDAY, SUNDAY, MONDAY + timedelta(days=1)])
    html = write_index(tmp_path, _week()).read_text(encoding="utf-8")
    rows = [line.strip() for line in html.splitlines() if line.strip().startswith('<tr><td class="text"><a')]
    assert rows == [
        f'<tr><td class="text"><a href="{day}.html">{day}</a></td><td>{requests}</td><td>{rate}</td>'
        '<td class="text"></td></tr>'
        for day, requests, rate in (
            ("2026-11-22", 700, "7.0%"),
            ("2026-11-17", 200, "2.0%"),
            ("2026-11-16", 100, "1.0%"),
        )
    ]
    assert "Weekly reports" not in html


def test_a_day_page_links_to_the_index_and_its_mail_links_nowhere(tmp_path: Path) -> None:
    """Every page links to the others: a day's page to the index (every day and week), written beside it; the
    mail body, which has no folder around it, has no link."""
    page = render_with(tmp_path, report_tables())
    write_pages(tmp_path, REPORT_DAY, report_daily())
    links = re.findall(r'href="([^"#]+)"', page)
    assert links == ["index.html"] and (tmp_path / "index.html").is_file()
    assert f'href="{REPORT_DAY.isoformat()}.html"' in (tmp_path / "index.html").read_text()
    assert "href=" not in read_mail_body(tmp_path / f"{REPORT_DAY.isoformat()}.html").html


def test_index_of_an_empty_folder(tmp_path: Path) -> None:
    assert "No reports yet." in write_index(tmp_path, _week().iloc[0:0]).read_text(encoding="utf-8")


def test_week_sums_the_days(tmp_path: Path) -> None:
    _pages(tmp_path, [MONDAY])
    page = write_week(tmp_path, SUNDAY, _week())
    assert page == tmp_path / "week-2026-11-16.html"
    html = page.read_text(encoding="utf-8")
    assert "ChatPulse weekly report — 2026-11-16 to 2026-11-22" in html
    # 100+200+400+500+600+700 = 2,500 requests, 1+4+16+25+36+49 = 131 errors (5.2%, where the mean of the
    # days' rates is 4.2%), 250 sessions, 25,000 tokens and $12.50: Wednesday has no row and counts as nothing.
    totals = html[html.index("<strong>Week</strong>") :].split("</tr>")[0]
    for value in ("2,500", "131", "5.2%", "250", "25,000", "$12.50"):
        assert f"<strong>{value}</strong>" in totals, value
    assert '<a href="2026-11-16.html">Mon 2026-11-16</a>' in html  # only days with a report link
    assert '<td class="text">Tue 2026-11-17</td>' in html
    wednesday = html[html.index("Wed 2026-11-18") :].split("</tr>")[0]
    assert wednesday.count("—") == 8
    trend = (tmp_path / "week-2026-11-16" / "trend.png").read_bytes()
    assert trend[:8] == PNG_MAGIC
    assert embedded_charts(html) == [("trend", trend)]  # the page carries its chart; the PNG is a copy
    assert 'alt="Requests, latency p50/p95/p99 and error rate by day chart"' in html  # the panels it draws
    assert len(html.encode()) < 100_000


def test_weekly_report_only_on_a_sunday(tmp_path: Path) -> None:
    out_dir = tmp_path / "reports"
    every_day = pd.concat([report_daily(day="2026-11-08"), _week()], ignore_index=True)  # the week is taken out of them
    _pages(out_dir, [SUNDAY - timedelta(days=1)])
    saturday = write_pages(out_dir, SUNDAY - timedelta(days=1), every_day)
    assert set(saturday) == {"index"} and not list(out_dir.glob("week-*.html"))
    _pages(out_dir, [SUNDAY])
    sunday = write_pages(out_dir, SUNDAY, every_day)
    assert sunday == {"week": out_dir / "week-2026-11-16.html", "index": out_dir / "index.html"}
    assert "<strong>2,500</strong>" in sunday["week"].read_text(encoding="utf-8")  # the week's days, no others
    index = sunday["index"].read_text(encoding="utf-8")
    assert '<a href="week-2026-11-16.html">2026-11-16 week</a>' in index
    assert index.index("2026-11-22.html") < index.index("2026-11-21.html")


STALE = DayState(
    REPORT_DAY.isoformat(),
    {"daily_metrics": "older than clean_requests", "daily_report": "reads daily_metrics, which is stale"},
    "run-2",
    pd.Timestamp("2026-11-21T06:00:05Z"),
)


def test_index_marks_incomplete_days_with_their_stale_steps(tmp_path: Path) -> None:
    _pages(tmp_path, [MONDAY, SUNDAY, MONDAY + timedelta(days=1)])
    states = {
        MONDAY.isoformat(): DayState(MONDAY.isoformat(), {}, "run-1", pd.Timestamp("2026-11-17T06:00Z")),
        SUNDAY.isoformat(): DayState(SUNDAY.isoformat(), dict(STALE.stale), "run-2", STALE.last_finished),
    }  # Tuesday has no record: run before states were kept
    html = write_index(tmp_path, _week(), states=states).read_text(encoding="utf-8")
    rows = {
        line.split('href="')[1][:10]: line
        for line in html.splitlines()
        if line.strip().startswith('<tr><td class="text"><a')
    }
    assert 'title="Stale: daily_metrics, daily_report">incomplete</span>' in rows[SUNDAY.isoformat()]
    assert [day for day, row in rows.items() if 'data-day-state="incomplete"' in row] == [SUNDAY.isoformat()]


def test_a_page_shows_its_state_until_the_day_is_complete(tmp_path: Path) -> None:
    drawn = render_with(tmp_path, report_tables())
    page = tmp_path / f"{REPORT_DAY.isoformat()}.html"
    body = mail_body_file(page).read_text(encoding="utf-8")
    assert 'data-day-state="incomplete"' not in drawn  # drawn complete: the block is empty

    assert mark_day_state(page, STALE)
    marked = page.read_text(encoding="utf-8")
    notice = marked[marked.index('<p class="notice" data-day-state="incomplete">') :].split("</p>")[0]
    assert "<span data-stale-steps>daily_metrics, daily_report</span>" in notice
    assert "run-2" in notice and "2026-11-21 06:00 UTC" in notice
    assert marked.replace(notice + "</p>\n", "") == drawn  # nothing else on the page changes
    assert notice in read_mail_body(page).html  # a mail sent later says so too
    assert not mark_day_state(page, STALE)  # already says so: not rewritten

    assert mark_day_state(page, DayState(STALE.day, {}, "run-3", pd.Timestamp("2026-11-21T07:00Z")))
    assert page.read_text(encoding="utf-8") == drawn and mail_body_file(page).read_text(encoding="utf-8") == body


def test_a_page_drawn_before_day_states_is_left_alone(tmp_path: Path) -> None:
    page = tmp_path / "2026-11-20.html"
    page.write_text("<html><body><h1>old page</h1></body></html>", encoding="utf-8")
    assert not mark_day_state(page, STALE)
    assert page.read_text(encoding="utf-8") == "<html><body><h1>old page</h1></body></html>"


def test_a_page_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    write_page(page, "<p>old</p>")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(page.stat().st_mode) == 0o666 & ~umask  # readable as any file written here
    with pytest.raises(UnicodeEncodeError):  # fails while writing: a lone surrogate has no UTF-8
        write_page(page, "<p>new</p>\ud800")
    assert page.read_text(encoding="utf-8") == "<p>old</p>"
    write_page(page, "<p>new</p>")
    assert page.read_text(encoding="utf-8") == "<p>new</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]  # no temporary file left behind
