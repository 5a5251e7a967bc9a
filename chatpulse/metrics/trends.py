"""The daily summary: headline numbers with day-over-day and week-over-week deltas
and 7- and 28-day rolling means, from the metric tables already in the warehouse."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from chatpulse.tables import table_columns

# metric name -> (table, column) it is read from; model_costs columns are summed over models,
# NULL when every model's is (so cost_usd, the logged cost, is missing, not $0, on a day that
# logged none, as daily_metrics.cost_usd is).
HEADLINES: dict[str, tuple[str, str]] = {
    "requests": ("daily_metrics", "requests"),
    "errors": ("daily_metrics", "errors"),
    "error_rate": ("daily_metrics", "error_rate"),
    "peak_rpm": ("daily_metrics", "peak_rpm"),
    "latency_p50_ms": ("daily_metrics", "latency_p50_ms"),
    "latency_p95_ms": ("daily_metrics", "latency_p95_ms"),
    "ttft_p50_ms": ("daily_metrics", "ttft_p50_ms"),
    "total_tokens": ("daily_metrics", "total_tokens"),
    "cost_usd": ("model_costs", "cost_logged_usd"),
    "cost_estimate_usd": ("model_costs", "cost_estimate_usd"),
    "spend_usd": ("daily_metrics", "spend_usd"),  # what the Cost card shows: logged, else estimated
    "unpriced_requests": ("model_costs", "unpriced_requests"),
    "sessions": ("daily_metrics", "sessions"),
    "single_turn_share": ("session_metrics", "single_turn_share"),
    "unanswered_share": ("session_metrics", "unanswered_share"),
    "active_users": ("user_metrics", "active_users"),
    "wau": ("user_metrics", "wau"),
    "mau": ("user_metrics", "mau"),
    "new_users": ("user_metrics", "new_users"),
}
TREND_COLUMNS = table_columns("daily_trends")


def headlines(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Headline values per day (index: ISO day, columns: HEADLINES) from the tables' rows."""
    columns = {}
    for metric, (name, column) in HEADLINES.items():
        frame = tables[name]
        if name == "model_costs":
            # Summed in one order, whatever order the warehouse returns the rows in (PostgreSQL's changes as
            # days are rewritten): a float sum's last bit depends on it, and the trends must not.
            frame = frame.sort_values(["day", "model"], kind="stable", na_position="last")
            columns[metric] = frame.groupby("day")[column].sum(min_count=1)
        else:
            columns[metric] = frame.set_index("day")[column]
    return pd.DataFrame(columns).astype("float64")


def trends(values: pd.DataFrame, days: Iterable[str]) -> pd.DataFrame:
    """Long rows (day, metric) for each of days (columns TREND_COLUMNS).

    values is headlines() over at least the 28 days before the earliest of days. A day
    that has not run is missing, not zero: means are over the days present in the
    window (days_7, days_28 count them) and a delta against a missing day is NULL.
    *_pct deltas are relative to the earlier value (NULL when it is 0).
    """
    targets = list(days)
    if values.empty or not targets:
        return pd.DataFrame(columns=list(TREND_COLUMNS))
    calendar = pd.date_range(min(values.index.min(), min(targets)), max(values.index.max(), max(targets)), freq="D")
    full = values.set_axis(pd.to_datetime(values.index)).reindex(calendar)
    previous, week_ago = full.shift(1), full.shift(7)

    def pct(delta: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
        return delta / base.where(base != 0)

    parts = {
        "value": full,
        "previous_day": previous,
        "day_over_day": full - previous,
        "day_over_day_pct": pct(full - previous, previous),
        "week_ago": week_ago,
        "week_over_week": full - week_ago,
        "week_over_week_pct": pct(full - week_ago, week_ago),
        "mean_7d": full.rolling(7, min_periods=1).mean(),
        "mean_28d": full.rolling(28, min_periods=1).mean(),
        "days_7": full.notna().rolling(7, min_periods=1).sum(),
        "days_28": full.notna().rolling(28, min_periods=1).sum(),
    }
    wanted = pd.to_datetime(pd.Index(targets))
    long = pd.concat({name: part.loc[wanted].stack(future_stack=True) for name, part in parts.items()}, axis=1)
    long.index = long.index.set_names(["day", "metric"])
    out = long.reset_index()
    out["day"] = out["day"].dt.strftime("%Y-%m-%d")
    out["metric"] = out["metric"].astype("str")
    for column in ("days_7", "days_28"):
        out[column] = out[column].astype("int64")
    return out[list(TREND_COLUMNS)]
