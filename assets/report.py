"""The daily HTML report with its charts, written under the data home."""

from datetime import date, timedelta

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, PartitionsDefinition, asset

from chatpulse.warehouse import Warehouse
from pipelines.resources import ChatPulseSettings, WarehouseResource
from reports.render import render_report


def _comparisons(store: Warehouse, day: date) -> dict[str, pd.Series]:
    """The daily rows a day's headline numbers are compared with, where they exist."""
    earlier = store.read_days("daily_metrics", (day - timedelta(days=7)).isoformat(), (day - timedelta(days=1)).isoformat())
    rows = earlier.set_index("day")
    wanted = {"yesterday": day - timedelta(days=1), f"last {day:%A}": day - timedelta(days=7)}
    return {name: rows.loc[other.isoformat()] for name, other in wanted.items() if other.isoformat() in rows.index}


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
            comparisons=_comparisons(store, date.fromisoformat(day)),
        )
        return MaterializeResult(metadata={"path": MetadataValue.path(str(path))})

    return [daily_report]
