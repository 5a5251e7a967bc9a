"""A day's state: whether its tables and report were all written after the data they read.

Each step of the daily job that writes a day's tables (or its report page) records, in the same
transaction as its write, which run finished it and when (`day_steps`, one row per day and step).
A step is *stale* when it has no record for the day, when a step it reads finished after it, or
when a step it reads is stale itself: then the numbers it wrote were computed from data that has
since been replaced (a run killed between two steps, or a partial run from the UI). A day is
*complete* when it has records and no stale step. A full run of the day always makes it complete;
so does redrawing the report alone over consistent tables, or re-executing a failed run's
remaining steps, since each step then finishes after everything it reads.

Which steps there are and what each reads mirrors the assets of the daily job
(`tests/test_daystate.py` checks it against the Dagster definitions). Steps that write no day's
tables are left out: the extract steps (Parquet hand-offs only), content retention (the whole
warehouse) and the report mail (a delivery, not data: a page drawn but not mailed is complete).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

TABLE = "day_steps"
REPORT = "daily_report"

# The steps that write a day, in the job's order (each after the steps it reads), with the steps whose
# tables or hand-offs it reads directly; the clean steps read only the extract hand-offs, which are not steps here.
STEPS: dict[str, tuple[str, ...]] = {
    "clean_requests": (),
    "clean_messages": (),
    "clean_feedback": (),
    "sessions": ("clean_requests", "clean_messages", "clean_feedback"),
    "scenario_spotlight": ("sessions",),
    "hourly_metrics": ("clean_requests",),
    "daily_metrics": ("clean_requests", "sessions"),
    "request_metrics": ("clean_requests",),
    "session_metrics": ("sessions", "clean_requests", "clean_messages"),
    "user_metrics": ("request_metrics", "daily_metrics"),
    "daily_trends": ("daily_metrics", "request_metrics", "session_metrics", "user_metrics"),
    "dimension_daily": ("clean_requests",),
    "cost_reconciliation": ("clean_requests",),
    "alerts": (
        "clean_requests",
        "hourly_metrics",
        "daily_metrics",
        "request_metrics",
        "sessions",
        "dimension_daily",
        "cost_reconciliation",
    ),
    REPORT: (
        "clean_requests",
        "sessions",
        "daily_metrics",
        "hourly_metrics",
        "request_metrics",
        "session_metrics",
        "user_metrics",
        "daily_trends",
        "alerts",
        "scenario_spotlight",
        "clean_messages",
        "clean_feedback",
        "dimension_daily",
        "cost_reconciliation",
    ),
}


def other_reads(step: str, inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The steps ``step`` reads besides the ``inputs`` its asset loads as DataFrames: the asset's ``deps``.

    Raises ``KeyError`` for a step that writes no day."""
    return tuple(read for read in STEPS[step] if read not in inputs)


@dataclass(frozen=True)
class StepRun:
    """One step's finished write of a day: the Dagster run, when it committed (UTC) and, for the
    report, the page it drew (so a later step can find the page to mark)."""

    step: str
    run_id: str
    finished_at: datetime
    output: str | None = None

    def frame(self, day: str) -> pd.DataFrame:
        """The record as one `day_steps` row of ``day``."""
        return pd.DataFrame(
            [
                {
                    "day": day,
                    "step": self.step,
                    "run_id": self.run_id,
                    "finished_at": pd.Timestamp(self.finished_at),
                    "output": self.output,
                }
            ]
        )


@dataclass(frozen=True)
class DayState:
    """What the records say about one day.

    ``stale`` maps each stale step, in the job's order, to why ("not run", "older than clean_requests",
    "reads sessions, which is stale"); ``last_run`` and ``last_finished`` (UTC) are the newest record's.
    A day without records (not run, or run before records were kept) is neither complete nor incomplete.
    """

    day: str
    stale: Mapping[str, str] = field(default_factory=dict)
    last_run: str | None = None
    last_finished: pd.Timestamp | None = None

    @property
    def recorded(self) -> bool:
        """Whether any step of the day left a record."""
        return self.last_run is not None

    @property
    def complete(self) -> bool:
        """Recorded, and no step stale."""
        return self.recorded and not self.stale


def _why_stale(step: str, finished: Mapping[str, pd.Timestamp], stale: Mapping[str, str]) -> str | None:
    """Why ``step`` is stale, or None; its inputs were judged before it (STEPS is in the job's order)."""
    if step not in finished:
        return "not run"
    newer = [read for read in STEPS[step] if read in finished and finished[read] > finished[step]]
    if newer:
        return f"older than {newer[0]}"
    stale_reads = [read for read in STEPS[step] if read in stale]
    return f"reads {stale_reads[0]}, which is stale" if stale_reads else None


def day_state(day: str, records: pd.DataFrame) -> DayState:
    """The state of ``day`` from ``day_steps`` rows (columns day, step, run_id, finished_at; other days ignored).

    Steps compare by ``finished_at``, one clock: the warehouse's writers run one day at a time.
    Records of steps no longer in STEPS count for the last run only.
    """
    rows = records[records["day"] == day].sort_values("finished_at")
    if rows.empty:
        return DayState(day)
    latest = rows.drop_duplicates("step", keep="last").set_index("step")
    finished = {step: pd.Timestamp(at) for step, at in latest["finished_at"].items()}
    stale: dict[str, str] = {}
    for step in STEPS:
        why = _why_stale(step, finished, stale)
        if why is not None:
            stale[step] = why
    newest = rows.iloc[-1]
    return DayState(day, stale, str(newest["run_id"]), pd.Timestamp(newest["finished_at"]))


def day_states(records: pd.DataFrame) -> dict[str, DayState]:
    """The state of every day that has ``day_steps`` rows in ``records``, by day."""
    return {day: day_state(day, records) for day in sorted(records["day"].unique())}


def with_record(records: pd.DataFrame, day: str, record: StepRun) -> pd.DataFrame:
    """``records`` with ``record`` as its step's row for ``day``: the state a step is about to leave."""
    others = records[~((records["day"] == day) & (records["step"] == record.step))]
    return pd.concat([others, record.frame(day)], ignore_index=True) if len(others) else record.frame(day)


def describe(day: str, state: DayState | None, has_tables: bool, timezone: str) -> list[str]:
    """``day``'s state for people, as `chatpulse status` prints it: one line with the state, the last run
    and when it finished (in ``timezone``), then one line per stale step with why.

    A day without records is "not run", or "no record" when ``has_tables`` (it was run before records
    were kept).
    """
    if state is None or not state.recorded:
        if has_tables:
            return [f"{day}  no record   (run before day states were recorded: run it again to record one)"]
        return [f"{day}  not run"]
    at = (
        ""
        if state.last_finished is None
        else f" at {state.last_finished.tz_convert(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S %Z}"
    )
    lines = [f"{day}  {'complete' if state.complete else 'incomplete':<10}  last run {state.last_run}{at}"]
    width = max((len(step) for step in state.stale), default=0)
    lines += [f"{'':10}  stale: {step:<{width}}  {why}" for step, why in state.stale.items()]
    return lines
