"""Sensors: the landing-folder sensor that re-runs the days a new or changed file touches (and the days next
to them whose sessions its rows continue), and the run-failure mail."""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from dagster import (
    DefaultSensorStatus,
    PartitionsDefinition,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from chatpulse.alerting.delivery import failure_mail
from chatpulse.behaviour.midnight import rejoined_days
from chatpulse.config import Settings
from chatpulse.daystate import TABLE as DAY_STEPS
from chatpulse.ingest.watch import already_read, held_days, scan
from chatpulse.mail import send
from chatpulse.pipelines.cli_errors import run_error
from chatpulse.warehouse import Warehouse

LANDING_SENSOR = "landing_sensor"
FAILURE_SENSOR = "run_failure_mail"


def landing_sensor(job_name: str, partitions: PartitionsDefinition, settings: Settings) -> SensorDefinition:
    """Every `sensor_interval_seconds`, request a run of the job for each day the changed files touch.

    The cursor is {path: [size, mtime_ns]} of every file seen, so each version of a file counts once;
    it starts from the files pipeline runs have already read, and its first tick also requests the days those
    files hold that no run has written (a run of one day reads every file that may hold it, and records all
    of them). It runs as soon as `dagster dev` starts.
    """

    @sensor(
        name=LANDING_SENSOR,
        job_name=job_name,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Watches {settings.landing_dir} and runs the days a new or changed file touches.",
    )
    def _sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        never_run: set[str] = set()
        if context.cursor:
            seen = json.loads(context.cursor)
        else:
            warehouse = Warehouse(settings.database_url)
            seen = already_read(warehouse, settings.landing_dir)
            # A day with tables but no step record was run before day states were kept.
            run = {
                day for table in (DAY_STEPS, "daily_metrics") for day in warehouse.read_days(table, None, None)["day"]
            }
            never_run = held_days(warehouse) - run
        found = scan(settings.landing_dir, settings.sources, settings.timezone, seen)
        for path, error in found.unreadable.items():
            context.log.warning(f"{path}: cannot read, skipped until it changes: {error}")
        cursor = json.dumps({path: list(stamp) for path, stamp in sorted(found.stamps.items())})
        valid = set(partitions.get_partition_keys(dynamic_partitions_store=context.instance))
        days = sorted(day for day in found.days if day in valid)
        for day in sorted(found.days - set(days)):
            context.log.info(f"{day}: not a partition (before start_date or after today), not run")
        for day in sorted(_rejoined(found.events, valid, settings) - set(days)):
            context.log.info(f"{day}: run again, new rows of the day next to it continue or begin its sessions")
            days.append(day)
        for day in sorted((never_run & valid) - set(days)):
            context.log.info(f"{day}: its files were read by another day's run, and no run has written it yet")
            days.append(day)
        days.sort()
        if not days:
            context.update_cursor(cursor)
            return SkipReason("no new or changed landing file touches a partition" + _unreadable_note(found.unreadable))
        version = hashlib.sha1(cursor.encode()).hexdigest()[:12]
        return SensorResult(
            run_requests=[RunRequest(run_key=f"{day}@{version}", partition_key=day) for day in days], cursor=cursor
        )

    return _sensor


def _unreadable_note(unreadable: Mapping[str, object], shown: int = 3) -> str:
    """The files a tick could not read, said where the UI shows the tick (its skip reason), not only in the
    daemon's log: a tick that reads no file is otherwise a routine skip."""
    if not unreadable:
        return ""
    names = sorted(Path(path).name for path in unreadable)
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    count = f"{len(names)} file{'s' if len(names) > 1 else ''}"
    return f"; {count} cannot be read, skipped until changed (the daemon's log says why): {listed}"


def _rejoined(events: pd.DataFrame, valid: set[str], settings: Settings) -> set[str]:
    """The partitions next to the changed rows' days whose stored sessions those rows can join (rejoined_days);
    rows on days that are no partition are quarantined by their run and join nothing."""
    events = events[events["day"].isin(valid)]
    if events.empty:
        return set()
    pseudonyms = settings.storage_pseudonyms
    if pseudonyms is not None:  # the warehouse holds pseudonyms
        events = events.assign(user_id=pseudonyms.users(events["user_id"]))
    warehouse = Warehouse(settings.database_url)
    return rejoined_days(warehouse.read_where, events, settings.timezone, settings.session_gap_minutes) & valid


def failure_mail_sensor(settings: Settings) -> SensorDefinition:
    """Mail every failed run (any job) to the report's recipients; without `mail` it only logs."""

    @run_failure_sensor(
        name=FAILURE_SENSOR,
        monitor_all_code_locations=False,
        default_status=DefaultSensorStatus.RUNNING,
        description="Mails a failed run's job, day and error to the `mail` recipients.",
    )
    def _sensor(context: RunFailureSensorContext) -> None:
        run = context.dagster_run
        # The steps' own errors: the run's failure event says only which steps failed.
        steps = dict.fromkeys(
            f"{event.step_key}: {run_error(event.step_failure_data.error)}"
            for event in context.get_step_failure_events()
        )
        error = "; ".join(steps) or context.failure_event.message or "unknown error"
        if settings.mail is None:
            context.log.warning(f"run {run.run_id} failed; no mail settings, nothing mailed")
            return
        partition = run.tags.get("dagster/partition")
        send(failure_mail(run.job_name, run.run_id, partition, error, settings.mail), settings.mail)

    return _sensor
