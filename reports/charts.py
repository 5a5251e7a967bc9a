"""Charts for the daily report, drawn off-screen as PNG files.

Each function writes one 900x360 px PNG and returns its path. Empty input
still yields a titled chart saying "no data", so the page layout never breaks.
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
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

# Muted palette, mirrored by the CSS in templates/report.html.j2.
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
def _chart(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Axes]:
    """Yield styled axes, then save to ``path`` and close the figure so daily runs don't leak memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=_SIZE_IN, dpi=_DPI, layout="constrained")
        try:
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            yield ax
            fig.savefig(path, dpi=_DPI, facecolor="white")
        finally:
            plt.close(fig)


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


def requests_per_hour(hourly: pd.DataFrame, path: Path) -> Path:
    """Bar chart of requests per hour with errors overlaid, to show load and where failures cluster."""
    hours = _by_hour(hourly)
    requests = hours["requests"].fillna(0)
    with _chart(path, "Requests per hour", "Hour of day", "Requests") as ax:
        if requests.sum() == 0:
            _no_data(ax)
        else:
            _hour_axis(ax)
            ax.bar(hours.index, requests, width=0.8, color=BLUE, label="Requests")
            ax.bar(hours.index, hours["errors"].fillna(0), width=0.8, color=RED, label="Errors")
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
