"""Sessions, scenarios and metric tables, computed from the day's clean rows."""

from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MaterializeResult, Output, PartitionsDefinition, asset

from chatpulse import metrics
from chatpulse.scenarios import label_sessions, load_rules, scenario_summary
from chatpulse.sessions import build_sessions, session_keys
from chatpulse.warehouse import Write
from pipelines.resources import ChatPulseSettings, WarehouseResource


def analytics_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The session, scenario and metric assets over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests"), "messages": AssetIn("clean_messages")},
        group_name="analytics",
        kinds={"pandas", "sql"},
        description="One row per session (by session_id, else by a user's inactivity gap) with its scenario label.",
    )
    def sessions(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        messages: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> Output[pd.DataFrame]:
        settings = chatpulse.settings
        gap = settings.session_gap_minutes
        _, message_keys = session_keys(requests, messages, gap)
        table = build_sessions(requests, messages, gap)
        table["scenario"] = label_sessions(table, messages.assign(session_key=message_keys), load_rules(settings.scenario_rules))
        warehouse.warehouse.replace_day(context.partition_key, Write("sessions", table))
        return Output(table, metadata={"sessions": len(table), "turns": int(table["turns"].sum())})

    @asset(
        partitions_def=partitions,
        group_name="analytics",
        kinds={"pandas", "sql"},
        description="Sessions and requests per usage scenario.",
    )
    def scenario_daily(context: AssetExecutionContext, sessions: pd.DataFrame, warehouse: WarehouseResource) -> MaterializeResult:
        table = scenario_summary(sessions, date.fromisoformat(context.partition_key))
        warehouse.warehouse.replace_day(context.partition_key, Write("scenario_daily", table))
        return MaterializeResult(metadata={"scenarios": int((table["sessions"] > 0).sum())})

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        group_name="analytics",
        kinds={"pandas", "sql"},
        description="Per local hour: requests, peak requests per minute, latency percentiles, errors, tokens.",
    )
    def hourly_metrics(
        context: AssetExecutionContext, requests: pd.DataFrame, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        table = metrics.hourly_metrics(requests, date.fromisoformat(context.partition_key), chatpulse.settings.timezone)
        warehouse.warehouse.replace_day(context.partition_key, Write("hourly_metrics", table))
        busiest = table.loc[table["requests"].idxmax()]
        return MaterializeResult(metadata={"busiest_hour": int(busiest["hour"]), "busiest_hour_requests": int(busiest["requests"])})

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        group_name="analytics",
        kinds={"pandas", "sql"},
        description="The day's headline numbers: traffic, latency, errors, tokens, cost, users and sessions.",
    )
    def daily_metrics(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        sessions: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        table = metrics.daily_metrics(requests, sessions, date.fromisoformat(context.partition_key), chatpulse.settings.timezone)
        warehouse.warehouse.replace_day(context.partition_key, Write("daily_metrics", table))
        row = table.iloc[0]
        return MaterializeResult(metadata={
            "requests": int(row["requests"]),
            "error_rate": float(row["error_rate"]) if pd.notna(row["error_rate"]) else 0.0,
            "latency_p95_ms": float(row["latency_p95_ms"]) if pd.notna(row["latency_p95_ms"]) else 0.0,
        })

    return [sessions, scenario_daily, hourly_metrics, daily_metrics]
