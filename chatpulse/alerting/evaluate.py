"""Alert evaluation over the warehouse tables, and the alert lifecycle.

Pure logic (no Dagster): rules come from alerting.rules, evaluation turns a
day's metric tables into breaches, and `update_alerts` folds breaches into the alerts
already stored so a breach that persists over runs stays one alert until it resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatpulse import stats
from chatpulse.alerting.rules import DAILY_ONLY, WINDOWS, Baseline, Rule
from chatpulse.days import day_bounds
from chatpulse.schema import OUTCOME_COLUMNS, is_error
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

MAD_SCALE = 1.4826  # makes the MAD of normal data estimate its standard deviation
ALERT_COLUMNS = (
    "day",
    "rule",
    "metric",
    "severity",
    "window_start",
    "window_end",
    "value",
    "threshold",
    "baseline",
    "requests",
    "first_seen",
    "last_seen",
    "resolved_at",
)
# A breach found by a rule: the alert's columns up to `requests`, without the lifecycle, plus whether it may go on.
BREACH_COLUMNS = (*ALERT_COLUMNS[: ALERT_COLUMNS.index("requests") + 1], "ongoing")


@dataclass(frozen=True)
class Tables:
    """The warehouse rows evaluation needs, for the day and the baseline days before it.

    `requests` holds the day's requests (and those of any baseline day whose windows were never
    stored); `windows` holds the stored per-window values of request-based series (`alert_windows`)
    for the baseline days, so a baseline does not read a week of requests on every run.
    """

    minute_metrics: pd.DataFrame
    requests: pd.DataFrame
    daily_metrics: pd.DataFrame
    model_costs: pd.DataFrame
    scenario_daily: pd.DataFrame
    data_quality: pd.DataFrame
    windows: pd.DataFrame

    @classmethod
    def read(cls, warehouse: Warehouse, day: date, rules: tuple[Rule, ...], requests: pd.DataFrame) -> Tables:
        """The columns the rules use, from their longest baseline before `day` through `day`, typed as declared.

        `requests` are the day's clean requests, already in memory. Of earlier days only the stored
        windows are read, plus the requests of a day that has requests but lacks a series (a day run
        before a rule existed), so the baseline is complete whatever order days were run in.
        """
        first, last = (day - timedelta(days=history_days(rules))).isoformat(), day.isoformat()
        before = (day - timedelta(days=1)).isoformat()
        keys = {key for rule in rules if rule.baseline and (key := series_key(rule)) is not None}
        with warehouse.engine.connect() as conn:
            frames = {name: _read(conn, name, columns, (first, last)) for name, columns in TABLE_COLUMNS.items()}
            windows = _read(conn, "alert_windows", WINDOW_COLUMNS[1:], (first, before))
            windows = windows[windows["series"].isin(keys)]
            daily = frames["daily_metrics"]
            busy = set(daily.loc[(daily["requests"] > 0) & (daily["day"] <= before), "day"])
            stored = windows.groupby("day")["series"].agg(set)
            unstored = sorted(d for d in busy if not keys <= stored.get(d, set()))
            old = _read(conn, "requests", REQUEST_COLUMNS, unstored) if unstored else None
        today = requests[list(REQUEST_COLUMNS)].assign(day=last)
        frames["requests"] = today if old is None or old.empty else pd.concat([old, today], ignore_index=True)
        return cls(**frames, windows=windows)


REQUEST_COLUMNS = ("timestamp", "model", *OUTCOME_COLUMNS, "latency_ms", "total_tokens")
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "minute_metrics": ("start", "requests", "errors"),
    "daily_metrics": ("spend_usd", "requests"),
    "model_costs": ("model", "spend_usd", "requests"),
    "scenario_daily": ("scenario", "requests", "latency_p95_ms", "error_rate", "cost_usd", "total_tokens"),
    "data_quality": ("quarantined", "rows_in"),
}
WINDOW_COLUMNS = ("day", "series", "window_start", "value", "requests")


def _read(conn: sa.Connection, name: str, columns: tuple[str, ...], days: tuple[str, str] | list[str]) -> pd.DataFrame:
    """`columns` (and day) of a table for the days from `days[0]` to `days[1]`, or the listed `days`, typed."""
    table = TABLES[name]
    where = table.c.day.between(*days) if isinstance(days, tuple) else table.c.day.in_(days)
    return _typed(pd.read_sql(sa.select(*(table.c[c] for c in ("day", *columns))).where(where), conn), table)


def _typed(frame: pd.DataFrame, table: sa.Table) -> pd.DataFrame:
    """SQL results with the declared types, also when no row came back (pandas then says object)."""
    for column in frame.columns:
        kind = table.c[column].type
        if isinstance(kind, sa.DateTime):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        elif isinstance(kind, sa.Float | sa.Integer):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


def history_days(rules: tuple[Rule, ...]) -> int:
    """How many days before the evaluated one the baseline rules look at."""
    return max((rule.baseline.days for rule in rules if rule.baseline), default=0)


def series_key(rule: Rule) -> str | None:
    """Names a series computed from single requests (latency, tokens, any per-model metric); None otherwise.

    Rules with the same key share stored windows, whatever their names and thresholds.
    """
    by_minute = rule.metric in ("requests_per_minute", "requests_per_hour", "error_rate") and rule.model is None
    if rule.metric in DAILY_ONLY or rule.scenario is not None or by_minute:
        return None
    return f"{rule.metric}/{rule.window}/{rule.model or '*'}"


def _window_starts(times: pd.Series, days: pd.Series, tz: str, minutes: int) -> pd.Series:
    """Start (UTC) of the tumbling window from local midnight that holds each time."""
    # Each distinct day's midnight once, then taken per row (a map of a million days ran in Python).
    codes, distinct = pd.factorize(days)
    midnights = pd.to_datetime(pd.Series([day_bounds(date.fromisoformat(day), tz)[0] for day in distinct]), utc=True)
    # Code -1 (a missing day) takes NaT, as the map gave.
    starts = pd.Series(midnights.array.take(codes, allow_fill=True), index=days.index)
    if minutes >= WINDOWS["1d"]:
        return starts
    width = pd.Timedelta(minutes=minutes)
    return starts + ((pd.to_datetime(times, utc=True) - starts) // width) * width


def _window_end(start: pd.Timestamp, day: str, tz: str, minutes: int) -> pd.Timestamp:
    day_end = pd.Timestamp(day_bounds(date.fromisoformat(day), tz)[1])
    return min(start + pd.Timedelta(minutes=minutes), day_end)


def _request_windows(rule: Rule, requests: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Per day and window of the rule, its value and request count, from single requests."""
    minutes = WINDOWS[rule.window]
    rows = requests if rule.model is None else requests[requests["model"] == rule.model]
    rows = rows.assign(
        window_start=_window_starts(rows["timestamp"], rows["day"], tz, minutes),
        errors=is_error(rows).to_numpy(dtype="int64"),
    )
    grouped = rows.groupby(["day", "window_start"])
    frame = grouped.agg(requests=("timestamp", "size"), errors=("errors", "sum"), tokens=("total_tokens", "sum"))
    frame = frame.reset_index()
    if rule.metric == "latency_p95_ms":
        frame = frame.merge(stats.group_percentile(grouped["latency_ms"], 95).rename("value").reset_index())
    else:
        frame["value"] = _rate(rule, frame, minutes)
    return frame[["day", "window_start", "value", "requests"]]


def _rate(rule: Rule, frame: pd.DataFrame, minutes: int) -> pd.Series:
    """A count-based metric of each window from its requests, errors and tokens."""
    if rule.metric == "error_rate":
        return frame["errors"] / frame["requests"].where(frame["requests"] > 0)
    if rule.metric == "requests_per_minute":
        return frame["requests"] / minutes
    if rule.metric == "requests_per_hour":
        return frame["requests"] * 60.0 / minutes
    return frame["tokens"].astype("float64")


def window_series(rules: tuple[Rule, ...], tables: Tables, day: date, tz: str) -> dict[str, pd.DataFrame]:
    """Rows for `alert_windows` by day: `day` and every baseline day whose requests had to be read.

    Each holds the windows of every request-based series a baseline rule uses. A series with no
    window that day (a model without traffic) gets one empty row (value NaN, no requests), so
    the day counts as stored and its requests are never read again.
    """
    keys = {key: rule for rule in rules if rule.baseline and (key := series_key(rule)) is not None}
    by_day = {}
    for key_day in sorted({day.isoformat(), *tables.requests["day"].unique()}):
        rows = tables.requests[tables.requests["day"] == key_day]
        found = {key: _request_windows(rule, rows, tz).assign(series=key) for key, rule in keys.items()}
        idle = [key for key, windows in found.items() if windows.empty]
        midnight = day_bounds(date.fromisoformat(key_day), tz)[0]
        placeholders = pd.DataFrame(
            {"day": key_day, "series": idle, "window_start": midnight, "value": np.nan, "requests": 0},
            columns=list(WINDOW_COLUMNS),
        )
        kept = [windows for windows in found.values() if not windows.empty]
        by_day[key_day] = pd.concat([*kept, placeholders], ignore_index=True)[list(WINDOW_COLUMNS)]
    return by_day


def _series(rule: Rule, tables: Tables, tz: str) -> pd.DataFrame:
    """Per day and window: value and requests, for every day the tables hold."""
    minutes = WINDOWS[rule.window]
    if rule.metric == "quarantine_rate":
        frame = tables.data_quality.groupby("day", as_index=False)[["quarantined", "rows_in"]].sum()
        frame["value"] = frame["quarantined"] / frame["rows_in"].where(frame["rows_in"] > 0)
        frame["requests"] = frame["rows_in"]
    elif rule.scenario is not None:
        rows = tables.scenario_daily[tables.scenario_daily["scenario"] == rule.scenario]
        column = {
            "requests_per_minute": "requests",
            "requests_per_hour": "requests",
            "latency_p95_ms": "latency_p95_ms",
            "error_rate": "error_rate",
            "cost_per_day": "cost_usd",
            "tokens": "total_tokens",
        }[rule.metric]
        frame = rows.assign(value=rows[column].astype("float64"))
        frame["value"] /= {"requests_per_minute": 1440.0, "requests_per_hour": 24.0}.get(rule.metric, 1.0)
    elif rule.metric == "cost_per_day":
        # The spend, as budgets count it: each request's logged cost, else its estimate (most logs carry no cost).
        if rule.model is None:
            rows = tables.daily_metrics
        else:
            rows = tables.model_costs[tables.model_costs["model"] == rule.model]
        frame = rows.assign(value=rows["spend_usd"])
    elif (key := series_key(rule)) is None:
        rows = tables.minute_metrics
        frame = (
            rows.assign(window_start=_window_starts(rows["start"], rows["day"], tz, minutes))
            .groupby(["day", "window_start"], as_index=False)[["requests", "errors"]]
            .sum()
        )
        frame["value"] = _rate(rule, frame, minutes)
    else:
        frame = _request_windows(rule, tables.requests, tz)
        stored = tables.windows[(tables.windows["series"] == key) & ~tables.windows["day"].isin(frame["day"])]
        if len(stored):
            frame = pd.concat([stored[list(frame.columns)], frame], ignore_index=True)
    if "window_start" not in frame:
        frame = frame.assign(window_start=_window_starts(frame["day"], frame["day"], tz, minutes))
    return frame[["day", "window_start", "value", "requests"]].reset_index(drop=True)


def _median(values: pd.Series) -> float:
    return stats.percentile(values.to_numpy(dtype="float64"), 50)


def _mad(values: pd.Series) -> float:
    """Median absolute deviation from the median (history rows all have a value)."""
    array = values.to_numpy(dtype="float64")
    return stats.percentile(np.abs(array - stats.percentile(array, 50)), 50)


def _baseline_scores(frame: pd.DataFrame, day: str, tz: str, baseline: Baseline) -> pd.DataFrame:
    """Score each window of `day` against the window of the same local time of day on the previous days (by the
    clock, not the time since midnight: on the day a clock goes back, 10:00 is 11 hours after midnight)."""
    local = frame["window_start"].dt.tz_convert(tz)
    frame = frame.assign(offset=local.dt.hour * 60 + local.dt.minute)
    first = (date.fromisoformat(day) - timedelta(days=baseline.days)).isoformat()
    history = frame[(frame["day"] >= first) & (frame["day"] < day)].dropna(subset=["value"])
    spread = history.groupby("offset")["value"].agg(median=_median, mad=_mad, count="size")
    today = frame[frame["day"] == day].join(spread, on="offset")
    today = today[today["count"].fillna(0) >= baseline.min_days]
    # A window with nothing in it on every earlier day (median and MAD 0: 300 requests in an hour that is always
    # empty) scores infinitely above that history: a `>` rule fires (min_requests still guards thin windows);
    # a value of 0 there scores nothing (0 / 0).
    if baseline.method == "ratio":
        score = today["value"] / today["median"]
    else:
        # A flat history has MAD 0; a scale floor of 1% of the median keeps the score finite unless the median is 0.
        scale = np.maximum(MAD_SCALE * today["mad"], 0.01 * today["median"].abs())
        score = (today["value"] - today["median"]) / scale
    return today.assign(score=score, baseline=today["median"])


def _episodes(frame: pd.DataFrame, rule: Rule, minutes: int) -> pd.DataFrame:
    """Merge back-to-back breaching windows into one row: the first start, the last end, the worst window.

    A spike that lasts an hour is one alert, not twelve of five minutes each.
    """
    frame = frame.sort_values("window_start")
    width = pd.Timedelta(minutes=minutes)
    starts_new = frame["window_start"] != frame["window_start"].shift() + width
    frame = frame.assign(episode=starts_new.cumsum(), window_last=frame["window_start"])
    scores = frame["score"].groupby(frame["episode"])
    worst = scores.idxmax() if rule.comparison in (">", ">=") else scores.idxmin()
    bounds = frame.groupby("episode").agg(window_start=("window_start", "first"), window_last=("window_last", "last"))
    peak = frame.loc[worst.to_numpy(), ["episode", "value", "baseline", "requests"]].set_index("episode")
    return bounds.join(peak).reset_index(drop=True)


def evaluate(rules: tuple[Rule, ...], tables: Tables, day: date, tz: str, now: datetime) -> pd.DataFrame:
    """The breaches of every rule on `day`: one row per rule and run of back-to-back breaching windows.

    Columns are ALERT_COLUMNS without the lifecycle, plus `ongoing`: True while the breach may
    still be going on at `now`. A breach is over once a later window has been judged (it has
    ended by `now` and holds at least `min_requests` requests) or the day has ended. A window
    still filling is judged early only by `>`/`>=` rules: its count can only grow, while a `<`
    rule would fire on every window that has just begun.
    """
    key = day.isoformat()
    now_ts = pd.Timestamp(now)
    day_over = now_ts >= pd.Timestamp(day_bounds(day, tz)[1])
    rows = []
    for rule in rules:
        minutes = WINDOWS[rule.window]
        frame = _series(rule, tables, tz)
        ended = day_over | (frame["window_start"] + pd.Timedelta(minutes=minutes) <= now_ts)
        judged = (frame["day"] == key) & ended & (frame["requests"] >= max(rule.min_requests, 1))
        latest_judged = frame.loc[judged, "window_start"].max()
        if rule.baseline is None:
            frame = frame[frame["day"] == key].assign(score=lambda f: f["value"], baseline=np.nan)
        else:
            frame = _baseline_scores(frame, key, tz, rule.baseline)
        candidates = frame["requests"] >= rule.min_requests
        if rule.comparison in ("<", "<="):
            candidates &= ended.reindex(frame.index, fill_value=False)
        breaching = frame[candidates & rule.breaches(frame["score"])]
        if breaching.empty:
            continue
        for row in _episodes(breaching, rule, minutes).itertuples():
            rows.append(
                {
                    "day": key,
                    "rule": rule.name,
                    "metric": rule.metric,
                    "severity": rule.severity,
                    "window_start": row.window_start,
                    "window_end": _window_end(row.window_last, key, tz, minutes),
                    "value": float(row.value),
                    "threshold": rule.threshold,
                    "baseline": float(row.baseline),
                    "requests": int(row.requests),
                    "ongoing": not (day_over or (pd.notna(latest_judged) and row.window_last < latest_judged)),
                }
            )
    breaches = pd.DataFrame(rows, columns=list(BREACH_COLUMNS))
    return breaches.sort_values(["window_start", "rule"], kind="stable").reset_index(drop=True)


TIME_COLUMNS = ("window_start", "window_end", "first_seen", "last_seen", "resolved_at")


def _with_times(frame: pd.DataFrame) -> pd.DataFrame:
    """The alert time columns as UTC nanosecond timestamps, so frames from SQL and from evaluation merge."""
    return frame.assign(**{c: pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]") for c in TIME_COLUMNS})


def update_alerts(existing: pd.DataFrame, breaches: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Fold this run's breaches (from `evaluate`) into the day's stored alerts.

    An alert is one rule and one breach: a breach is the stored alert of its rule whose window it overlaps (the
    same start, or one that late rows moved earlier or later), else a new alert. Seen again, it keeps
    `first_seen` and gets `last_seen` = now, its window and the latest value; it is open while its breach is
    `ongoing` and resolves (`resolved_at` = now, kept from then on) once the breach is over. A stored alert
    the data no longer shows (a corrected log) resolves too. So a breach that persists over
    many runs is one alert, and each alert opens and resolves once.
    """
    now_ts = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    old = _with_times(existing.reindex(columns=list(ALERT_COLUMNS))).reset_index(drop=True)
    new = _with_times(breaches.reindex(columns=list(ALERT_COLUMNS))).reset_index(drop=True)
    ongoing = breaches["ongoing"].to_numpy(dtype=bool) if "ongoing" in breaches else np.zeros(len(new), bool)
    matched = _same_breach(old, new)
    earlier = old.reindex(matched)  # per new breach its stored alert's row, all NaN for a new one
    merged = new.assign(first_seen=earlier["first_seen"].fillna(now_ts).to_numpy())
    # Resolved once, resolved for good; otherwise it resolves now unless the breach goes on.
    was_resolved = earlier["resolved_at"].notna().to_numpy()
    merged["resolved_at"] = earlier["resolved_at"].fillna(now_ts).where(was_resolved | ~ongoing).to_numpy()
    merged = merged.assign(last_seen=now_ts)
    gone = old.drop(index=[index for index in matched if index >= 0])
    gone["resolved_at"] = gone["resolved_at"].fillna(now_ts)
    frames = [f for f in (merged, gone) if not f.empty]
    if not frames:
        return new.iloc[0:0]
    result = _with_times(pd.concat(frames, ignore_index=True)[list(ALERT_COLUMNS)])
    return result.sort_values(["window_start", "rule"], kind="stable").reset_index(drop=True)


def _same_breach(old: pd.DataFrame, new: pd.DataFrame) -> list[int]:
    """Per new breach, the index of the stored alert it continues (-1: none): the same rule and an overlapping
    window, the one with the same start first; each stored alert continues into one breach at most."""
    taken: set[int] = set()
    matched = []
    for row in new.itertuples():
        overlapping = old[
            (old["rule"] == row.rule) & (old["window_start"] < row.window_end) & (old["window_end"] > row.window_start)
        ]
        order = sorted(overlapping.index, key=lambda i: (old.at[i, "window_start"] != row.window_start, i))
        index = next((i for i in order if i not in taken), -1)
        if index >= 0:
            taken.add(index)
        matched.append(index)
    return matched


def open_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alerts not resolved yet."""
    return alerts[alerts["resolved_at"].isna()]
