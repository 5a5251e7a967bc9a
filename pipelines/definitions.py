"""The one Dagster `Definitions` of ChatPulse, loaded by workspace.yaml."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from zoneinfo import ZoneInfo

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    Definitions,
    Field,
    InitLoggerContext,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    colored_console_logger,
    define_asset_job,
    in_process_executor,
    logger,
    schedule,
)

from chatpulse.assets.alerts import alert_assets
from chatpulse.assets.daystate import day_state_checks
from chatpulse.assets.ingest import ingest_assets
from chatpulse.assets.metrics import metric_assets
from chatpulse.assets.neighbours import neighbour_assets
from chatpulse.assets.report import report_assets
from chatpulse.assets.sessions import session_assets
from chatpulse.assets.spend import spend_assets
from chatpulse.config import CONFIG_ENV, Settings, load_settings
from chatpulse.pipelines.resources import ChatPulseSettings, ParquetIOManager, WarehouseResource
from chatpulse.pipelines.sensors import failure_mail_sensor, landing_sensor

DAILY_JOB = "daily_pipeline"


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """Days from the configured start through today, cut at midnight in the configured time zone.

    Today is a partition too (end_offset=1), so the landing sensor can run the day in progress
    and its alerts fire within minutes; the schedule and the e-mail wait for a day to end.
    """
    return DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=1
    )


def yesterday_schedule(job: JobDefinition, settings: Settings) -> ScheduleDefinition:
    """Every day at `schedule_time` (local), run the day that has just ended.

    On by default, like the sensors: whenever a daemon runs (`dagster dev` or a deployment), the
    morning e-mail goes out without a click in the UI.
    """
    at = settings.schedule_time

    @schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=settings.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Runs yesterday's partition (local time) once the day is over; the e-mail goes out then.",
    )
    def _schedule(context: ScheduleEvaluationContext) -> RunRequest:
        local = context.scheduled_execution_time.astimezone(ZoneInfo(settings.timezone))
        yesterday = (local.date() - timedelta(days=1)).isoformat()
        return RunRequest(run_key=yesterday, partition_key=yesterday)

    return _schedule


@logger(
    config_schema={
        "log_level": Field(str, default_value="INFO"),
        "name": Field(str, default_value="dagster"),
        "errors": Field(
            bool, default_value=True, description="Print ERROR events (step failures with their stack traces)."
        ),
    },
    description="Dagster's colored console logger; `chatpulse run` turns its errors off and prints the failure "
    "itself in one line (the run's event log in the UI keeps every error whole).",
)
def console_logger(init_context: InitLoggerContext) -> logging.Logger:
    """Dagster's console logger, whose ERROR records can be left out (`errors: false`)."""
    made = colored_console_logger.logger_fn(init_context)
    if not init_context.logger_config["errors"]:
        for handler in made.handlers:
            handler.addFilter(lambda record: record.levelno < logging.ERROR)
    return made


def build_definitions(settings: Settings, config_file: str | None = None) -> Definitions:
    """Assets, job, schedule and resources for one configuration."""
    partitions = daily_partitions(settings)
    # One process per run: the steps of a day are sequential and share heavy imports
    # (pandas, Great Expectations), which a process per step would pay eleven times.
    job = define_asset_job(DAILY_JOB, selection=AssetSelection.all(), executor_def=in_process_executor)
    return Definitions(
        assets=[
            *ingest_assets(partitions),
            *neighbour_assets(partitions),
            *session_assets(partitions),
            *metric_assets(partitions),
            *spend_assets(partitions),
            *report_assets(partitions),
            *alert_assets(partitions),
        ],
        asset_checks=[day_state_checks(partitions)],
        jobs=[job],
        sensors=[landing_sensor(DAILY_JOB, partitions, settings), failure_mail_sensor(settings)],
        schedules=[yesterday_schedule(job, settings)],
        loggers={"console": console_logger},
        resources={
            "chatpulse": ChatPulseSettings(config_file=config_file),
            # The database URL stays out of resource config (shown in the UI, stored with each run): read inside.
            "warehouse": WarehouseResource(config_file=config_file),
            "io_manager": ParquetIOManager(base_dir=str(settings.storage_dir)),
        },
    )


def daily_job() -> JobDefinition:
    """The daily job for the configuration in the environment; Dagster reconstructs it by name."""
    return build_definitions(load_settings(), os.environ.get(CONFIG_ENV)).resolve_job_def(DAILY_JOB)


defs = build_definitions(load_settings())
