"""A day's state in the pipeline: each step records its write of the day, pages show the state, and the
`day_consistent` checks show it in Dagster (chatpulse/daystate.py defines it)."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    DagsterRunStatus,
    MetadataValue,
    PartitionsDefinition,
    RunsFilter,
    multi_asset_check,
)

from chatpulse.assets.checks import day_check
from chatpulse.daystate import REPORT, STEPS, TABLE, DayState, StepRun, day_state, day_states, with_record
from chatpulse.pipelines.resources import WarehouseResource
from chatpulse.processes import HOST_TAG, PID_TAG, runner_gone
from chatpulse.reports.pages import mark_day_state, write_index
from chatpulse.warehouse import Warehouse, Write

DAY_CONSISTENT = "day_consistent"
PARTITION_TAG = "dagster/partition"
# A run in one of these may still write its day's tables.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
POLL_SECONDS = 2.0
# The step that only mails the day's report, after every step that writes what other days read: a run that
# has reached it is not waited for (its retries take minutes while a mail server is down).
MAIL_STEP = "report_email"


def earlier_days_in_flight(context: AssetExecutionContext) -> list[str]:
    """The days before the run's own whose runs were created before it and are still writing, oldest first.

    Only runs created earlier count: a queue launches runs in the order they were submitted, so those are
    running or will be, and two runs never wait for each other. A run that has reached its mail step
    (MAIL_STEP) has written all it writes. A run whose `chatpulse run` process has ended without ending it
    (killed, or failed before it started) is marked failed here and not waited for: nothing else would.
    """
    instance = context.instance
    mine = instance.get_run_record_by_id(context.run.run_id)
    if mine is None:
        return []
    day = context.partition_key
    records = instance.get_run_records(RunsFilter(statuses=IN_FLIGHT, created_before=mine.create_timestamp))
    waiting = set()
    for record in records:
        run = record.dagster_run
        if run.run_id == mine.dagster_run.run_id or (other := run.tags.get(PARTITION_TAG, day)) >= day:
            continue
        if runner_gone(run.tags):
            instance.report_run_failed(
                run, f"its process ({run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) ended without ending the run"
            )
            context.log.warning(f"the run of {other} ({run.run_id}) was left unfinished by its process: marked failed")
        elif not instance.get_run_step_stats(run.run_id, step_keys=[MAIL_STEP]):
            waiting.add(other)
    return sorted(waiting)


def wait_for_earlier_days(context: AssetExecutionContext, minutes: int) -> None:
    """Return once no earlier day's run submitted before this one is still writing (earlier_days_in_flight), or
    after ``minutes``.

    The steps that read other days' tables (rolling users and trends, the scenario spotlight, alert
    baselines and budgets, the report and its index and weekly pages) call it first, so days run at once
    (a backfill N at a time) give what running them one after another gives: a day's cross-day numbers
    never miss an earlier day that is still being written. The steps that read only their own day (extract,
    clean, sessions, the day's metrics) run in parallel meanwhile. After ``minutes`` it logs a warning
    naming the days still running and goes on (a run whose process died may stay "started" in Dagster).
    """
    waiting = earlier_days_in_flight(context)
    if not waiting:
        return
    context.log.info(f"waiting for the runs of earlier days to end first: {', '.join(waiting)}")
    deadline = time.monotonic() + minutes * 60
    while waiting and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        waiting = earlier_days_in_flight(context)
    if waiting:
        context.log.warning(
            f"went on after {minutes} min (wait_for_earlier_days_minutes) while the runs of {', '.join(waiting)} "
            "had not ended: this day's rolling numbers, alerts and report may miss what those runs write"
        )


def finished(context: AssetExecutionContext, output: str | None = None) -> StepRun:
    """This step's record of the run's day: its asset name, the run id and now (UTC)."""
    return StepRun(context.asset_key.to_user_string(), context.run.run_id, datetime.now(UTC), output)


def write_day(
    context: AssetExecutionContext, warehouse: WarehouseResource, *writes: Write, day: str | None = None
) -> None:
    """Replace ``day`` (default: the run's partition) in every written table, as `Warehouse.replace_day`.

    For the partition's own day the same transaction records that this step of this run finished it;
    then the day's report page and the index show the day's new state (chatpulse.reports.pages), so a
    page drawn before this write says it is out of date until the report is drawn again. Other days
    (rolling tables recomputed for later days) are only replaced.
    """
    store = warehouse.warehouse
    if day is not None and day != context.partition_key:
        store.replace_day(day, *writes)
        return
    store.replace_day(context.partition_key, *writes, done=finished(context))
    show_states(store, context.partition_key)


def show_states(store: Warehouse, day: str) -> None:
    """Mark ``day``'s report page and the index with the states the warehouse records now.

    The page is the one the report step last drew for the day (its record names it); a day whose page
    was never drawn, or has since been removed, has nothing to mark.
    """
    records = store.read_days(TABLE, None, None)
    drawn = records[(records["day"] == day) & (records["step"] == REPORT)]["output"].dropna()
    page = Path(drawn.iloc[0]) if len(drawn) else None
    if page is None or not page.is_file():
        return
    states = day_states(records)
    write_index(
        page.parent, store.read_days("daily_metrics", None, None), store.read_days("alerts", None, None), states
    )
    mark_day_state(page, states[day])


def _check_metadata(state: DayState) -> dict[str, MetadataValue]:
    finished_at = "" if state.last_finished is None else state.last_finished.isoformat()
    return {
        "stale_steps": MetadataValue.json(dict(state.stale)),
        "last_run": MetadataValue.text(state.last_run or ""),
        "last_finished": MetadataValue.text(finished_at),
    }


def day_state_checks(partitions: PartitionsDefinition) -> AssetChecksDefinition:
    """`day_consistent` (WARN) on every step that writes a day, evaluated per day after those of a run.

    One op runs after every such step the run holds and reports the same verdict on each of them:
    whether the whole day is consistent after the run, with the stale steps and why in its metadata.
    A run that writes only some steps (a partial run from the UI) thus shows the day incomplete on the
    steps it ran; a run killed or failed before the op leaves Dagster's own per-partition "unsynced"
    tags and the `chatpulse status` command to tell.
    """
    specs = [
        day_check(
            DAY_CONSISTENT,
            step,
            partitions,
            "the whole day is consistent after the run that wrote this step: every step that writes the day ran "
            "after the steps it reads (metadata: the stale steps and why)",
            additional_deps=[other for other in STEPS if other != step],
        )
        for step in STEPS
    ]

    @multi_asset_check(name="day_state", specs=specs, can_subset=True)
    def day_state_check(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[AssetCheckResult]:
        state = day_state(context.partition_key, warehouse.warehouse.read(TABLE, context.partition_key))
        if not state.complete:
            context.log.warning(f"day {state.day} is incomplete; stale: {', '.join(state.stale)}")
        verdict = f"{state.day}: " + ("complete" if state.complete else f"incomplete; stale: {', '.join(state.stale)}")
        for key in sorted(context.selected_asset_check_keys, key=lambda key: key.asset_key.to_user_string()):
            yield AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=state.complete,
                severity=AssetCheckSeverity.WARN,
                description=verdict,
                metadata=_check_metadata(state),
            )

    return day_state_check


def drawing_state(store: Warehouse, day: str, drawing: StepRun) -> dict[str, DayState]:
    """Every day's state as it will be once the report being drawn (``drawing``) is recorded for ``day``."""
    return day_states(with_record(store.read_days(TABLE, None, None), day, drawing))
