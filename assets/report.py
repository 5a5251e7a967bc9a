"""The daily HTML report with its charts, written under the data home, and its e-mail."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Backoff,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RetryPolicy,
    asset,
)

from chatpulse.days import day_bounds
from chatpulse.warehouse import Warehouse
from pipelines.resources import ChatPulseSettings, WarehouseResource
from reports.mail import deliver
from reports.pages import write_pages
from reports.render import render_report, report_file
from reports.sections import detail_sections

# What the report shows comes from these assets' tables, so it runs after all of them.
SHOWN_ASSETS = (
    "daily_metrics",
    "hourly_metrics",
    "request_metrics",
    "session_metrics",
    "user_metrics",
    "daily_trends",
    "alerts",
    "scenario_spotlight",
    "clean_messages",
    "clean_feedback",
)
SECTION_TABLES = (
    "alerts",
    "daily_trends",
    "scenario_daily",
    "scenario_spotlight",
    "feedback_daily",
    "feedback_by_model",
    "feedback_by_latency",
    "negative_sessions",
    "error_kinds",
    "model_costs",
    "slowest_requests",
)


def _comparisons(store: Warehouse, day: date) -> dict[str, pd.Series]:
    """The daily rows (with satisfaction where rated) a day's headline numbers are compared with, where they exist."""
    first, last = (day - timedelta(days=7)).isoformat(), (day - timedelta(days=1)).isoformat()
    feedback = store.read_days("feedback_daily", first, last)
    rated = feedback.loc[feedback["ratings"] > 0, ["day", "satisfaction"]]
    rows = store.read_days("daily_metrics", first, last).merge(rated, on="day", how="left").set_index("day")
    wanted = {"yesterday": day - timedelta(days=1), f"last {day:%A}": day - timedelta(days=7)}
    return {name: rows.loc[other.isoformat()] for name, other in wanted.items() if other.isoformat() in rows.index}


def _days_before(day: date, days: int) -> str:
    return (day - timedelta(days=days)).isoformat()


def report_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The report asset over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={
            "requests": AssetIn("clean_requests", metadata={"columns": ["latency_ms"]}),
            "sessions": AssetIn("sessions", metadata={"columns": ["duration_s"]}),
        },
        deps=[AssetKey(name) for name in SHOWN_ASSETS],
        group_name="report",
        kinds={"html"},
        description="reports/<day>.html: headline numbers with deltas, charts, trends, scenarios, feedback, "
        "errors, costs, slowest requests and data quality for the day; rewrites reports/index.html and, "
        "on a Sunday, writes reports/week-<Monday>.html.",
    )
    def daily_report(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        sessions: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        day = context.partition_key
        today = date.fromisoformat(day)
        store = warehouse.warehouse
        out_dir, tz = chatpulse.settings.reports_dir, chatpulse.settings.timezone
        now = datetime.now(ZoneInfo(tz))
        tables = {table: store.read(table, day) for table in SECTION_TABLES} | {"sessions": sessions}
        path = render_report(
            today,
            daily=store.read("daily_metrics", day),
            hourly=store.read("hourly_metrics", day).sort_values("hour"),
            latencies=requests["latency_ms"].dropna(),
            quality=store.read("data_quality", day),
            sections=detail_sections(tables),
            out_dir=out_dir,
            comparisons=_comparisons(store, today),
            tables=tables,
            hourly_previous=store.read_days("hourly_metrics", _days_before(today, 7), _days_before(today, 1)),
            history=store.read_days("daily_metrics", _days_before(today, 29), day),
            in_progress_at=now if now < day_bounds(today, tz)[1] else None,
        )
        pages = {"path": path, **write_pages(out_dir, store, today)}
        return MaterializeResult(metadata={name: MetadataValue.path(str(page)) for name, page in pages.items()})

    @asset(
        partitions_def=partitions,
        deps=[daily_report],
        group_name="report",
        kinds={"email"},
        retry_policy=RetryPolicy(max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL),
        description="Mails the day's report once (charts inline) after the day has ended; a rerun sends nothing new.",
    )
    def report_email(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        settings = chatpulse.settings
        if settings.mail is None:
            return MaterializeResult(metadata={"sent": False, "why": "no mail section in the configuration"})
        day = date.fromisoformat(context.partition_key)
        if datetime.now(UTC) < day_bounds(day, settings.timezone)[1]:
            return MaterializeResult(metadata={"sent": False, "why": "the day is not over; mailed once it is"})
        message_id = deliver(day, settings.mail, warehouse.warehouse, report_file(settings.reports_dir, day))
        return MaterializeResult(metadata={"sent": message_id is not None, "message_id": message_id or "sent before"})

    return [daily_report, report_email]
