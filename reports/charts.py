"""Charts for the daily report, drawn off-screen as PNG files.

Each function writes one 900 px wide PNG and returns its path. The charts every
page shows (the hours, latency, the trends) say "no data" on empty input, so the
layout never breaks; the ones beside a table section are drawn only when the day
has their data (see reports.render.render_report), and the table says what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the pipeline runs headless: never try to open a window

import matplotlib.pyplot as plt  # noqa: E402  (must follow the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.dates import DateFormatter  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from chatpulse.reports import fonts  # noqa: E402
from chatpulse.stats import percentile, present  # noqa: E402

fonts.configure()  # Chinese scenario and model names draw as glyphs, not boxes

# Muted palette, mirrored by the CSS in templates/_style.html.j2.
INK = "#2f3b45"
MUTED = "#7a8791"
GRID = "#e4e8eb"
IDLE = "#eef1f3"  # background for hours without requests
BLUE = "#5b7fa6"
RED = "#c0634f"
PERCENTILE_COLOURS = {"p50": "#5f8f6b", "p95": "#d29a3c", "p99": RED}

_DPI = 100
_SIZE_IN = (9.0, 3.6)  # 900x360 px at _DPI
_THOUSANDS = FuncFormatter(lambda value, _pos: f"{value:,.0f}")
_STYLE = {
    "font.size": 10,
    "text.color": INK,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 10,
    "axes.labelcolor": INK,
    "axes.edgecolor": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "axes.axisbelow": True,
    "grid.color": GRID,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
}


@contextmanager
def _figure(
    path: Path, ncols: int = 1, nrows: int = 1, height_in: float = _SIZE_IN[1], sharex: bool = False
) -> Iterator[np.ndarray]:
    """Yield a grid of styled axes, then save to ``path`` and close the figure so daily runs don't leak memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(_SIZE_IN[0], height_in), dpi=_DPI, layout="constrained", squeeze=False, sharex=sharex
        )
        try:
            yield axes.ravel()
            fig.savefig(path, dpi=_DPI, facecolor="white")
        finally:
            plt.close(fig)


@contextmanager
def _chart(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Axes]:
    """One styled 900x360 px chart with its title and axis labels."""
    with _figure(path) as (ax,):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        yield ax


def _no_data(ax: Axes) -> None:
    """Mark an empty chart explicitly, so a blank plot isn't mistaken for a rendering bug."""
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=14, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])


def _by_hour(hourly: pd.DataFrame) -> pd.DataFrame:
    """Index by hour 0-23 so missing hours show as gaps instead of shifting the axis."""
    return hourly.set_index("hour").reindex(range(24))


def _hour_axis(ax: Axes) -> None:
    """Label all 24 hours, since readers look up specific hours."""
    ax.set_xticks(range(24), [f"{hour:02d}" for hour in range(24)])
    ax.set_xlim(-0.6, 23.6)


def _legend_top_right(ax: Axes) -> None:
    """Put the legend in the title row, where it never covers data."""
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=4, borderaxespad=0.2)


def requests_per_hour(hourly: pd.DataFrame, previous: pd.DataFrame, path: Path) -> Path:
    """Requests per hour (errors overlaid) against the trailing average for that hour, to show unusual load.

    ``previous`` holds the hourly rows of the days before (up to 7); an hour a present day has no row
    for counts as zero requests, and the average is over the days present.
    """
    hours = _by_hour(hourly)
    requests = hours["requests"].fillna(0)
    days = previous["day"].nunique() if len(previous) else 0
    with _chart(path, "Requests per hour", "Hour of day", "Requests") as ax:
        if requests.sum() == 0 and days == 0:
            _no_data(ax)
            return path
        _hour_axis(ax)
        ax.bar(hours.index, requests, width=0.8, color=BLUE, label="Requests")
        ax.bar(hours.index, hours["errors"].fillna(0), width=0.8, color=RED, label="Errors")
        if days:
            average = previous.groupby("hour")["requests"].sum().reindex(range(24), fill_value=0) / days
            ax.step(average.index, average, where="mid", color=INK, linewidth=1.6, label=f"{days}-day average")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(_THOUSANDS)
        _legend_top_right(ax)
    return path


def latency_distribution(latencies: pd.Series, daily: pd.DataFrame, path: Path) -> Path:
    """Log-scale latency histogram with the day's p50/p95/p99 marked, to show the tail's shape."""
    values = pd.to_numeric(latencies, errors="coerce").astype(float)
    values = values[np.isfinite(values) & (values > 0)]
    with _chart(path, "Latency distribution", "Latency (ms, log scale)", "Requests") as ax:
        if values.empty:
            _no_data(ax)
            return path
        bins = np.geomspace(values.min() / 1.05, values.max() * 1.05, 40)
        ax.hist(values, bins=bins, color=BLUE, alpha=0.9)
        ax.set_xscale("log")
        ax.set_xlim(bins[0], bins[-1])
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(_THOUSANDS)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(_THOUSANDS)
        row = daily.iloc[0] if len(daily) else pd.Series(dtype=float)
        for name, colour in PERCENTILE_COLOURS.items():
            ms = row.get(f"latency_{name}_ms")
            if ms is not None and pd.notna(ms):
                ax.axvline(ms, color=colour, linestyle="--", linewidth=1.6, label=f"{name} {ms:,.0f} ms")
        if ax.get_legend_handles_labels()[0]:
            _legend_top_right(ax)
    return path


def error_rate_by_hour(hourly: pd.DataFrame, path: Path) -> Path:
    """Error rate per hour against the day's rate; idle hours are shaded so 0% is not read as no traffic."""
    hours = _by_hour(hourly)
    rate = hours["error_rate"].dropna()
    with _chart(path, "Error rate by hour", "Hour of day", "Error rate (%)") as ax:
        if rate.empty:
            _no_data(ax)
            return path
        _hour_axis(ax)
        day_rate = hours["errors"].sum() / hours["requests"].sum()
        top = max(rate.max(), day_rate, 0.01) * 1.15
        ax.set_ylim(0, top)
        ax.bar(rate.index, rate, width=0.8, color=RED, label="Hourly")
        idle = hours.index.difference(rate.index)
        if len(idle):
            ax.bar(idle, top, width=0.8, color=IDLE, label="No requests")
        ax.axhline(day_rate, color=INK, linestyle="--", linewidth=1.2, label=f"Day {day_rate:.1%}")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        _legend_top_right(ax)
    return path


def _hbars(ax: Axes, labels: pd.Series, values: pd.Series, colour: str, text: list[str]) -> None:
    """Horizontal bars, first row on top, each labelled with its value so no axis needs reading."""
    positions = np.arange(len(labels))
    ax.barh(positions, values.fillna(0), height=0.7, color=colour)
    ax.set_yticks(positions, [str(label) for label in labels])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", visible=True)
    for position, value, label in zip(positions, values.fillna(0), text, strict=True):
        ax.annotate(label, (value, position), xytext=(4, 0), textcoords="offset points", va="center", color=INK)
    ax.margins(x=0.18)


def error_rate_by_kind(kinds: pd.DataFrame, path: Path) -> Path:
    """Share of requests failing per error kind, so one dominant failure mode stands out."""
    kinds = kinds[kinds["errors"] > 0].sort_values("share_of_requests", ascending=False, kind="stable")
    with _chart(path, "Error rate by kind", "Share of requests", "") as ax:
        pairs = zip(kinds["share_of_requests"], kinds["errors"], strict=True)
        text = [f"{rate:.1%} ({errors:,})" for rate, errors in pairs]
        _hbars(ax, kinds["error_kind"], kinds["share_of_requests"], RED, text)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1))
    return path


# Session length buckets: upper bound in seconds and label; lengths are heavily skewed, so buckets beat a histogram.
_SESSION_BUCKETS = ((60, "<1 min"), (300, "1-5 min"), (900, "5-15 min"), (1800, "15-30 min"), (3600, "30-60 min"))


def session_length(durations: pd.Series, path: Path) -> Path:
    """Sessions per length bucket, so one can see whether people ask one thing or work for an hour."""
    values = pd.to_numeric(durations, errors="coerce").dropna()
    with _chart(path, "Session length", "Session length", "Sessions") as ax:
        edges = [-np.inf, *(bound for bound, _ in _SESSION_BUCKETS), np.inf]
        labels = [label for _, label in _SESSION_BUCKETS] + ["1 h+"]
        counts = pd.cut(values, edges, labels=labels, right=False).value_counts().reindex(labels)
        ax.bar(range(len(labels)), counts, width=0.7, color=BLUE)
        ax.set_xticks(range(len(labels)), labels)
        median = percentile(present(values), 50)
        ax.axvline(
            np.searchsorted(edges[1:-1], median, side="right"),
            color=INK,
            linestyle="--",
            linewidth=1.2,
            label=f"median {median / 60:,.1f} min",
        )
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(_THOUSANDS)
        _legend_top_right(ax)
    return path


def scenarios(scenario_daily: pd.DataFrame, path: Path) -> Path:
    """Each scenario's share of sessions beside its satisfaction, to show what is used a lot but liked little."""
    rows = scenario_daily[scenario_daily["sessions"] > 0].sort_values("share", ascending=False, kind="stable")
    with _figure(path, ncols=2) as (share, liked):
        share.set_title("Scenarios by share of sessions")
        liked.set_title("Satisfaction")
        _hbars(share, rows["scenario"], rows["share"], BLUE, [f"{v:.0%}" for v in rows["share"]])
        satisfaction = rows["satisfaction"]
        text = ["no ratings" if pd.isna(v) else f"{v:.0%}" for v in satisfaction]
        _hbars(liked, rows["scenario"], satisfaction, PERCENTILE_COLOURS["p50"], text)
        liked.set_yticklabels([])
        for ax in (share, liked):
            ax.xaxis.set_major_formatter(PercentFormatter(xmax=1))
        liked.set_xlim(0, 1.2)  # room for the value labels right of a 100% bar
        liked.set_xticks([0, 0.25, 0.5, 0.75, 1])
    return path


_TOP_MODELS = 8


def tokens_and_cost(model_costs: pd.DataFrame, path: Path) -> Path:
    """Tokens and estimated cost per model side by side: a cheap model can carry most tokens, or the reverse."""
    rows = model_costs.sort_values("total_tokens", ascending=False, kind="stable").head(_TOP_MODELS)
    with _figure(path, ncols=2) as (tokens, cost):
        tokens.set_title("Tokens by model")
        cost.set_title("Estimated cost (USD)")
        _hbars(tokens, rows["model"], rows["total_tokens"], BLUE, [f"{v:,.0f}" for v in rows["total_tokens"]])
        text = ["unpriced" if pd.isna(v) else f"${v:,.2f}" for v in rows["cost_estimate_usd"]]
        _hbars(cost, rows["model"], rows["cost_estimate_usd"], PERCENTILE_COLOURS["p95"], text)
        cost.set_yticklabels([])
        tokens.xaxis.set_major_locator(MaxNLocator(4))
        tokens.xaxis.set_major_formatter(_THOUSANDS)
    return path


def daily_trends(daily: pd.DataFrame, path: Path, title: str = "Last 30 days") -> Path:
    """Requests, latency percentiles and error rate per day on a shared date axis, so a slow drift is visible."""
    rows = daily.sort_values("day")
    days = pd.to_datetime(rows["day"])
    panels = (
        ("Requests", {"": (rows["requests"], BLUE)}, _THOUSANDS),
        ("Latency (ms)", {name: (rows[f"latency_{name}_ms"], colour) for name, colour in PERCENTILE_COLOURS.items()},
         _THOUSANDS),
        ("Error rate", {"": (rows["error_rate"], RED)}, PercentFormatter(xmax=1, decimals=1)),
    )  # fmt: skip
    with _figure(path, nrows=3, height_in=5.4, sharex=True) as axes:
        axes[0].set_title(title)
        if rows.empty:
            _no_data(axes[0])
            for ax in axes[1:]:
                ax.set_axis_off()
            return path
        for ax, (label, lines, formatter) in zip(axes, panels, strict=True):
            for name, (values, colour) in lines.items():
                ax.plot(days, values, color=colour, marker="o", markersize=3, linewidth=1.6, label=name or None)
            if len(lines) > 1:
                _legend_top_right(ax)
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(formatter)
            ax.yaxis.set_major_locator(MaxNLocator(4))
        axes[-1].xaxis.set_major_formatter(DateFormatter("%b %d"))
        if len(days) == 1:
            axes[-1].set_xticks(days)
    return path
