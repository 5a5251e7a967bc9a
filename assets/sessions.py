"""Sessions and their usage scenarios, from the day's clean requests and messages."""

from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MaterializeResult, Output, PartitionsDefinition, asset

from chatpulse.scenarios import label_sessions, load_rules, scenario_summary
from chatpulse.sessions import build_sessions, session_keys
from chatpulse.warehouse import Write
from pipelines.resources import ChatPulseSettings, WarehouseResource


def session_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The session and scenario assets over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests"), "messages": AssetIn("clean_messages")},
        group_name="behaviour",
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
        group_name="behaviour",
        kinds={"pandas", "sql"},
        description="Sessions and requests per usage scenario.",
    )
    def scenario_daily(context: AssetExecutionContext, sessions: pd.DataFrame, warehouse: WarehouseResource) -> MaterializeResult:
        table = scenario_summary(sessions, date.fromisoformat(context.partition_key))
        warehouse.warehouse.replace_day(context.partition_key, Write("scenario_daily", table))
        return MaterializeResult(metadata={"scenarios": int((table["sessions"] > 0).sum())})

    return [sessions, scenario_daily]
