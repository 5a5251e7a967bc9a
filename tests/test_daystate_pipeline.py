"""A day cut short, through the real Dagster job: `chatpulse status`, the `day_consistent` checks, the report
page and the index show it incomplete, naming the stale steps, until the day is run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, ExecuteInProcessResult, JobDefinition

from chatpulse.assets.daystate import DAY_CONSISTENT
from chatpulse.config import CONFIG_ENV, load_settings
from chatpulse.daystate import REPORT, STEPS, TABLE
from chatpulse.pipelines.cli import cli
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

from fixtures import PIPELINE_DAY as DAY
from fixtures import PIPELINE_REQUESTS, ROOT, pipeline_request, write_jsonl

INGEST = [f"{stage}_{kind}" for stage in ("raw", "clean") for kind in ("requests", "messages", "feedback")]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl.gz", PIPELINE_REQUESTS)
    (tmp_path / "chatpulse.yaml").write_text("data_home: .\n")
    return tmp_path


def _job(home: Path) -> JobDefinition:
    config = home / "chatpulse.yaml"
    return build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)


def _status(home: Path) -> dict[str, list[str]]:
    """`chatpulse status` over the days from DAY through today: each day's lines, by day."""
    days = (datetime.now(UTC).date() - date.fromisoformat(DAY)).days + 1
    config = str(home / "chatpulse.yaml")
    result = CliRunner().invoke(cli, ["--config", config, "status", "--days", str(days)], env={CONFIG_ENV: None})
    assert result.exit_code == 0, result.output
    lines: dict[str, list[str]] = {}
    for line in result.output.splitlines():
        if line[:10].count("-") == 2:
            lines[line[:10]] = [line]
        elif line.startswith(" "):
            lines[list(lines)[-1]].append(line)
    return lines


def _stale_in_status(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines[1:]]


def _day_checks(result: ExecuteInProcessResult) -> dict[str, tuple[bool, AssetCheckSeverity, list[str]]]:
    """Each day_consistent verdict of a run, by step: passed, severity and the stale steps it names."""
    return {
        check.asset_key.to_user_string(): (check.passed, check.severity, list(check.metadata["stale_steps"].data))
        for check in result.get_asset_check_evaluations()
        if check.check_name == DAY_CONSISTENT
    }


def _page_state(home: Path) -> tuple[list[str], list[str]]:
    """The stale steps the day's report page names, and those the index's mark for the day names."""
    page = (home / "reports" / f"{DAY}.html").read_text(encoding="utf-8")
    on_page = page.split("<span data-stale-steps>")[1].split("</span>")[0].split(", ") if "data-stale" in page else []
    row = next(line for line in (home / "reports" / "index.html").read_text().splitlines() if f'"{DAY}.html"' in line)
    in_index = row.split('title="Stale: ')[1].split('"')[0].split(", ") if "data-day-state" in row else []
    return on_page, in_index


def _reading(job: JobDefinition, roots: set[str]) -> list[str]:
    """The steps that read any of ``roots`` through the job's asset graph (not STEPS), in STEPS order."""
    graph = job.asset_layer.asset_graph
    return [
        step
        for step in STEPS
        if step not in roots and {k.to_user_string() for k in graph.get_ancestor_asset_keys(AssetKey(step))} & roots
    ]


@pytest.mark.pipeline
def test_a_day_cut_short_is_incomplete_until_it_is_run_again(home: Path) -> None:
    job, instance = _job(home), DagsterInstance.ephemeral()
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    first = job.execute_in_process(partition_key=DAY, instance=instance)
    records = warehouse.read(TABLE, DAY)
    assert sorted(records["step"]) == sorted(STEPS) and set(records["run_id"]) == {first.run_id}
    assert _status(home)[DAY][0].split()[1:4] == ["complete", "last", "run"]
    assert set(_day_checks(first)) == set(STEPS) and all(passed for passed, _, _ in _day_checks(first).values())
    assert _page_state(home) == ([], [])

    # A late row lands and a run rewrites only the ingest steps, as a run killed after them leaves the day.
    write_jsonl(home / "landing" / "requests-late.jsonl", [pipeline_request("late", "12:00:00", latency_ms=10)])
    cut = job.execute_in_process(partition_key=DAY, instance=instance, asset_selection=[AssetKey(a) for a in INGEST])
    assert len(warehouse.read("requests", DAY)) == 6 and warehouse.read("daily_metrics", DAY)["requests"][0] == 5
    stale = _reading(job, {"clean_requests", "clean_messages", "clean_feedback"})
    assert REPORT in stale and "daily_metrics" in stale
    status = _status(home)[DAY]
    assert status[0].split()[1:] == ["incomplete", "last", "run", cut.run_id, "at", *status[0].split()[6:]]
    assert _stale_in_status(status) == stale
    checks = _day_checks(cut)
    assert set(checks) == {"clean_requests", "clean_messages", "clean_feedback"}  # the steps the run wrote
    assert all(check == (False, AssetCheckSeverity.WARN, stale) for check in checks.values())
    assert _page_state(home) == (stale, stale)

    # The report drawn alone over those tables says so too: what it shows was computed before the late row.
    redrawn = job.execute_in_process(partition_key=DAY, instance=instance, asset_selection=[AssetKey(REPORT)])
    assert _day_checks(redrawn)[REPORT] == (False, AssetCheckSeverity.WARN, stale)
    assert _stale_in_status(_status(home)[DAY]) == stale and _page_state(home) == (stale, stale)

    again = job.execute_in_process(partition_key=DAY, instance=instance)
    assert warehouse.read("daily_metrics", DAY)["requests"][0] == 6
    assert _status(home)[DAY][0].split()[1:5] == ["complete", "last", "run", again.run_id]
    assert all(passed for passed, _, _ in _day_checks(again).values())
    assert _page_state(home) == ([], [])


@pytest.mark.pipeline
@pytest.mark.subprocess
def test_a_run_killed_between_steps_leaves_the_day_incomplete(home: Path) -> None:
    job = _job(home)
    first = job.execute_in_process(partition_key=DAY, instance=DagsterInstance.ephemeral())
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    page = home / "reports" / f"{DAY}.html"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatpulse.pipelines.cli",
            "--config",
            str(home / "chatpulse.yaml"),
            "run",
            "--start",
            DAY,
        ],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home / "dagster")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:  # kill it once a step of the new run has committed and marked the page: the report is seconds away
        deadline = time.monotonic() + 300
        while not (
            set(warehouse.read(TABLE, DAY)["run_id"]) - {first.run_id}
            and 'data-day-state="incomplete"' in page.read_text()
        ):
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.02)
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        run.wait(timeout=60)
    records = warehouse.read(TABLE, DAY).set_index("step")["run_id"]
    rewritten = set(records[records != first.run_id].index)
    assert rewritten and REPORT not in rewritten  # cut between two steps
    stale = _reading(job, rewritten)
    assert stale and _stale_in_status(_status(home)[DAY]) == stale
    on_page, in_index = _page_state(home)  # as the last step to mark them left them: the kill may fall in between
    assert REPORT in on_page and REPORT in in_index  # the page says it is out of date, and so does the index
