"""Tests for the daily HTML report: files written, numbers formatted for people, markup escaped."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from chatpulse.formatting import format_pct, format_usd
from chatpulse.metrics.daily import daily_metrics
from chatpulse.metrics.pricing import load_prices, prices_on
from chatpulse.metrics.trends import trends
from chatpulse.reports.alerts import alert_summary
from chatpulse.reports.render import is_complete, render_report
from chatpulse.reports.sections import detail_sections, in_progress_trends
from chatpulse.reports.templating import chart_ref

from fixtures import (
    DATA_PNG,
    PNG_MAGIC,
    clean_requests,
    embedded_charts,
    full_day,
    render_with,
    report_daily,
    report_hourly,
    report_quality,
    report_scenarios,
    report_tables,
)
from fixtures import REPORT_DAY as DAY

CHARTS = ("requests_per_hour.png", "latency_distribution.png", "error_rate_by_hour.png")


@pytest.fixture
def busy_day(tmp_path: Path) -> tuple[Path, str]:
    """A day with traffic: returns the output folder and the rendered HTML."""
    requests = [5, 3, 2, 2, 3, 8, 20, 45, 70, 85, 102, 107, 104, 100, 108, 96, 85, 75, 60, 50, 42, 30, 20, 12]
    errors = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 2, 1, 6, 4, 2, 2, 1, 1, 1, 1, 0, 1]
    assert sum(requests) == 1234 and sum(errors) == 31
    latencies = pd.Series(np.random.default_rng(0).lognormal(6.2, 0.8, 1234))
    reasons = {
        "latency_ms: expect_column_values_to_be_between": 2,
        "timestamp: unparseable": 1,
        "model: missing": 1,
        "total_tokens: not prompt_tokens + completion_tokens": 2,
    }
    html = render_report(
        DAY,
        report_daily(),
        report_hourly(requests, errors),
        latencies,
        report_quality(reasons),
        report_scenarios(["coding", "writing"]),
        tmp_path,
    )
    return tmp_path, html.read_text(encoding="utf-8")


def test_writes_html_and_png_charts(busy_day: tuple[Path, str]) -> None:
    out_dir, html = busy_day
    assert (out_dir / "2026-11-20.html").is_file()
    for name in CHARTS:
        assert (out_dir / "2026-11-20" / name).read_bytes()[:8] == PNG_MAGIC
    sources = re.findall(r'\ssrc="([^"]*)"', html)
    assert len(sources) == len(CHARTS)
    for src in sources:  # no relative link to the chart folder: the page carries its charts itself
        assert src.startswith(DATA_PNG), src[:80]
        assert base64.b64decode(src.removeprefix(DATA_PNG), validate=True)[:8] == PNG_MAGIC
    assert embedded_charts(html) == [
        (Path(name).stem, (out_dir / "2026-11-20" / name).read_bytes()) for name in CHARTS
    ]  # each chart embedded once, in order, the same bytes as the PNG kept on disk


def test_headline_numbers_are_formatted(busy_day: tuple[Path, str]) -> None:
    _, page = busy_day
    html = re.sub(r'src="data:[^"]*"', 'src=""', page)  # base64 holds short numbers like "56" by chance
    assert "ChatPulse daily report — 2026-11-20" in html
    for text in (
        '<div class="value">1,234</div>',  # the card itself: "1,234" alone is also in "1,234,567"
        "2.5%",
        "31 errors",
        '<div class="value">56</div>',
        '<div class="value">210</div>',
        "420 ms",
        "1.8 s",
        "3.3 s",
        "across 3 models",
        "87 req/min",
        "at 14:32 UTC",
        "1,234,567",
        "$12.35",
        "first token 180 ms",
        "median 3.3 min · 3.1 turns avg",
    ):
        assert text in html, text
    assert "No requests recorded" not in html


def test_scenario_table_shows_share_of_sessions(busy_day: tuple[Path, str]) -> None:
    _, html = busy_day
    assert "coding" in html and "71.4%" in html and "28.6%" in html
    assert html.index("coding") < html.index("writing")
    assert "No feedback recorded on this day." in html  # sections without data say so


def test_quality_counts_and_top_reasons(busy_day: tuple[Path, str]) -> None:
    _, html = busy_day
    for count in ("1,300", "5,021", "4,990", "63", "24"):
        assert f"<td>{count}</td>" in html, count
    assert "<code>latency_ms: expect_column_values_to_be_between</code> (2)" in html
    assert "<code>total_tokens: not prompt_tokens + completion_tokens</code> (2)" in html  # whole, not cut
    assert "+1 more" in html  # four reasons, three shown


def test_empty_day_renders(tmp_path: Path) -> None:
    empty_daily = report_daily(
        requests=0,
        errors=0,
        error_rate=float("nan"),
        peak_rpm=0,
        peak_minute=None,
        latency_mean_ms=float("nan"),
        latency_p50_ms=float("nan"),
        latency_p95_ms=float("nan"),
        latency_p99_ms=float("nan"),
        ttft_p50_ms=float("nan"),
        ttft_p95_ms=float("nan"),
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        cost_usd=0.0,
        users=0,
        models=0,
        sessions=0,
        session_duration_p50_s=float("nan"),
        session_duration_p95_s=float("nan"),
        turns_mean=float("nan"),
    )
    html_path = render_report(
        DAY,
        empty_daily,
        report_hourly([0] * 24, [0] * 24),
        pd.Series([], dtype=float),
        report_quality({}).iloc[0:0],
        report_scenarios([]),
        tmp_path,
    )
    html = html_path.read_text(encoding="utf-8")
    assert "No requests recorded on this day" in html
    for name in CHARTS:
        assert (tmp_path / "2026-11-20" / name).read_bytes()[:8] == PNG_MAGIC
    assert [name for name, _ in embedded_charts(html)] == [Path(name).stem for name in CHARTS]


def test_empty_daily_frame_renders(tmp_path: Path) -> None:
    html_path = render_report(
        DAY,
        report_daily().iloc[0:0],
        report_hourly([0] * 24, [0] * 24).iloc[0:0],
        pd.Series([], dtype=float),
        report_quality({}).iloc[0:0],
        report_scenarios([]),
        tmp_path,
    )
    assert "No requests recorded on this day" in html_path.read_text(encoding="utf-8")


def test_labels_are_autoescaped(tmp_path: Path) -> None:
    html = render_report(
        DAY,
        report_daily(),
        report_hourly([10] * 24, [0] * 24),
        pd.Series([500.0]),
        report_quality({"<b>bad</b>": 1}),
        report_scenarios(["<script>alert(1)</script>"]),
        tmp_path,
    ).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>&lt;b&gt;bad&lt;/b&gt;</code>" in html


def test_headline_numbers_carry_their_deltas(tmp_path: Path) -> None:
    yesterday = report_daily(requests=1000, error_rate=0.02, cost_usd=5.0).iloc[0]
    last_week = report_daily(requests=2468, error_rate=0.03).iloc[0]
    html = render_report(
        DAY,
        report_daily(),
        report_hourly([10] * 24, [0] * 24),
        pd.Series([100.0]),
        report_quality({}),
        report_scenarios(["coding"]),
        tmp_path,
        comparisons={"yesterday": yesterday, "last Friday": last_week},
    ).read_text()
    # 1,234 requests against 1,000 and 2,468; error rate 2.51% against 2% and 3%.
    assert "+23% vs yesterday" in html and "-50% vs last Friday" in html
    assert "+0.5 pp vs yesterday" in html and "-0.5 pp vs last Friday" in html
    assert "+147% vs yesterday" in html  # cost $12.35 against $5.00
    assert "Day in progress" not in html and is_complete(html)


def test_a_day_in_progress_says_so_and_compares_with_nothing(tmp_path: Path) -> None:
    yesterday = report_daily(requests=1000).iloc[0]
    html = render_report(
        DAY,
        report_daily(),
        report_hourly([10] * 24, [0] * 24),
        pd.Series([100.0]),
        report_quality({}),
        report_scenarios(["coding"]),
        tmp_path,
        comparisons={"yesterday": yesterday},
        in_progress_at=datetime(2026, 11, 20, 14, 5, tzinfo=ZoneInfo("Asia/Shanghai")),
    ).read_text()
    assert "Day in progress: numbers up to 14:05 CST." in html
    assert " vs yesterday" not in html  # half a day against a whole one would read as a drop
    assert not is_complete(html)  # so the mail step, maybe after midnight, can tell


def test_a_day_in_progress_counts_in_no_trend_mean_and_is_compared_with_nothing() -> None:
    """Today's page during the day: its trends showed -100% against yesterday and means that counted the part of
    a day as a whole day (a 7-day mean of requests dropping). Its means are now those of the 7 and 28 days
    before it, its changes left out, and the note says so."""
    days = [f"2026-11-{n:02d}" for n in range(1, 21)]
    requests = [1000.0 + 10 * n for n in range(19)] + [120.0]  # the 20th: 120 requests so far
    values = pd.DataFrame({"requests": requests}, index=days)
    stored = trends(values, days[-2:])
    shown = in_progress_trends(stored[stored["day"] == days[-1]], stored[stored["day"] == days[-2]])
    row = shown.set_index("metric").loc["requests"]
    assert row["value"] == 120.0 and np.isnan(row["day_over_day"]) and np.isnan(row["previous_day"])
    assert row["mean_7d"] == pytest.approx(np.mean(requests[-8:-1]))  # the 7 days before the 20th
    assert row["mean_28d"] == pytest.approx(np.mean(requests[:-1])) and row["days_28"] == 19
    section = detail_sections({"daily_trends": shown}, in_progress=True)[0]
    assert {row["metric"]: row["day_over_day"] for row in section.rows}["requests"] == "—"
    assert section.note.startswith("The day is in progress: its value so far is compared with nothing")


def test_sections_format_each_metric_in_its_unit(tmp_path: Path) -> None:
    trends = pd.DataFrame(
        [
            {
                "metric": "latency_p95_ms",
                "value": 1834.0,
                "previous_day": 1500.0,
                "week_ago": None,
                "mean_7d": 1600.0,
                "mean_28d": 1700.0,
            },
            {
                "metric": "error_rate",
                "value": 0.025,
                "previous_day": 0.02,
                "week_ago": 0.03,
                "mean_7d": 0.02,
                "mean_28d": 0.02,
            },
            # A mean of counts is no count: 1.5 and 0.5 read "2" and "0" when rounded as counts are.
            {
                "metric": "requests",
                "value": 2,
                "previous_day": 1,
                "week_ago": None,
                "mean_7d": 1.5,
                "mean_28d": 1234.25,
            },
            {"metric": "errors", "value": 1, "previous_day": 0, "week_ago": None, "mean_7d": 0.5, "mean_28d": 0.5},
        ]
    )
    trends = trends.assign(days_7=2, days_28=2)  # the day and the one before: the means say what they are over
    spotlight = pd.DataFrame(
        [{"metric": "satisfaction", "rank": 1, "scenario": "coding", "value": 0.5, "baseline": 0.8}]
    )
    sections = {s.title: s for s in detail_sections({"daily_trends": trends, "scenario_spotlight": spotlight})}
    assert sections["Trends"].note == (
        "The means are over the days run: 2 of the last 7 and 2 of the last 28"
        " (a day not run counts as missing, not as zero)."
    )
    full = {s.title: s for s in detail_sections({"daily_trends": trends.assign(days_7=7, days_28=28)})}
    assert full["Trends"].note == ""
    assert sections["Trends"].rows == [
        {
            "metric": "latency p95",
            "value": "1.8 s",
            "day_over_day": "+22%",
            "week_over_week": "—",
            "mean_7d": "1.6 s",
            "mean_28d": "1.7 s",
        },
        {
            "metric": "error rate",
            "value": "2.5%",
            "day_over_day": "+0.5 pp",
            "week_over_week": "-0.5 pp",
            "mean_7d": "2.0%",
            "mean_28d": "2.0%",
        },
        {
            "metric": "requests",
            "value": "2",
            "day_over_day": "+100%",
            "week_over_week": "—",
            "mean_7d": "1.5",
            "mean_28d": "1,234.2",
        },
        {
            "metric": "errors",
            "value": "1",
            "day_over_day": "—",
            "week_over_week": "—",
            "mean_7d": "0.5",
            "mean_28d": "0.5",
        },
    ]
    assert sections["Scenario spotlight"].rows == [
        {"metric": "satisfaction", "scenario": "coding", "value": "50.0%", "baseline": "80.0%"}
    ]
    assert (
        sections["Feedback by model"].rows == []
        and sections["Feedback by model"].empty == "No feedback recorded on this day."
    )


SECTION_CHARTS = (
    "daily_trends.png",
    "scenarios.png",
    "session_length.png",
    "error_rate_by_kind.png",
    "tokens_and_cost.png",
)


def test_section_charts_are_pngs_beside_their_tables(tmp_path: Path) -> None:
    previous = pd.concat(
        [report_hourly([4] * 24, [0] * 24).assign(day=f"2026-11-{d}") for d in range(13, 20)], ignore_index=True
    )
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    html = render_with(tmp_path, report_tables(), hourly_previous=previous, history=history)
    for name in CHARTS + SECTION_CHARTS:
        assert (tmp_path / "2026-11-20" / name).read_bytes()[:8] == PNG_MAGIC, name
    charts = embedded_charts(html)
    assert sorted(name for name, _ in charts) == sorted(Path(name).stem for name in CHARTS + SECTION_CHARTS)
    for name, data in charts:
        assert data == (tmp_path / "2026-11-20" / f"{name}.png").read_bytes(), name
    feedback = html.index("<h2>Feedback by model</h2>")
    assert html.index('data-chart="scenarios"') < feedback < html.index('data-chart="error_rate_by_kind"')
    assert 'height="900"' in html  # the 30-day trends are three panels tall


def test_charts_for_missing_data_are_left_out_and_the_section_says_so(tmp_path: Path) -> None:
    render_with(tmp_path, report_tables())  # a first run draws them all but the trends
    html = render_with(tmp_path, {"model_costs": report_tables()["model_costs"]})
    drawn = sorted(png.name for png in (tmp_path / "2026-11-20").glob("*.png"))
    assert drawn == sorted([*CHARTS, "tokens_and_cost.png"])  # stale PNGs of the first run are gone
    assert "No sessions recorded on this day." in html and "No failed requests on this day." in html
    assert [name for name, _ in embedded_charts(html)] == [*(Path(name).stem for name in CHARTS), "tokens_and_cost"]


def test_satisfaction_card_and_active_users(tmp_path: Path) -> None:
    yesterday = report_daily(satisfaction=0.8).iloc[0]
    html = render_with(tmp_path, report_tables(), comparisons={"yesterday": yesterday})
    card = html[html.index('<div class="label">Satisfaction</div>') :].split("</div>\n    </div>")[0]
    assert "82.5%" in card and "40 ratings" in card and "+2.5 pp vs yesterday" in card
    assert '<div class="label">Active users</div>' in html and '<div class="label">Users</div>' not in html


def test_no_feedback_leaves_satisfaction_blank(tmp_path: Path) -> None:
    tables = {
        **report_tables(),
        "feedback_daily": report_tables()["feedback_daily"].assign(ratings=0, satisfaction=None),
    }
    html = render_with(tmp_path, tables)
    card = html[html.index('<div class="label">Satisfaction</div>') :].split("</div>\n    </div>")[0]
    assert '<div class="value">—</div>' in card and "ratings" not in card


def test_model_names_from_logs_are_escaped(tmp_path: Path) -> None:
    html = render_with(tmp_path, report_tables(model="<script>alert(1)</script>"))
    assert "<script>" not in html
    assert '<td class="text">&lt;script&gt;alert(1)&lt;/script&gt;</td>' in html
    assert (tmp_path / "2026-11-20" / "tokens_and_cost.png").read_bytes()[:8] == PNG_MAGIC


def test_alert_windows_are_labelled_in_the_report_time_zone() -> None:
    alerts = full_day(alerts=2)["alerts"]  # 01:00-01:05 (open) and 02:00-02:05 UTC (resolved)
    alert_rows = alert_summary(alerts, "Asia/Shanghai").rows
    assert [row["window"] for row in alert_rows] == ["09:00–09:05 CST", "10:00–10:05 CST"]  # as the hour charts
    # A window of a whole day (a bill gap) or of a month (a budget) spans midnights: it is shown with its dates.
    day, month = alerts.iloc[:1].copy(), alerts.iloc[:1].copy()
    day[["window_start", "window_end"]] = [pd.Timestamp("2026-11-20", tz="UTC"), pd.Timestamp("2026-11-21", tz="UTC")]
    month[["window_start", "window_end"]] = [pd.Timestamp("2026-11-01", tz="UTC"), pd.Timestamp("2026-11-21", tz="UTC")]
    evening = alerts.iloc[:1].copy()  # 23:55 to midnight: the end's midnight closes the same day
    evening[["window_start", "window_end"]] = [
        pd.Timestamp("2026-11-20 23:55", tz="UTC"),
        pd.Timestamp("2026-11-21", tz="UTC"),
    ]
    assert [alert_summary(frame, "UTC").rows[0]["window"] for frame in (day, month, evening)] == [
        "2026-11-20 00:00–2026-11-21 00:00 UTC",
        "2026-11-01 00:00–2026-11-21 00:00 UTC",
        "23:55–00:00 UTC",
    ]


def test_chart_size_is_read_from_the_png(tmp_path: Path) -> None:
    png = tmp_path / "small.png"
    matplotlib.image.imsave(png, np.zeros((30, 64, 3)))
    chart = chart_ref("Small", png)
    assert (chart["width"], chart["height"]) == ("64", "30")


def _cost_card(html: str) -> str:
    card = re.search(
        r'<div class="label">Cost</div>\s*<div class="value">(.*?)</div>\s*<div class="detail">(.*?)</div>', html
    )
    assert card is not None
    return f"{card[1]} | {card[2]}"


@pytest.mark.parametrize(
    ("numbers", "card"),
    [
        # Logged cost shown; the estimate and what it covers beside it.
        (
            {"cost_usd": 12.345, "cost_estimate_usd": 11.0, "estimated_requests": 1200, "unmetered_requests": 34},
            "$12.35 | logged · estimate $11.00 covers 1,200 of 1,234 requests · 34 unmetered",
        ),
        # No request logged a cost: the estimate, saying how little it covers; never $0.00.
        (
            {
                "cost_usd": None,
                "cost_estimate_usd": 0.5,
                "estimated_requests": 1,
                "unmetered_requests": 2,
                "requests": 3,
            },
            "$0.50 | no request logged a cost: estimate covers 1 of 3 requests · 2 unmetered",
        ),
        (
            {
                "cost_usd": None,
                "cost_estimate_usd": None,
                "estimated_requests": 0,
                "unmetered_requests": 3,
                "requests": 3,
            },
            "— | no request logged a cost: estimate covers 0 of 3 requests · 3 unmetered",
        ),
        # Both costs, and requests of a model no price matches counted beside them.
        (
            {
                "cost_usd": 2.0,
                "cost_estimate_usd": 1.5,
                "estimated_requests": 8,
                "requests": 10,
                "unpriced_requests": 2,
            },
            "$2.00 | logged · estimate $1.50 covers 8 of 10 requests · 2 unpriced",
        ),
        # Some requests logged a cost (a proxy's calls) and some did not (batch output): the spend, each
        # request's logged cost else its estimate, never the logged part alone.
        (
            {
                "cost_usd": 0.42,
                "logged_requests": 120,
                "spend_usd": 0.56,
                "cost_estimate_usd": 0.69,
                "estimated_requests": 180,
                "requests": 180,
            },
            "$0.56 | logged for 120 of 180 requests, estimated for the rest"
            " · estimate $0.69 covers 180 of 180 requests",
        ),
    ],
)
def test_the_cost_card_says_what_it_shows_and_what_the_estimate_covers(
    tmp_path: Path, numbers: dict, card: str
) -> None:
    html = render_report(
        DAY,
        report_daily(**numbers),
        report_hourly([1] * 24, [0] * 24),
        pd.Series([100.0]),
        report_quality({}),
        [],
        tmp_path,
    ).read_text(encoding="utf-8")
    assert _cost_card(html) == card


def test_scenarios_by_language_section() -> None:
    """Of ten languages, the eight with most sessions keep a row each and the other two are summed into others."""
    languages = ["zh", "en", "es", "ja", "ru", "de", "fr", "ko", "ar", "pt"]
    rows = [(lang, "coding", 10 - n) for n, lang in enumerate(languages)] + [("zh", "writing", 30), ("zh", "other", 10)]
    table = pd.DataFrame(rows, columns=["language", "scenario", "sessions"]).assign(day="2026-11-20", share=0.0)
    table = table.sort_values("sessions", ascending=False, kind="stable")
    table = table.set_index("language").loc[languages].reset_index()  # languages by their sessions, as stored
    section = {s.title: s for s in detail_sections({"scenario_language_daily": table})}["Scenarios by language"]
    shown = [(row["language"], row["sessions"], row["share"], row["top"]) for row in section.rows]
    total = sum(n for *_, n in rows)
    assert len(shown) == 9 and shown[-1][0] == "others" and shown[-1][1] == str(2 + 1)
    top = ", ".join(
        f"\u2068{label}\u2069 {share}"
        for label, share in (("writing", "60.0%"), ("coding", "20.0%"), ("other", "20.0%"))
    )
    assert shown[0] == ("zh", "50", f"{50 / total:.1%}", top)  # each label isolated: an Arabic one keeps its place
    assert detail_sections({})[2].title == "Scenarios by language"


def test_the_cost_card_of_a_day_computed_from_its_requests(tmp_path: Path) -> None:
    """daily_metrics from requests at the built-in prices, rendered; the card read back against sums by hand."""
    at = f"{DAY}T10:00:00Z"
    rows = clean_requests(
        {
            "timestamp": at,
            "model": "gpt-4o-mini",
            "status_code": 200,
            "prompt_tokens": 100_000,
            "completion_tokens": 50_000,
        },
        {
            "timestamp": at,
            "model": "claude-sonnet-4-20250514",
            "status_code": 200,
            "prompt_tokens": 200_000,
            "cached_tokens": 100_000,
            "completion_tokens": 10_200,
        },
        {"timestamp": at, "model": "gpt-4o-mini", "status_code": 200},  # streamed without usage: unmetered
        {"timestamp": at, "model": "our-private-llm", "status_code": 200, "prompt_tokens": 10, "completion_tokens": 5},
    )
    sessions = pd.DataFrame({"start": pd.Series([], dtype="datetime64[ns, UTC]"), "duration_s": [], "turns": []})
    daily = daily_metrics(rows, sessions, DAY, "UTC", prices_on(load_prices(), DAY))
    # Published list prices: gpt-4o-mini $0.15 / $0.60; Claude Sonnet 4 $3 input, $0.30 cache reads, $15 output.
    estimate = (100_000 * 0.15 + 50_000 * 0.60 + 100_000 * 3.0 + 100_000 * 0.30 + 10_200 * 15.0) / 1e6
    html = render_report(
        DAY, daily, report_hourly([1] * 24, [0] * 24), pd.Series([100.0]), report_quality({}), [], tmp_path
    ).read_text(encoding="utf-8")
    assert _cost_card(html) == (
        "$0.53 | no request logged a cost: estimate covers 2 of 4 requests · 1 unmetered · 1 unpriced"
    )
    assert estimate == pytest.approx(0.528) and daily.iloc[0]["cost_estimate_usd"] == pytest.approx(estimate)


def test_a_share_that_rounds_to_zero_never_reads_minus_zero() -> None:
    # A bill a hair above the log: -0.00004 of it. Rounded to one decimal of a percent that is zero, unsigned.
    assert [format_pct(v) for v in (-0.00004, -0.0, 0.00004, -0.0006, 0.025)] == [
        "0.0%",
        "0.0%",
        "0.0%",
        "-0.1%",
        "2.5%",
    ]


def test_an_amount_under_a_cent_keeps_two_significant_digits() -> None:
    # A day of a few small calls costs less than a cent: "$0.00" or "$0.01" would misstate it.
    amounts = (0.0051393, 0.00025, 0.000001, 0.01, 1234.5, -0.4, -0.003, 0.0)
    assert [format_usd(v) for v in amounts] == [
        "$0.0051",
        "$0.00025",
        "$0.0000010",
        "$0.01",
        "$1,234.50",
        "-$0.40",
        "-$0.0030",
        "$0.00",
    ]


def test_one_amount_reads_alike_logged_or_computed() -> None:
    """The same amount drew "$0.00022" as logged and "$0.00023" as computed: the floats differ by a hair."""
    computed = 0.00009 * 2.5  # 0.00022500000000000002
    assert computed != 0.000225
    assert format_usd(computed) == format_usd(0.000225) == "$0.00023"
    assert format_usd(0.125) == "$0.13" and format_usd(2.675) == "$2.68"  # half up, as a person rounds


def test_the_feedback_note_says_when_ratings_are_of_another_days_sessions() -> None:
    """A new user's day: 92 ratings in the note, 90 in the table (2 rate a session that started the day before)."""
    day = report_tables()["feedback_daily"]["day"].iloc[0]
    daily = pd.DataFrame(
        {"day": [day], "ratings": [92], "rated_sessions": [29], "feedback_coverage": [0.3], "satisfaction": [0.739]}
    )
    by_model = pd.DataFrame({"day": day, "model": ["a", "b"], "ratings": [60, 30], "satisfaction": [0.7, 0.8]})
    note = {s.title: s for s in detail_sections({"feedback_daily": daily, "feedback_by_model": by_model})}[
        "Feedback by model"
    ].note
    assert note.endswith(
        "The table counts the 90 ratings of this day's sessions; 2 rate sessions that started on another day."
    )
    assert note.startswith("92 ratings; 29 sessions of this day rated (30.0% of its sessions); satisfaction 73.9%.")
    one = {"feedback_daily": daily.assign(ratings=47), "feedback_by_model": by_model.assign(ratings=[30, 16])}
    note = {s.title: s for s in detail_sections(one)}["Feedback by model"].note
    assert note.endswith(
        "The table counts the 46 ratings of this day's sessions; 1 rates a session that started on another day."
    )
    whole = {
        s.title: s for s in detail_sections({"feedback_daily": daily, "feedback_by_model": by_model.assign(ratings=46)})
    }
    assert "another day" not in whole["Feedback by model"].note
