"""Metric tables computed from the day's clean requests and sessions, and the rolling
user and trend tables computed from the metric tables already in the warehouse."""

from datetime import date, timedelta

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    PartitionsDefinition,
    asset,
)

from chatpulse.assets.daystate import wait_for_earlier_days, write_day
from chatpulse.behaviour.midnight import with_neighbours
from chatpulse.behaviour.sessions import EVENT_KEYS
from chatpulse.metrics import costs as cost_metrics
from chatpulse.metrics import daily, errors, session_stats, traffic, trends, users
from chatpulse.metrics.pricing import day_prices
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.schema import OUTCOME_COLUMNS, REQUEST_COLUMNS
from chatpulse.warehouse import Write

# What the day's metrics read of its requests: every request column but metadata, the biggest (a JSON text
# per request) and read by none of them. At a million requests Parquet hands over 245 MB instead of 383,
# in a third of the time.
METRIC_REQUEST_COLUMNS = [column for column in REQUEST_COLUMNS if column != "metadata"]
# The hourly rows count, time, judge failures and add tokens only; the headline numbers also price requests
# and count users and models, but never look at a request's or a session's id or its endpoint (1M requests:
# Parquet hands over the hourly columns in 0.2 s, the headline ones in 0.5, all but metadata in 0.8-1.0).
HOURLY_REQUEST_COLUMNS = ["timestamp", *OUTCOME_COLUMNS, "latency_ms", *daily.TOKEN_COLUMNS]
DAILY_REQUEST_COLUMNS = [c for c in METRIC_REQUEST_COLUMNS if c not in ("request_id", "session_id", "endpoint")]


def metric_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The metric assets over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests", metadata={"columns": HOURLY_REQUEST_COLUMNS})},
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="Per local hour: requests, peak requests per minute, latency percentiles, errors, tokens.",
    )
    def hourly_metrics(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        table = daily.hourly_metrics(requests, date.fromisoformat(context.partition_key), chatpulse.settings.timezone)
        write_day(context, warehouse, Write("hourly_metrics", table))
        busiest = table.loc[table["requests"].idxmax()]
        return MaterializeResult(
            metadata={"busiest_hour": int(busiest["hour"]), "busiest_hour_requests": int(busiest["requests"])}
        )

    @asset(
        partitions_def=partitions,
        ins={
            "requests": AssetIn("clean_requests", metadata={"columns": DAILY_REQUEST_COLUMNS}),
            # What the headline numbers read of the sessions (daily.daily_metrics).
            "sessions": AssetIn("sessions", metadata={"columns": ["start", "duration_s", "turns"]}),
        },
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="The day's headline numbers: traffic, latency, errors, tokens, logged and estimated cost "
        "(with the requests the estimate covers and the unmetered ones), users and sessions.",
    )
    def daily_metrics(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        sessions: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        settings, day = chatpulse.settings, date.fromisoformat(context.partition_key)
        rates = day_prices(settings.prices, day)
        table = daily.daily_metrics(requests, sessions, day, settings.timezone, rates)
        write_day(context, warehouse, Write("daily_metrics", table))
        row = table.iloc[0]
        return MaterializeResult(
            metadata={
                "requests": int(row["requests"]),
                "error_rate": float(row["error_rate"]) if pd.notna(row["error_rate"]) else 0.0,
                "latency_p95_ms": float(row["latency_p95_ms"]) if pd.notna(row["latency_p95_ms"]) else 0.0,
            }
        )

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests", metadata={"columns": METRIC_REQUEST_COLUMNS})},
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="Requests per minute; traffic, concurrency, latency and errors overall, per model and endpoint; "
        "errors by kind; the failed and the slowest requests (ids only, never content); tokens and estimated cost "
        "per model from genai-prices and the price files (unpriced models named), the rates used and their source "
        "(model_prices); usage per user.",
    )
    def request_metrics(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        settings = chatpulse.settings
        day, tz = date.fromisoformat(context.partition_key), settings.timezone
        rates = day_prices(settings.prices, day)
        table = traffic.request_metrics(requests, day, tz, settings.slow_request_seconds * 1000.0)
        kinds = errors.error_kinds(requests, day, tz)
        failed = errors.failed_requests(requests, day, tz)
        costs, prices, users = cost_metrics.cost_tables(requests, day, tz, rates)
        write_day(
            context,
            warehouse,
            Write("request_metrics", table),
            Write("minute_metrics", traffic.minute_metrics(requests, day, tz)),
            Write("error_kinds", kinds),
            Write("failed_requests", failed),
            Write("slowest_requests", errors.slowest_requests(requests, day, tz)),
            Write("model_costs", costs),
            Write("model_prices", prices),
            Write("daily_users", users),
        )
        overall = table.iloc[0]
        unpriced = costs[costs["unpriced_requests"] > 0]
        return MaterializeResult(
            metadata={
                "peak_rps": int(overall["peak_rps"]),
                "concurrency_peak": int(overall["concurrency_peak"]) if pd.notna(overall["concurrency_peak"]) else 0,
                "failed_requests": len(failed),
                **{f"errors_{row.error_kind}": int(row.errors) for row in kinds.itertuples()},
                "cost_estimate_usd": float(costs["cost_estimate_usd"].sum()),
                "unpriced_requests": int(unpriced["unpriced_requests"].sum()),
                "unpriced_models": ", ".join(str(m) for m in unpriced["model"]) or "none",
                "price_sources": ", ".join(sorted(costs["price_source"].dropna().unique())) or "none",
            }
        )

    @asset(
        partitions_def=partitions,
        ins={
            # What session_stats reads of the sessions (not their labels, ids of users, usage or ratings).
            "sessions": AssetIn(
                "sessions", metadata={"columns": ["session_id", "start", "duration_s", "turns", "messages", "requests"]}
            ),
            # Only what keys events to sessions, roles and failures: never the messages' content.
            "requests": AssetIn("clean_requests", metadata={"columns": [*EVENT_KEYS, *OUTCOME_COLUMNS]}),
            "messages": AssetIn("clean_messages", metadata={"columns": [*EVENT_KEYS, "role"]}),
            "neighbour_requests": AssetIn(
                "neighbour_requests", metadata={"columns": [*EVENT_KEYS, "status_code", "error_type"]}
            ),
            "neighbour_messages": AssetIn("neighbour_messages", metadata={"columns": [*EVENT_KEYS, "role"]}),
        },
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="Sessions in depth: duration, turns, time between turns, single-turn and unanswered sessions.",
    )
    def session_metrics(
        context: AssetExecutionContext,
        sessions: pd.DataFrame,
        requests: pd.DataFrame,
        messages: pd.DataFrame,
        neighbour_requests: pd.DataFrame,
        neighbour_messages: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        settings = chatpulse.settings
        table = session_stats.session_metrics(
            sessions,
            with_neighbours(requests, neighbour_requests),  # the events sessions were built from
            with_neighbours(messages, neighbour_messages),
            date.fromisoformat(context.partition_key),
            settings.timezone,
            settings.session_gap_minutes,
        )
        write_day(context, warehouse, Write("session_metrics", table))
        row = table.iloc[0]
        return MaterializeResult(
            metadata={"sessions": int(row["sessions"]), "unanswered_sessions": int(row["unanswered_sessions"])}
        )

    @asset(
        partitions_def=partitions,
        deps=[AssetKey("request_metrics"), AssetKey("daily_metrics")],
        group_name="metrics",
        kinds={"sql"},
        description="Daily, weekly and monthly active users (rolling 7 and 28 days) and new versus returning users, "
        "from daily_users; also recomputes later days already run, whose windows include this day.",
    )
    def user_metrics(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        wait_for_earlier_days(context, chatpulse.settings.wait_for_earlier_days_minutes)
        store = warehouse.warehouse
        first, _ = users.window(context.partition_key, max(users.WINDOWS))
        run = set(store.read_days("daily_metrics", first, None)["day"])
        days = _this_and_later_days(run, context.partition_key)
        table = users.user_metrics(
            store.read_days("daily_users", first, None), store.first_days("daily_users", "user_id"), run, days
        )
        for day, row in table.groupby("day"):
            write_day(context, warehouse, Write("user_metrics", row), day=day)
        today = table.iloc[0]
        return MaterializeResult(
            metadata={
                "active_users": int(today["active_users"]),
                "wau": int(today["wau"]),
                "mau": int(today["mau"]),
                "new_users": int(today["new_users"]),
                "days_recomputed": len(days),
            }
        )

    @asset(
        partitions_def=partitions,
        deps=[AssetKey(name) for name in ("daily_metrics", "request_metrics", "session_metrics", "user_metrics")],
        group_name="metrics",
        kinds={"sql"},
        description="Headline numbers with day-over-day and week-over-week deltas and 7- and 28-day rolling means; "
        "also recomputes later days already run.",
    )
    def daily_trends(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        wait_for_earlier_days(context, chatpulse.settings.wait_for_earlier_days_minutes)
        store = warehouse.warehouse
        first = (date.fromisoformat(context.partition_key) - timedelta(days=28)).isoformat()
        tables = {
            name: store.read_days(name, first, None) for name in {table for table, _ in trends.HEADLINES.values()}
        }
        days = _this_and_later_days(set(tables["daily_metrics"]["day"]), context.partition_key)
        table = trends.trends(trends.headlines(tables), days)
        for day, rows in table.groupby("day"):
            write_day(context, warehouse, Write("daily_trends", rows), day=day)
        return MaterializeResult(metadata={"metrics": int(table["metric"].nunique()), "days_recomputed": len(days)})

    return [hourly_metrics, daily_metrics, request_metrics, session_metrics, user_metrics, daily_trends]


def _this_and_later_days(run: set[str], day: str) -> list[str]:
    """day and every later day already `run`: their rolling windows and first-seen users
    may include day, so filling an earlier day late corrects them."""
    return sorted({later for later in run if later >= day} | {day})
