"""The daily HTML report with its charts, written under the data home, and its e-mail."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RetryPolicy,
    asset,
)

from chatpulse.assets.daystate import MAIL_STEP, drawing_state, finished, wait_for_earlier_days
from chatpulse.days import DaySpan, day_bounds
from chatpulse.daystate import REPORT, other_reads
from chatpulse.mail import MailError
from chatpulse.metrics.users import window
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.pseudonyms import UserDisplay
from chatpulse.reports.alerts import alert_summary
from chatpulse.reports.mail import ReportInProgress, deliver
from chatpulse.reports.pages import mark_day_state, write_pages
from chatpulse.reports.render import render_report, report_file
from chatpulse.reports.sections import detail_sections, in_progress_trends, rated_days
from chatpulse.reports.spend import spend_sections

SPEND_TABLES = ("dimension_daily", "budget_status", "cost_reconciliation")
SECTION_TABLES = (
    "daily_trends",
    "scenario_daily",
    "scenario_language_daily",
    "scenario_spotlight",
    "feedback_daily",
    "feedback_by_model",
    "feedback_by_latency",
    "negative_sessions",
    "error_kinds",
    "request_metrics",
    "model_costs",
    "daily_users",
    "slowest_requests",
)


def _comparisons(daily: pd.DataFrame, feedback: pd.DataFrame, day: date) -> dict[str, pd.Series]:
    """The daily rows (with satisfaction where rated) a day's headline numbers are compared with, where they exist.

    ``daily`` and ``feedback`` are ``daily_metrics`` and ``feedback_daily`` rows covering at least the week before.
    """
    rows = daily.merge(rated_days(feedback)[["day", "satisfaction"]], on="day", how="left").set_index("day")
    wanted = {"yesterday": day - timedelta(days=1), f"last {day:%A}": day - timedelta(days=7)}
    return {name: rows.loc[other.isoformat()] for name, other in wanted.items() if other.isoformat() in rows.index}


def report_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The report asset over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={
            "requests": AssetIn("clean_requests", metadata={"columns": ["latency_ms"]}),
            "sessions": AssetIn("sessions", metadata={"columns": ["duration_s"]}),
        },
        # What the report shows comes from these steps' tables, so it runs after all of them.
        deps=[AssetKey(name) for name in other_reads(REPORT, ("clean_requests", "sessions"))],
        group_name="report",
        kinds={"html"},
        description="reports/<day>.html: the day's alerts, headline numbers with deltas, charts, trends, "
        "scenarios, feedback, errors, models, top users, slowest requests, who spends, budgets, the provider's bill "
        "and data quality for the day; "
        "rewrites reports/index.html (days with alerts marked) and, on a Sunday, writes reports/week-<Monday>.html.",
    )
    def daily_report(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        sessions: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        wait_for_earlier_days(context, chatpulse.settings.wait_for_earlier_days_minutes)  # history, index, week page
        day = context.partition_key
        today = date.fromisoformat(day)
        week_before = window((today - timedelta(days=1)).isoformat(), 7)
        store = warehouse.warehouse
        out_dir, tz = chatpulse.settings.reports_dir, chatpulse.settings.timezone
        now = datetime.now(ZoneInfo(tz))
        in_progress = now < day_bounds(today, tz)[1]
        runnable = DaySpan.through_today(chatpulse.settings.start_date, tz, now)
        span = (runnable.first.isoformat(), runnable.last.isoformat())
        every_day = store.read_days("daily_metrics", None, None)  # one row a day: the index lists them all
        history = every_day[every_day["day"].between(*window(day, 30))]
        tables = {table: store.read(table, day) for table in SECTION_TABLES} | {"sessions": sessions}
        if in_progress:  # part of a day: compared with nothing, and not a day in the means
            yesterday = store.read("daily_trends", (today - timedelta(days=1)).isoformat())
            tables["daily_trends"] = in_progress_trends(tables["daily_trends"], yesterday)
        display = UserDisplay(chatpulse.settings.user_pseudonyms)
        spend = {table: store.read(table, day) for table in SPEND_TABLES}
        spend["dimension_daily_week_ago"] = store.read("dimension_daily", (today - timedelta(days=7)).isoformat())
        settings = chatpulse.settings
        sections = detail_sections(tables, display, in_progress) + spend_sections(
            spend, today, settings.dimensions, bool(settings.budgets), bool(settings.provider_bills), display
        )
        comparisons = (  # part of a day is compared with nothing
            {} if in_progress else _comparisons(history, store.read_days("feedback_daily", *week_before), today)
        )
        # The page says whether what it shows is consistent: every step it reads ran after what that step reads.
        states = drawing_state(store, day, finished(context))
        path = render_report(
            today,
            daily=history[history["day"] == day],
            hourly=store.read("hourly_metrics", day).sort_values("hour"),
            latencies=requests["latency_ms"].dropna(),
            quality=store.read("data_quality", day),
            sections=sections,
            out_dir=out_dir,
            comparisons=comparisons,
            tables=tables,
            hourly_previous=store.read_days("hourly_metrics", *week_before),
            history=history,
            in_progress_at=now if in_progress else None,
            outside=store.outside_counts(*span),
            span=span,
            alerts=alert_summary(store.read("alerts", day), tz),
        )
        mark_day_state(path, states[day])
        alerts = store.read_days("alerts", None, None)
        pages = {"path": path, **write_pages(out_dir, today, every_day, alerts, states)}
        store.replace_day(day, done=finished(context, output=str(path.resolve())))
        return MaterializeResult(metadata={name: MetadataValue.path(str(page)) for name, page in pages.items()})

    @asset(
        name=MAIL_STEP,  # runs of later days do not wait for this step (wait_for_earlier_days)
        partitions_def=partitions,
        deps=[daily_report],
        group_name="report",
        kinds={"email"},
        retry_policy=RetryPolicy(max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL),
        description="Mails the day's report once (charts inline), only a page drawn after the day ended; "
        "a rerun sends nothing new.",
    )
    def report_email(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        settings = chatpulse.settings
        if settings.mail is None:
            return MaterializeResult(metadata={"sent": False, "why": "no mail section in the configuration"})
        day = date.fromisoformat(context.partition_key)
        try:
            message_id = deliver(day, settings.mail, warehouse.warehouse, report_file(settings.reports_dir, day))
        except ReportInProgress:
            return MaterializeResult(
                metadata={
                    "sent": False,
                    "why": "the page was drawn before the day ended; the first run after it redraws and mails it",
                }
            )
        except MailError as exc:
            if exc.permanent:  # the page, a refused login or recipient: a retry would fail the same way
                raise Failure(str(exc), allow_retries=False) from exc
            raise
        return MaterializeResult(metadata={"sent": message_id is not None, "message_id": message_id or "sent before"})

    return [daily_report, report_email]
