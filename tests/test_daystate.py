"""A day's state from its step records: which steps are stale and why, checked against a second model
that tracks what each step read (provenance) instead of comparing times, and against the Dagster graph."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from dagster import AssetKey

from chatpulse.config import settings_from_mapping
from chatpulse.daystate import REPORT, STEPS, DayState, StepRun, day_state, day_states, describe, with_record
from chatpulse.pipelines.definitions import build_definitions

from fixtures import ASSET_NAMES

DAY = "2026-11-20"
START = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


class Day:
    """A day's steps run by a sequence of runs, kept two ways: the `day_steps` rows the code reads, and
    for each step what it read (the version of each input when it ran), as a provenance model would."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.version: dict[str, int] = {}
        self.seen: dict[str, dict[str, int | None]] = {}
        self.clock = 0

    def run(self, run_id: str, steps: Iterable[str]) -> Day:
        """Run ``steps`` one after another in the job's order, as Dagster does, each a moment after the last."""
        for step in (step for step in STEPS if step in set(steps)):
            self.clock += 1
            self.seen[step] = {read: self.version.get(read) for read in STEPS[step]}
            self.version[step] = self.clock
            self.rows = [row for row in self.rows if row["step"] != step]
            at = START + timedelta(microseconds=self.clock)  # µs apart: the resolution the warehouse keeps
            self.rows.append(StepRun(step, run_id, at).frame(DAY).iloc[0].to_dict())
        return self

    def records(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["day", "step", "run_id", "finished_at", "output"])

    def stale_by_provenance(self) -> set[str]:
        """Steps never run, or that read an input since rewritten, or an input that is stale itself."""
        stale: set[str] = set()
        for step in STEPS:  # inputs first
            if step not in self.version or any(
                read in stale or self.seen[step][read] != self.version.get(read) for read in STEPS[step]
            ):
                stale.add(step)
        return stale


def _descendants(roots: Sequence[str]) -> set[str]:
    """Every step that reads one of ``roots``, directly or through other steps."""
    found: set[str] = set()
    for step, reads in STEPS.items():
        if any(read in found or read in roots for read in reads):
            found.add(step)
    return found


def test_a_full_run_leaves_the_day_complete() -> None:
    state = day_state(DAY, Day().run("r1", STEPS).records())
    assert state.complete and state.recorded and not state.stale
    assert state.last_run == "r1" and state.last_finished == START + timedelta(microseconds=len(STEPS))


def test_a_run_killed_after_the_requests_leaves_every_step_reading_them_stale() -> None:
    day = Day().run("r1", STEPS).run("r2", ["clean_requests"])
    state = day_state(DAY, day.records())
    assert not state.complete and state.last_run == "r2"
    assert set(state.stale) == _descendants(["clean_requests"]) == day.stale_by_provenance()
    assert "clean_messages" not in state.stale  # untouched, and reads nothing that changed
    assert list(state.stale) == [step for step in STEPS if step in state.stale]  # in the job's order
    assert state.stale["daily_metrics"] == "older than clean_requests"
    assert state.stale["scenario_spotlight"] == "reads sessions, which is stale"


def test_the_report_redrawn_alone_is_complete_only_over_consistent_tables() -> None:
    redrawn = Day().run("r1", STEPS).run("r2", [REPORT])
    assert day_state(DAY, redrawn.records()).complete  # it ran after everything it reads
    over_stale = Day().run("r1", STEPS).run("r2", ["clean_requests"]).run("r3", [REPORT])
    state = day_state(DAY, over_stale.records())
    assert state.stale[REPORT] == "reads sessions, which is stale" and state.last_run == "r3"


def test_the_steps_a_first_run_never_reached_are_not_run() -> None:
    state = day_state(DAY, Day().run("r1", ["clean_requests", "clean_messages", "clean_feedback"]).records())
    assert set(state.stale) == set(STEPS) - {"clean_requests", "clean_messages", "clean_feedback"}
    assert state.stale["sessions"] == "not run" and not state.complete


def test_a_day_without_records_is_neither_complete_nor_incomplete() -> None:
    others = Day().run("r1", STEPS).records().assign(day="2026-11-19")
    state = day_state(DAY, others)
    assert not state.recorded and not state.complete and not state.stale and state.last_run is None
    assert set(day_states(others)) == {"2026-11-19"}


def test_the_state_agrees_with_provenance_over_random_runs() -> None:
    """Full runs, runs killed part way, and runs of any subset of steps (the UI's partial runs), in any order."""
    rng = random.Random(20261120)
    steps = list(STEPS)
    for case in range(400):
        day = Day()
        for number in range(rng.randint(1, 4)):
            kind = rng.choice(["full", "killed", "subset"])
            if kind == "full":
                chosen = steps
            elif kind == "killed":
                chosen = steps[: rng.randint(0, len(steps))]
            else:
                chosen = rng.sample(steps, rng.randint(1, len(steps)))
            day.run(f"run-{number}", chosen)
        if not day.rows:
            continue
        state = day_state(DAY, day.records())
        assert set(state.stale) == day.stale_by_provenance(), (case, day.rows)
        assert state.complete == (not day.stale_by_provenance())


def test_the_record_of_a_step_about_to_finish_replaces_its_own() -> None:
    records = Day().run("r1", STEPS).run("r2", ["clean_requests"]).records()
    drawing = StepRun(REPORT, "r3", START + timedelta(days=1))
    updated = with_record(records, DAY, drawing)
    assert len(updated) == len(records) and updated.set_index("step").loc[REPORT, "run_id"] == "r3"
    assert with_record(records.iloc[0:0], DAY, drawing)["step"].tolist() == [REPORT]


def test_the_steps_mirror_the_daily_job(tmp_path: Path) -> None:
    """STEPS lists, in an order Dagster could run them, every asset that writes a day's tables or report, and
    each reads (through any asset in between) exactly the steps its asset depends on in the definitions."""
    graph = build_definitions(settings_from_mapping({}, tmp_path, {})).resolve_asset_graph()
    left_out = {"raw_requests", "raw_messages", "raw_feedback", "neighbour_requests", "neighbour_messages"}
    left_out |= {"content_retention", "report_email"}
    assert set(STEPS) == ASSET_NAMES - left_out  # hand-offs only, the whole warehouse, and delivery
    seen: set[str] = set()
    for step, reads in STEPS.items():
        assert set(reads) <= seen, step  # each step after what it reads
        seen.add(step)
        ancestors = {key.to_user_string() for key in graph.get_ancestor_asset_keys(AssetKey(step))}
        assert _upstream(step) == ancestors & set(STEPS), step


def _upstream(step: str) -> set[str]:
    found: set[str] = set()
    pending = list(STEPS[step])
    while pending:
        read = pending.pop()
        if read not in found:
            found.add(read)
            pending.extend(STEPS[read])
    return found


def test_describing_a_day_for_the_status_command() -> None:
    state = day_state(DAY, Day().run("r1", STEPS).run("r2", ["clean_requests"]).records())
    lines = describe(DAY, state, True, "Asia/Shanghai")
    assert lines[0] == f"{DAY}  incomplete  last run r2 at 2026-11-21 14:00:00 CST"  # 06:00 UTC, local
    assert [line.split()[1] for line in lines[1:]] == list(state.stale)
    assert lines[1].split(maxsplit=2)[2] == state.stale[next(iter(state.stale))]
    assert describe(DAY, DayState(DAY), True, "UTC")[0].startswith(f"{DAY}  no record")
    assert describe(DAY, None, False, "UTC") == [f"{DAY}  not run"]
