"""The daily HTML report with its charts, written under the data home."""

from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, PartitionsDefinition, asset

from pipelines.resources import ChatPulseSettings, WarehouseResource
from reports.render import render_report


def report_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The report asset over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        deps=[AssetKey(name) for name in ("daily_metrics", "hourly_metrics", "scenario_daily", "clean_messages", "clean_feedback")],
        group_name="report",
        kinds={"html"},
        description="reports/<day>.html: headline numbers, charts and data quality for the day.",
    )
    def daily_report(
        context: AssetExecutionContext, requests: pd.DataFrame, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        day = context.partition_key
        store = warehouse.warehouse
        path = render_report(
            date.fromisoformat(day),
            daily=store.read("daily_metrics", day),
            hourly=store.read("hourly_metrics", day).sort_values("hour"),
            latencies=requests["latency_ms"].dropna(),
            quality=store.read("data_quality", day),
            scenarios=store.read("scenario_daily", day),
            out_dir=chatpulse.settings.reports_dir,
        )
        return MaterializeResult(metadata={"path": MetadataValue.path(str(path))})

    return [daily_report]
