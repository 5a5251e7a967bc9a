"""How every report chart is drawn: one size, one style, and the helpers the charts share.

The charts are read on a phone as often as on a screen: each is drawn 6 inches wide at 150 dpi (900 px)
with 12 pt text (25 px), so at the ~380 px a 420 px wide mail client gives it the text is still over 10 px
high, and the pages set two of them side by side on a wide screen at about the same scale. Text from
the logs is drawn literally: mathtext is off, so "$" is a dollar sign, never the start of a formula.
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
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter  # noqa: E402

from chatpulse.formatting import format_ms_tick  # noqa: E402
from chatpulse.reports import fonts  # noqa: E402
from chatpulse.reports.labels import CHART_LABEL_MAX, display_label  # noqa: E402

fonts.configure()  # Chinese scenario and model names draw as glyphs, not boxes

# Muted palette, mirrored by the CSS in templates/_style.html.j2.
INK = "#2f3b45"
MUTED = "#7a8791"
GRID = "#e4e8eb"
IDLE = "#eef1f3"  # background for hours without requests
BLUE = "#5b7fa6"
RED = "#c0634f"
GREEN = "#5f8f6b"
AMBER = "#d29a3c"
PERCENTILE_COLOURS = {"p50": GREEN, "p95": AMBER, "p99": RED}

DPI = 150
WIDTH_IN = 6.0  # 900 px
HEIGHT_IN = 3.4
TEXT_PT = 12.0  # the smallest text on any chart
TITLE_PT = 13.5
# Counts: "2,000"; a tick under 10 that is not whole (an average of less than one request) keeps its
# fraction, "0.2", where ",.0f" drew "0" at every tick.
THOUSANDS = FuncFormatter(
    lambda value, _pos: f"{value:,.0f}" if abs(value) >= 10 or value == round(value) else f"{value:g}"
)
MS = FuncFormatter(lambda value, _pos: format_ms_tick(value))  # latency ticks: "500 ms", "2 s"
_STYLE = {
    "font.size": TEXT_PT,
    "text.parse_math": False,  # labels from the logs may hold "$": drawn as it is, never as mathtext
    "text.color": INK,
    "axes.titlesize": TITLE_PT,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 8,
    "axes.labelsize": TEXT_PT,
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
    "xtick.labelsize": TEXT_PT,
    "ytick.labelsize": TEXT_PT,
    "legend.fontsize": TEXT_PT,
    "legend.frameon": False,
    "legend.handlelength": 1.4,
    "legend.columnspacing": 1.2,
}


@contextmanager
def figure(
    path: Path,
    nrows: int = 1,
    height_in: float = HEIGHT_IN,
    sharex: bool = False,
    height_ratios: tuple[float, ...] | None = None,
) -> Iterator[np.ndarray]:
    """Yield a column of ``nrows`` styled axes (``height_ratios``: their relative heights), then save the
    figure to ``path`` and close it, so daily runs don't leak memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            nrows,
            1,
            figsize=(WIDTH_IN, height_in),
            dpi=DPI,
            layout="constrained",
            squeeze=False,
            sharex=sharex,
            height_ratios=height_ratios,
        )
        try:
            yield axes.ravel()
            fig.savefig(path, dpi=DPI, facecolor="white")
        finally:
            plt.close(fig)


@contextmanager
def chart(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Axes]:
    """One styled chart with its title and axis labels."""
    with figure(path) as (ax,):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        yield ax


def no_data(ax: Axes) -> None:
    """Mark an empty chart explicitly, so a blank plot isn't mistaken for a rendering bug."""
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=14, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_below_title(ax: Axes, ncols: int = 3) -> None:
    """The legend in rows of its own between the title and the plot, where it never covers data and, on a
    chart a phone's width, never runs into the title (which moves up by the legend's height)."""
    legend = ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=ncols, borderaxespad=0.1)
    rows = -(-len(legend.get_texts()) // ncols)
    ax.set_title(ax.get_title(loc="left"), pad=rows * TEXT_PT * 1.6 + 8)


def hour_axis(ax: Axes) -> None:
    """Hours 0-23, a tick each hour and a label every third: 24 labels would touch at a phone's width."""
    ax.set_xticks(range(24), minor=True)
    ax.set_xticks(range(0, 24, 3), [f"{hour:02d}" for hour in range(0, 24, 3)])
    ax.set_xlim(-0.6, 23.6)
    ax.grid(axis="x", visible=False, which="both")


def hbars(ax: Axes, labels: pd.Series, values: pd.Series, colour: str, text: list[str]) -> None:
    """Horizontal bars, first row on top, each labelled with its value so no axis needs reading.

    ``labels`` come from the logs: shown literally, shortened to CHART_LABEL_MAX columns.
    """
    positions = np.arange(len(labels))
    ax.barh(positions, values.fillna(0), height=0.7, color=colour)
    ax.set_yticks(positions, [display_label(label, CHART_LABEL_MAX) for label in labels])
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", visible=True)
    for position, value, label in zip(positions, values.fillna(0), text, strict=True):
        ax.annotate(label, (value, position), xytext=(4, 0), textcoords="offset points", va="center", color=INK)
    ax.margins(x=0.3)


def hbar_height(rows: int, panels: int = 1) -> float:
    """Figure height in inches for ``panels`` stacked bar panels of ``rows`` bars each."""
    return panels * (0.9 + 0.3 * max(rows, 1)) + 0.2


def thin_ticks(axis: Axis, fig: Figure, gap_px: float = 8.0) -> None:
    """Keep only the major ticks whose labels clear the previous kept one by ``gap_px``, left to right, so
    labels never overlap whatever the range (a log axis over six decades has more 1-2-5 ticks than room).
    Lays the figure out once to measure the labels."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    kept, right = [], -np.inf
    for tick in sorted(axis.get_major_ticks(), key=lambda tick: tick.get_loc()):
        if not low <= tick.get_loc() <= high or not tick.label1.get_text():
            continue
        box = tick.label1.get_window_extent(renderer)
        if box.x0 >= right + gap_px:
            kept.append(tick.get_loc())
            right = box.x1
    axis.set_major_locator(FixedLocator(kept))
