"""Sessions, their usage scenarios and feedback, from the day's clean requests, messages and ratings
(with the neighbouring days' events that share a session with them, assets/neighbours.py)."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
)

from chatpulse.assets.daystate import wait_for_earlier_days, write_day
from chatpulse.assets.neighbours import next_day_ratings
from chatpulse.behaviour import feedback
from chatpulse.behaviour.midnight import day_sessions_and_rows, with_neighbours
from chatpulse.behaviour.scenario_rules import OTHER, load_rules
from chatpulse.behaviour.scenarios import (
    SCENARIO,
    SESSION_ROW,
    label_sessions,
    read_model,
    scenario_languages,
    scenario_summary,
    session_usage,
    user_texts_only,
)
from chatpulse.ingest.daycache import drop_cached_older
from chatpulse.ingest.files import ExtractError
from chatpulse.ingest.privacy import drop_content, drop_stored_content, retention_cutoff
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.schema import COLUMNS, OUTCOME_COLUMNS, Kind
from chatpulse.tables import TABLES
from chatpulse.warehouse import Write

SPOTLIGHT_DAYS = 7
# What sessions, their scenarios, usage and ratings read of the day's requests and messages: Parquet
# reads only these, so a request's metadata, ids and source never take memory here (at a million
# requests, 366 MB of requests become 140).
SESSION_REQUEST_COLUMNS = [
    "timestamp",
    "user_id",
    "session_id",
    "model",
    *OUTCOME_COLUMNS,
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
]
SESSION_MESSAGE_COLUMNS = list(COLUMNS[Kind.MESSAGES])


def session_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The session, scenario, feedback and content-retention assets over one partitions definition."""

    @asset(
        partitions_def=partitions,
        ins={
            "requests": AssetIn("clean_requests", metadata={"columns": SESSION_REQUEST_COLUMNS}),
            "messages": AssetIn("clean_messages", metadata={"columns": SESSION_MESSAGE_COLUMNS}),
            "ratings": AssetIn("clean_feedback"),
            "neighbour_requests": AssetIn("neighbour_requests", metadata={"columns": SESSION_REQUEST_COLUMNS}),
            "neighbour_messages": AssetIn("neighbour_messages", metadata={"columns": SESSION_MESSAGE_COLUMNS}),
        },
        group_name="behaviour",
        kinds={"pandas", "sql"},
        description=(
            "One row per session with its scenario (rule, confidence), language, model, latency, errors and ratings."
        ),
    )
    def sessions(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        messages: pd.DataFrame,
        ratings: pd.DataFrame,
        neighbour_requests: pd.DataFrame,
        neighbour_messages: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> Output[pd.DataFrame]:
        settings = chatpulse.settings
        gap = settings.session_gap_minutes
        day = date.fromisoformat(context.partition_key)
        # The next day's ratings of the day's sessions (given the next morning) count with them, on this day.
        try:
            later = next_day_ratings(settings, warehouse.warehouse, day)
        except ExtractError as exc:  # that day's own run fails on it; this one goes on without its ratings
            context.log.warning(f"ratings of the next day not read, its ratings of this day's sessions left out: {exc}")
            later = ratings.iloc[0:0]
        # Of the messages, only what is read below is held through the step (Dagster holds the inputs too).
        for frame in (messages, neighbour_messages):
            user_texts_only(frame)
            feedback.named_ids_only(frame, [ratings, later])
        # Whole sessions starting on the day: its events with those of the days either side that share one.
        requests = with_neighbours(requests, neighbour_requests)
        messages = with_neighbours(messages, neighbour_messages)
        table, requests[SESSION_ROW], messages[SESSION_ROW] = day_sessions_and_rows(
            requests, messages, day, settings.timezone, gap
        )
        usage = session_usage(table, requests)
        # What is read from here on is SESSION_ROW, not the keys nor a request's model: dropped from the frames
        # themselves (Dagster holds the inputs too), so labelling, the step's peak, does not hold them.
        for frame, columns in ((requests, ["user_id", "session_id", "model"]), (messages, ["user_id", "session_id"])):
            for column in columns:
                del frame[column]
        labels = label_sessions(
            table, messages, load_rules(settings.scenario_rules), read_model(settings.scenario_model)
        )
        table = pd.concat([table, labels, usage], axis=1)
        # The day's ratings, and the next day's that rate one of its sessions: the next day's header counts those
        # among its own ratings. Each day's ratings are scored among themselves, as that day's own run scores them
        # (a rater's 1 is one star or a thumbs up by the rater's other ratings of the day).
        own = feedback.rate(table, ratings, messages, requests)
        late = feedback.rate(table, later, messages, requests)
        rated = pd.concat([own, late[late[SESSION_ROW] >= 0]], ignore_index=True)
        table = pd.concat([table, feedback.session_ratings(table, rated)], axis=1)
        summary = scenario_summary(table, requests, rated, day)
        write_day(
            context,
            warehouse,
            Write("sessions", table),
            Write("scenario_daily", summary),
            Write("scenario_model_daily", scenario_summary(table, requests, rated, day, by_model=True)),
            Write("scenario_language_daily", scenario_languages(table, day)),
            Write("feedback_daily", feedback.feedback_daily(table, own, day, of_sessions=rated)),
            Write("feedback_by_model", feedback.satisfaction_by(rated, table, "model")),
            Write("feedback_by_latency", feedback.satisfaction_by_latency(rated)),
            Write("negative_sessions", feedback.negative_sessions(table, rated)),
        )
        other = summary.loc[summary[SCENARIO] == OTHER, "share"].iloc[0]
        return Output(
            table,
            metadata={
                "sessions": len(table),
                "turns": int(table["turns"].sum()),
                "other_share": float(other) if pd.notna(other) else 0.0,
                "languages": int(table["language"].nunique()),
                "ratings": len(own),
                "next_day_ratings": len(rated) - len(own),
            },
        )

    @asset(
        partitions_def=partitions,
        deps=[sessions],
        group_name="behaviour",
        kinds={"sql"},
        description="The scenarios whose p95 latency, error rate or satisfaction moved most against the last 7 days.",
    )
    def scenario_spotlight(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        wait_for_earlier_days(context, chatpulse.settings.wait_for_earlier_days_minutes)
        day = date.fromisoformat(context.partition_key)
        store = warehouse.warehouse
        today = store.read("scenario_daily", context.partition_key)
        history = store.read_days(
            "scenario_daily", (day - timedelta(days=SPOTLIGHT_DAYS)).isoformat(), (day - timedelta(days=1)).isoformat()
        )
        table = feedback.spotlight(today, history)
        write_day(context, warehouse, Write("scenario_spotlight", table))
        return MaterializeResult(
            metadata={
                "scenarios": int((today["sessions"] > 0).sum()),
                "spotlight": MetadataValue.json([f"{row.metric}: {row.scenario}" for row in table.itertuples()]),
            }
        )

    @asset(
        partitions_def=partitions,
        deps=[sessions, scenario_spotlight],
        group_name="behaviour",
        kinds={"sql"},
        description="Clears stored message text, comments, request metadata and quarantined lines older than "
        "content_retention_days; labels, metrics stay.",
    )
    def content_retention(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> MaterializeResult:
        settings = chatpulse.settings
        today = datetime.now(ZoneInfo(settings.timezone)).date()
        cutoff = retention_cutoff(today, settings.content_retention_days)
        if context.partition_key < cutoff.isoformat():  # catching up on old logs: say it where the run is watched
            context.log.warning(
                f"{context.partition_key} is older than content_retention_days ({settings.content_retention_days}): "
                "its message text, comments, request metadata and quarantined lines are cleared now (the numbers "
                "stay); raise content_retention_days to keep them"
            )
        keep_metadata = settings.metadata_keys is not None  # then metadata holds only the keys the user listed
        cleared = drop_content(warehouse.warehouse.engine, TABLES, cutoff, keep_metadata)
        files = drop_stored_content(settings.storage_dir, cutoff, keep_metadata)
        # Rows the extract cache kept for days not run since: none outlives the retention period.
        cached = drop_cached_older(settings.storage_dir, timedelta(days=settings.content_retention_days))
        return MaterializeResult(
            metadata={
                "cutoff": cutoff.isoformat(),
                **cleared,
                "parquet_files": len(files),
                "extract_cache_entries": len(cached),
            }
        )

    return [sessions, scenario_spotlight, content_retention]
