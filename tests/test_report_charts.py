"""The charts as drawn: labels from logs shown literally and short, text legible at a phone's width, axis labels
that never overlap, latencies in one unit style, sample sizes beside rates, a median where its value is."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from chatpulse.reports import charts
from chatpulse.reports.chartkit import TEXT_PT
from chatpulse.reports.labels import CHART_LABEL_MAX, ELLIPSIS

from fixtures import full_day, report_daily, report_hourly

MATH = r"gpt-$\badcmd$"  # field case 12: matplotlib would read it as a formula and fail


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Every figure a chart function draws, kept as it was saved (pyplot still closes it)."""
    figures: list[Figure] = []
    close = plt.close

    def keep(fig: Figure) -> None:
        figures.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    yield figures


def _texts(fig: Figure) -> list[Text]:
    """The visible, non-empty texts of a figure, tick labels included (as laid out when it was saved)."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text() and t.get_window_extent().width > 0]


def _every_chart(tmp_path: Path) -> None:
    day = full_day(scenarios=15, models=8)
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    hourly = report_hourly(list(range(0, 240, 10)), list(range(24)))
    latencies = pd.Series(np.random.default_rng(4).lognormal(7, 2.0, 3000))
    charts.requests_per_hour(hourly, hourly.assign(day="2026-11-19"), tmp_path / "a.png")
    charts.latency_distribution(latencies, report_daily(), tmp_path / "b.png")
    charts.error_rate_by_hour(hourly, tmp_path / "c.png")
    charts.error_rate_by_kind(day["error_kinds"], tmp_path / "d.png")
    charts.session_length(day["sessions"]["duration_s"], tmp_path / "e.png")
    charts.scenarios(day["scenario_daily"], tmp_path / "f.png")
    charts.tokens_and_cost(day["model_costs"], tmp_path / "g.png")
    charts.daily_trends(history, tmp_path / "h.png")


def _overlapping(labels: list[Text]) -> list[tuple[str, str]]:
    extents = [(label.get_window_extent(), label.get_text()) for label in labels if label.get_text()]
    boxes = sorted(((box.x0, box.x1, text) for box, text in extents), key=lambda item: item[0])
    return [(a[2], b[2]) for a, b in zip(boxes, boxes[1:], strict=False) if b[0] < a[1]]


def test_no_chart_text_is_smaller_than_12_pt_and_no_tick_labels_overlap(tmp_path: Path, drawn) -> None:
    _every_chart(tmp_path)
    assert len(drawn) == 8
    for fig in drawn:
        texts = _texts(fig)
        assert texts and min(text.get_fontsize() for text in texts) >= TEXT_PT == 12
        for ax in fig.axes:
            shown = [label for label in ax.get_xticklabels() if label.get_visible()]
            assert _overlapping(shown) == [], ax.get_title(loc="left")


def test_labels_from_logs_are_drawn_literally_and_short(tmp_path: Path, drawn) -> None:
    costs = full_day(models=3)["model_costs"]
    costs["model"] = [MATH, "m" * 200_000, "通义千问-" * 20]
    charts.tokens_and_cost(costs, tmp_path / "t.png")
    kinds = pd.DataFrame({"error_kind": ["$x^2$ err"], "errors": [3], "share_of_requests": [0.1]})
    charts.error_rate_by_kind(kinds, tmp_path / "k.png")
    tokens, kind = drawn[0].axes[0], drawn[1].axes[0]
    labels = [label.get_text() for label in tokens.get_yticklabels()]
    assert labels[0] == MATH  # shown as written: no formula, no error
    assert labels[1] == "m" * 14 + ELLIPSIS + "m" * 9  # the start, an ellipsis, the end: 24 columns
    assert labels[2].startswith("通义千问-") and labels[2].endswith("千问-") and ELLIPSIS in labels[2]
    assert all(len(label) <= CHART_LABEL_MAX for label in labels)
    assert sum(2 if "\u4e00" <= char <= "\u9fff" else 1 for char in labels[2]) <= CHART_LABEL_MAX  # CJK is wide
    assert [label.get_text() for label in kind.get_yticklabels()] == ["$x^2$ err"]


def test_the_latency_axis_reads_ms_then_s_and_never_overlaps_over_seven_decades(tmp_path: Path, drawn) -> None:
    latencies = pd.Series(np.geomspace(0.2, 2_000_000, 5000))  # 0.2 ms to 33 minutes
    charts.latency_distribution(latencies, report_daily(latency_p50_ms=850.0), tmp_path / "l.png")
    ax = drawn[0].axes[0]
    shown = [label for label in ax.get_xticklabels() if label.get_visible() and label.get_text()]
    assert _overlapping(shown) == [] and len(shown) >= 5
    for label, position in zip(shown, [label.get_position()[0] for label in shown], strict=True):
        number, unit = re.fullmatch(r"([\d,.]+) (ms|s)", label.get_text()).groups()
        assert unit == ("ms" if position < 1000 else "s")  # ms under 1 s, s above
        assert float(number.replace(",", "")) * (1 if unit == "ms" else 1000) == pytest.approx(position)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["p50 850 ms", "p95 1.8 s", "p99 3.3 s"]


def test_the_session_median_is_drawn_at_its_value(tmp_path: Path, drawn) -> None:
    durations = pd.Series([10.0, 70.0, 150.0, 180.0, 200.0, 250.0, 5000.0])
    charts.session_length(durations, tmp_path / "s.png")
    ax = drawn[0].axes[0]
    median = statistics.median(durations)  # 180 s, inside the 1-5 min bucket
    edges = {label.get_text(): tick for label, tick in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)}
    line = next(line for line in ax.get_lines() if isinstance(line, Line2D) and line.get_linestyle() == "--")
    x = line.get_xdata()[0]
    # The axis is linear between labelled edges: 180 s lies halfway from "1 min" (60 s) to "5 min" (300 s).
    assert x == pytest.approx(edges["1 min"] + (median - 60) / (300 - 60) * (edges["5 min"] - edges["1 min"]))
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["median 3.0 min"]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == [1, 5, 0, 0, 0, 1]  # <1 min, 1-5, 5-15, 15-30, 30-60 min, 1 h to the longest


def test_hourly_error_rates_and_satisfaction_carry_their_sample_sizes(tmp_path: Path, drawn) -> None:
    requests = [0] * 6 + [5, 40, 120, 180, 160, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1, 0]
    charts.error_rate_by_hour(report_hourly(requests, [r // 10 for r in requests]), tmp_path / "e.png")
    sample = drawn[0].axes[1]
    assert sample.get_ylabel() == "Requests"
    assert [bar.get_height() for bar in sample.patches] == requests  # each hour's rate is over these
    scenario_daily = pd.DataFrame(
        {"scenario": ["coding", "writing", "chat"], "sessions": [30, 10, 5], "share": [0.6, 0.3, 0.1],
         "satisfaction": [0.8, 0.625, None], "ratings": [40, 8, 0]}
    )  # fmt: skip
    charts.scenarios(scenario_daily, tmp_path / "s.png")
    liked = drawn[1].axes[1]
    assert [text.get_text() for text in liked.texts] == ["80% (n=40)", "62% (n=8)", "no ratings"]


def test_a_trend_panel_with_nothing_logged_says_so_instead_of_a_zero_axis(tmp_path: Path, drawn) -> None:
    """A log without latencies (a Batch API output) drew a latency axis of "0 ms, 0 ms, 0 ms"."""
    no_latency = report_daily().assign(latency_p50_ms=np.nan, latency_p95_ms=np.nan, latency_p99_ms=np.nan)
    charts.daily_trends(no_latency, tmp_path / "t.png")
    requests, latency, errors = drawn[0].axes
    assert [t.get_text() for t in latency.texts] == ["none logged"] and not latency.get_yticks().size
    assert not latency.lines and latency.get_legend() is None
    assert requests.lines and errors.lines and requests.get_yticks().size  # the other panels as before


def test_a_short_trend_ticks_whole_requests_and_each_day_once(tmp_path: Path, drawn) -> None:
    """Two days of 1 and 2 requests: ticks at 0.5 were labelled "0" and "1", and the days repeated per hour."""
    two = pd.concat([report_daily(day="2026-11-19").assign(requests=1), report_daily().assign(requests=2)])
    charts.daily_trends(two, tmp_path / "t.png")
    requests, _, errors = drawn[0].axes
    ticks = requests.get_yticks()
    assert len(ticks) and all(float(tick).is_integer() for tick in ticks)
    assert [label.get_text() for label in errors.get_xticklabels()] == ["Nov 19", "Nov 20"]


def test_an_hourly_average_under_one_request_has_tick_labels_that_differ(tmp_path: Path, drawn) -> None:
    """An empty day after two days with one request between them: the average's axis read "0, 0, 0, 0"."""
    zeros = [0] * 24
    empty = report_hourly(zeros, zeros)
    previous = pd.concat(
        [
            report_hourly([1, *zeros[1:]], zeros).assign(day="2026-11-18"),
            report_hourly(zeros, zeros).assign(day="2026-11-19"),
        ]
    )
    charts.requests_per_hour(empty, previous, tmp_path / "h.png")
    labels = [label.get_text() for label in drawn[0].axes[0].get_yticklabels() if label.get_text()]
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
