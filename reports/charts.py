"""Charts for the daily report, drawn off-screen as PNG files (size and style: reports.chartkit).

Each function writes one 900 px wide PNG and returns its path. The charts every page shows (the hours,
latency, the trends) say "no data" on empty input, so the layout never breaks; the ones beside a table
section are drawn only when the day has their data (see reports.render.render_report), and the table says
what is missing. Latencies read as on the pages ("420 ms", "1.8 s"); a rate or a satisfaction carries the
number of requests or ratings it is of.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, PercentFormatter

from chatpulse.formatting import format_duration, format_ms, format_usd
from chatpulse.reports.chartkit import (
    AMBER,
    BLUE,
    GREEN,
    IDLE,
    INK,
    MS,
    MUTED,
    PERCENTILE_COLOURS,
    RED,
    THOUSANDS,
    chart,
    figure,
    hbar_height,
    hbars,
    hour_axis,
    legend_below_title,
    no_data,
    thin_ticks,
)
from chatpulse.stats import percentile, present


def _by_hour(hourly: pd.DataFrame) -> pd.DataFrame:
    """Index by hour 0-23 so missing hours show as gaps instead of shifting the axis."""
    return hourly.set_index("hour").reindex(range(24))


def requests_per_hour(hourly: pd.DataFrame, previous: pd.DataFrame, path: Path) -> Path:
    """Requests per hour (errors overlaid) against the trailing average for that hour, to show unusual load.

    ``previous`` holds the hourly rows of the days before (up to 7); an hour a present day has no row
    for counts as zero requests, and the average is over the days present.
    """
    hours = _by_hour(hourly)
    requests = hours["requests"].fillna(0)
    days = previous["day"].nunique() if len(previous) else 0
    with chart(path, "Requests per hour", "Hour of day", "Requests") as ax:
        if requests.sum() == 0 and days == 0:
            no_data(ax)
            return path
        hour_axis(ax)
        ax.bar(hours.index, requests, width=0.8, color=BLUE, label="Requests")
        ax.bar(hours.index, hours["errors"].fillna(0), width=0.8, color=RED, label="Errors")
        if days:
            average = previous.groupby("hour")["requests"].sum().reindex(range(24), fill_value=0) / days
            ax.step(average.index, average, where="mid", color=INK, linewidth=1.6, label=f"{days}-day average")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.yaxis.set_major_formatter(THOUSANDS)
        legend_below_title(ax)
    return path


def latency_distribution(latencies: pd.Series, daily: pd.DataFrame, path: Path) -> Path:
    """Log-scale latency histogram with the day's p50/p95/p99 marked, to show the tail's shape.

    The axis is labelled at 1-2-5 steps in ms or s; labels that would overlap are left out.
    """
    values = pd.to_numeric(latencies, errors="coerce").astype(float)
    values = values[np.isfinite(values) & (values > 0)]
    with chart(path, "Latency distribution", "Latency (log scale)", "Requests") as ax:
        if values.empty:
            no_data(ax)
            return path
        bins = np.geomspace(values.min() / 1.05, values.max() * 1.05, 40)
        ax.hist(values, bins=bins, color=BLUE, alpha=0.9)
        ax.set_xscale("log")
        ax.set_xlim(bins[0], bins[-1])
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(MS)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.yaxis.set_major_formatter(THOUSANDS)
        row = daily.iloc[0] if len(daily) else pd.Series(dtype=float)
        for name, colour in PERCENTILE_COLOURS.items():
            ms = row.get(f"latency_{name}_ms")
            if ms is not None and pd.notna(ms):
                ax.axvline(ms, color=colour, linestyle="--", linewidth=1.6, label=f"{name} {format_ms(ms)}")
        if ax.get_legend_handles_labels()[0]:
            legend_below_title(ax)
        thin_ticks(ax.xaxis, ax.figure)
    return path


def error_rate_by_hour(hourly: pd.DataFrame, path: Path) -> Path:
    """Error rate per hour against the day's rate, with each hour's requests (the rate's sample size) in a
    panel below; idle hours are shaded so 0% is not read as no traffic."""
    hours = _by_hour(hourly)
    rate = hours["error_rate"].dropna()
    with figure(path, nrows=2, height_in=4.4, sharex=True, height_ratios=(3, 1)) as (ax, sample):
        ax.set_title("Error rate by hour")
        ax.set_ylabel("Error rate")
        if rate.empty:
            no_data(ax)
            sample.set_axis_off()
            return path
        hour_axis(ax)
        day_rate = hours["errors"].sum() / hours["requests"].sum()
        top = max(rate.max(), day_rate, 0.01) * 1.15
        ax.set_ylim(0, top)
        ax.bar(rate.index, rate, width=0.8, color=RED, label="Hourly")
        idle = hours.index.difference(rate.index)
        if len(idle):
            ax.bar(idle, top, width=0.8, color=IDLE, label="No requests")
        ax.axhline(day_rate, color=INK, linestyle="--", linewidth=1.2, label=f"Day {day_rate:.1%}")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        legend_below_title(ax)
        ax.tick_params(labelbottom=False)
        sample.bar(hours.index, hours["requests"].fillna(0), width=0.8, color=MUTED)
        sample.set_ylabel("Requests")
        sample.set_xlabel("Hour of day")
        sample.yaxis.set_major_locator(MaxNLocator(nbins=2, integer=True))
        sample.yaxis.set_major_formatter(THOUSANDS)
        hour_axis(sample)
    return path


def error_rate_by_kind(kinds: pd.DataFrame, path: Path) -> Path:
    """Share of requests failing per error kind, so one dominant failure mode stands out."""
    kinds = kinds[kinds["errors"] > 0].sort_values("share_of_requests", ascending=False, kind="stable")
    with figure(path, height_in=hbar_height(len(kinds))) as (ax,):
        ax.set_title("Error rate by kind")
        ax.set_xlabel("Share of requests")
        pairs = zip(kinds["share_of_requests"], kinds["errors"], strict=True)
        text = [f"{rate:.1%} ({errors:,})" for rate, errors in pairs]
        hbars(ax, kinds["error_kind"], kinds["share_of_requests"], RED, text)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    return path


# Session length buckets by upper bound in seconds; lengths are heavily skewed, so buckets beat a histogram.
_SESSION_EDGES = (0, 60, 300, 900, 1800, 3600)
_SESSION_EDGE_LABELS = ("0", "1 min", "5 min", "15 min", "30 min", "1 h")


def session_length(durations: pd.Series, path: Path) -> Path:
    """Sessions per length bucket, so one can see whether people ask one thing or work for an hour.

    The x axis runs linearly within each bucket, with the bucket edges labelled (the last bucket ends at the
    longest session, or 2 h): the median line stands at its own value, not at a bucket's edge.
    """
    values = pd.to_numeric(durations, errors="coerce").dropna()
    with chart(path, "Session length", "Session length", "Sessions") as ax:
        if values.empty:
            no_data(ax)
            return path
        end = max(float(values.max()), 7200.0)
        edges = [*_SESSION_EDGES, end]
        counts = np.histogram(values, bins=edges)[0]
        positions = np.arange(len(edges))
        ax.bar(positions[:-1] + 0.5, counts, width=0.9, color=BLUE)
        ax.set_xticks(positions, [*_SESSION_EDGE_LABELS, format_duration(end)])
        ax.set_xlim(0, positions[-1])
        median = percentile(present(values), 50)
        ax.axvline(
            float(np.interp(median, edges, positions)),
            color=INK,
            linestyle="--",
            linewidth=1.4,
            label=f"median {format_duration(median)}",
        )
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.yaxis.set_major_formatter(THOUSANDS)
        legend_below_title(ax)
        thin_ticks(ax.xaxis, ax.figure)
    return path


def scenarios(scenario_daily: pd.DataFrame, path: Path) -> Path:
    """Each scenario's share of sessions above its satisfaction, to show what is used a lot but liked little.

    A satisfaction bar carries the number of ratings it is of ("82% (n=40)").
    """
    rows = scenario_daily[scenario_daily["sessions"] > 0].sort_values("share", ascending=False, kind="stable")
    with figure(path, nrows=2, height_in=hbar_height(len(rows), panels=2)) as (share, liked):
        share.set_title("Scenarios by share of sessions")
        liked.set_title("Satisfaction (n = ratings)")
        hbars(share, rows["scenario"], rows["share"], BLUE, [f"{v:.0%}" for v in rows["share"]])
        pairs = zip(rows["satisfaction"], rows["ratings"], strict=True)
        text = ["no ratings" if pd.isna(v) else f"{v:.0%} (n={int(n):,})" for v, n in pairs]
        hbars(liked, rows["scenario"], rows["satisfaction"], GREEN, text)
        for ax in (share, liked):
            ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        share.xaxis.set_major_locator(MaxNLocator(nbins=4))
        liked.set_xlim(0, 1.45)  # room for the value labels right of a 100% bar
        liked.set_xticks([0, 0.5, 1])
    return path


_TOP_MODELS = 8


def tokens_and_cost(model_costs: pd.DataFrame, path: Path) -> Path:
    """Tokens and estimated cost per model, one panel above the other: a cheap model can carry most tokens,
    or the reverse."""
    rows = model_costs.sort_values("total_tokens", ascending=False, kind="stable").head(_TOP_MODELS)
    with figure(path, nrows=2, height_in=hbar_height(len(rows), panels=2)) as (tokens, cost):
        tokens.set_title("Tokens by model")
        cost.set_title("Estimated cost (USD)")
        hbars(tokens, rows["model"], rows["total_tokens"], BLUE, [f"{v:,.0f}" for v in rows["total_tokens"]])
        # No estimate: the model has no price, or its requests are unmetered or their counts contradict.
        text = ["no estimate" if pd.isna(v) else format_usd(v) for v in rows["cost_estimate_usd"]]
        hbars(cost, rows["model"], rows["cost_estimate_usd"], AMBER, text)
        tokens.xaxis.set_major_locator(MaxNLocator(3))
        tokens.xaxis.set_major_formatter(THOUSANDS)
        cost.xaxis.set_major_locator(MaxNLocator(3))
    return path


FEW_DAYS = 7  # a trend of at most this many days ticks each day it has


def daily_trends(daily: pd.DataFrame, path: Path, title: str = "Last 30 days") -> Path:
    """Requests, latency percentiles and error rate per day on a shared date axis, so a slow drift is visible."""
    rows = daily.sort_values("day")
    days = pd.to_datetime(rows["day"])
    panels = (
        ("Requests", {"": (rows["requests"], BLUE)}, THOUSANDS),
        ("Latency", {name: (rows[f"latency_{name}_ms"], colour) for name, colour in PERCENTILE_COLOURS.items()}, MS),
        ("Error rate", {"": (rows["error_rate"], RED)}, PercentFormatter(xmax=1, decimals=1)),
    )
    with figure(path, nrows=3, height_in=6.0, sharex=True) as axes:
        axes[0].set_title(title)
        if rows.empty:
            no_data(axes[0])
            for ax in axes[1:]:
                ax.set_axis_off()
            return path
        for ax, (label, lines, formatter) in zip(axes, panels, strict=True):
            if all(values.isna().all() for values, _ in lines.values()):  # a log without latencies: no "0 ms" axis
                ax.set_ylabel(label)
                ax.text(0.5, 0.5, "none logged", transform=ax.transAxes, ha="center", va="center", color=MUTED)
                ax.set_yticks([])
                continue
            for name, (values, colour) in lines.items():
                ax.plot(days, values, color=colour, marker="o", markersize=3, linewidth=1.6, label=name or None)
            if len(lines) > 1:
                legend_below_title(ax)
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(formatter)
            # Counts tick at whole numbers: 0.5 requests would be labelled "0" or "1".
            ax.yaxis.set_major_locator(MaxNLocator(3, integer=formatter is THOUSANDS))
        axes[-1].xaxis.set_major_formatter(DateFormatter("%b %d"))
        if days.nunique() <= FEW_DAYS:  # else the date locator ticks hours, each labelled with its day
            axes[-1].set_xticks(days.unique())
        thin_ticks(axes[-1].xaxis, axes[-1].figure)
    return path
