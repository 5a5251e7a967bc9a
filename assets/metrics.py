"""Metric tables computed from the day's clean requests and sessions."""

from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MaterializeResult, PartitionsDefinition, asset

from chatpulse import metrics
from chatpulse.warehouse import Write
from pipelines.resources import ChatPulseSettings, WarehouseResource


def metric_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The metric assets over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        group_name="metrics",
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
        group_name="metrics",
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

    return [hourly_metrics, daily_metrics]
