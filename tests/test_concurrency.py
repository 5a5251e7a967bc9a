"""Days run at once give what running them one after another gives.

A real dagster-daemon on a Dagster instance stored in PostgreSQL (dagster-postgres) runs a backfill of
seven sample days two at a time (QueuedRunCoordinator) into a PostgreSQL warehouse; the same days run one
after another (`chatpulse run`) into another. Every table is then the same, cross-day ones included (rolling
users and trends, the scenario spotlight, alert baselines and budgets); so are the pages that read other days.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import DagsterRun

from chatpulse.assets.daystate import MAIL_STEP, PARTITION_TAG, earlier_days_in_flight, wait_for_earlier_days
from chatpulse.config import load_settings
from chatpulse.pipelines.cli import last_days, run_days
from chatpulse.pipelines.instance import prepare_dagster_home
from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.processes import HOST_TAG, PID_TAG, runner_tags
from chatpulse.sample.demo import write_demo_config
from chatpulse.sample.generate import write_sample
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse, Write

from fixtures import ROOT, running_daemon

DAYS = 7
CONCURRENT = 2
REQUESTS_PER_DAY = 200  # small days: the test is about order, not size
STORAGE_ENV = "CHATPULSE_TEST_DAGSTER_STORAGE"
# What differs between any two runs of the same days: when and by which run a step or an alert was recorded,
# and the page a step drew (each run writes its pages into its own folder here).
VOLATILE = {
    "day_steps": ["run_id", "finished_at", "output"],
    "alerts": ["first_seen", "last_seen", "resolved_at"],
    "report_sends": ["message_id", "sent_at"],
    "alert_deliveries": ["delivery_id", "failed_at"],
}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _config(path: Path, home: Path, **keys: object) -> Path:
    """A configuration over the demo's (dimensions, budgets, the bill) with ``keys``; returns its path."""
    settings = yaml.safe_load(write_demo_config(home).read_text()) | {"data_home": str(home)} | keys
    path.write_text(yaml.safe_dump(settings))
    return path


def _dagster(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("dagster")), *args, "-m", "chatpulse.pipelines.definitions"]
    return subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300)


def _wait_for_runs(instance: DagsterInstance, daemon: subprocess.Popen, count: int, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = instance.get_run_records(RunsFilter(job_name="daily_pipeline"))
        if len(records) >= count and all(record.dagster_run.status in FINISHED for record in records):
            return records
        assert daemon.poll() is None, "the daemon exited"
        time.sleep(2)
    raise AssertionError(f"{count} runs did not finish within {timeout_s:.0f} s")


def _most_at_once(records: list) -> int:
    """The most runs that were running at the same moment, from their start and end times."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def _table(store: Warehouse, name: str) -> pd.DataFrame:
    """Every row of a table without its run-specific columns, in one order."""
    frame = store.read_days(name, None, None).drop(columns=VOLATILE.get(name, []))
    return frame.sort_values(list(frame.columns), ignore_index=True, na_position="first")


def _differences(expected: Warehouse, actual: Warehouse) -> dict[str, str]:
    """Per table whose rows differ between the two warehouses, how (pandas' message)."""
    found = {}
    for name in sorted(TABLES):
        try:
            pd.testing.assert_frame_equal(_table(actual, name), _table(expected, name), check_exact=True, obj=name)
        except AssertionError as exc:
            found[name] = str(exc)
    return found


@pytest.mark.daemon
@pytest.mark.subprocess
@pytest.mark.postgres
def test_a_backfill_two_days_at_a_time_equals_running_the_days_one_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_databases: Callable[[], str]
) -> None:
    sequential_db, concurrent_db, dagster_db = postgres_databases(), postgres_databases(), postgres_databases()
    home = tmp_path / "home"
    settings = load_settings(_config(tmp_path / "probe.yaml", home), env={})
    days = last_days(settings, DAYS)
    write_sample(settings.landing_dir, days, requests_per_day=REQUESTS_PER_DAY, incident_day=days[-1])
    common = {"start_date": days[0].isoformat(), "schedule_time": "12:00"}
    one_by_one = _config(
        tmp_path / "sequential.yaml", home, database_url=sequential_db, reports_dir=str(home / "reports-seq"), **common
    )
    at_once = _config(
        tmp_path / "concurrent.yaml",
        home,
        database_url=concurrent_db,
        reports_dir=str(home / "reports-conc"),
        concurrent_runs=CONCURRENT,
        dagster_storage_url_env=STORAGE_ENV,
        **common,
    )

    # One after another, as `chatpulse run --start --end` runs them.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-seq"))
    monkeypatch.setenv("CHATPULSE_CONFIG", str(one_by_one))
    run_days(load_settings(one_by_one, env={}), days, str(one_by_one))
    with DagsterInstance.get() as instance:  # each names the process that ran it (runner_gone reads them)
        assert {tuple(sorted(run.tags.items() & runner_tags().items())) for run in instance.get_runs()} == {
            tuple(sorted(runner_tags().items()))
        }

    # At once: the instance on PostgreSQL, the daemon launching two runs at a time.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-conc"))
    monkeypatch.setenv("CHATPULSE_CONFIG", str(at_once))
    # dagster-postgres needs psycopg2 (SQLAlchemy 2.1 takes a bare postgresql:// to mean psycopg 3).
    monkeypatch.setenv(STORAGE_ENV, dagster_db.replace("+psycopg", "+psycopg2"))
    concurrent = load_settings(at_once, env={})
    prepare_dagster_home(concurrent)
    stopped = _dagster("sensor", "stop", LANDING_SENSOR)  # the backfill, not the landing folder, asks for the days
    assert stopped.returncode == 0, stopped.stderr
    with running_daemon() as daemon:
        backfill = _dagster(
            "job", "backfill", "-j", "daily_pipeline", "--from", str(days[0]), "--to", str(days[-1]), "--noprompt"
        )
        assert backfill.returncode == 0, backfill.stderr
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            records = _wait_for_runs(instance, daemon, DAYS, timeout_s=900)

    assert sorted((r.dagster_run.tags["dagster/partition"], r.dagster_run.status) for r in records) == [
        (day.isoformat(), DagsterRunStatus.SUCCESS) for day in days
    ]
    assert _most_at_once(records) == CONCURRENT  # days did run at once, never more than configured
    expected, actual = Warehouse(sequential_db), Warehouse(concurrent_db)
    try:
        assert _differences(expected, actual) == {}
        assert len(_table(actual, "user_metrics")) == DAYS  # never a day doubled
    finally:
        expected.engine.dispose()
        actual.engine.dispose()
    reports = (home / "reports-seq", home / "reports-conc")
    weeks = [sorted(path.name for path in folder.glob("week-*.html")) for folder in reports]
    assert weeks[0] == weeks[1] and len(weeks[0]) >= 1  # seven days hold a Sunday
    for page in [*weeks[0], *(f"{day}.html" for day in days), "index.html"]:
        assert (reports[1] / page).read_text() == (reports[0] / page).read_text(), page  # charts included


@pytest.mark.postgres
def test_two_writers_of_one_day_never_double_it(postgres_url: str) -> None:
    """A replacement of a day waits for another writer's uncommitted replacement of it, then replaces it."""
    store = Warehouse(postgres_url)
    day = "2026-11-20"
    store.replace_day(day, Write("user_metrics", pd.DataFrame({"active_users": [1]})))
    other = sa.create_engine(postgres_url)
    with other.connect() as conn:
        writing = conn.begin()
        lock = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")  # what replace_day takes
        conn.execute(lock, {"key": f"chatpulse day {day}"})
        conn.execute(sa.text("DELETE FROM user_metrics WHERE day = :day"), {"day": day})
        conn.execute(sa.text("INSERT INTO user_metrics (day, active_users) VALUES (:day, 2)"), {"day": day})
        mine = threading.Thread(
            target=store.replace_day, args=(day, Write("user_metrics", pd.DataFrame({"active_users": [3]})))
        )
        mine.start()
        mine.join(timeout=2)
        assert mine.is_alive()  # it waits for the other writer rather than deleting what it cannot see
        writing.commit()
    mine.join(timeout=30)
    other.dispose()
    assert store.read("user_metrics", day)["active_users"].tolist() == [3]
    store.engine.dispose()


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    warning = info


def test_a_day_waits_for_earlier_days_submitted_before_it_and_only_those() -> None:
    with DagsterInstance.ephemeral() as instance:

        def submitted(day: str, status: DagsterRunStatus) -> str:
            run = DagsterRun(job_name="daily_pipeline", status=status, tags={"dagster/partition": day})
            instance.run_storage.add_run(run)
            time.sleep(0.01)  # distinct creation times
            return run.run_id

        running = submitted("2026-11-19", DagsterRunStatus.STARTED)
        submitted("2026-11-18", DagsterRunStatus.SUCCESS)  # ended
        submitted("2026-11-21", DagsterRunStatus.STARTED)  # a later day
        mine = submitted("2026-11-20", DagsterRunStatus.STARTED)
        submitted("2026-11-17", DagsterRunStatus.NOT_STARTED)  # submitted after this run, which does not wait for it
        log = _Log()
        this_run = SimpleNamespace(run_id=mine)
        context = SimpleNamespace(instance=instance, run=this_run, partition_key="2026-11-20", log=log)
        assert earlier_days_in_flight(context) == ["2026-11-19"]

        wait_for_earlier_days(context, minutes=0)  # gives up at once, saying so
        assert "went on after 0 min" in log.lines[-1] and "2026-11-19" in log.lines[-1]

        ending = threading.Timer(1.0, lambda: instance.report_run_failed(instance.get_run_by_id(running)))
        ending.start()
        started = time.monotonic()
        wait_for_earlier_days(context, minutes=5)
        ending.join()
        assert 1.0 <= time.monotonic() - started < 60  # it waited for that run to end, and no longer
        assert earlier_days_in_flight(context) == []


def test_a_day_does_not_wait_for_a_run_whose_chatpulse_process_is_gone() -> None:
    """A `chatpulse run` killed mid-run (or failed before its run started) leaves its run "started" or "not
    started" with no launcher to notice: a later day marks it failed and goes on. A live process's run, one of
    another host, and one the daemon launched (no process tags) are waited for."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead = {HOST_TAG: socket.gethostname(), PID_TAG: ended.stdout.decode().strip()}
    with DagsterInstance.ephemeral() as instance:

        def submitted(day: str, status: DagsterRunStatus, tags: dict[str, str]) -> str:
            run = DagsterRun(job_name="daily_pipeline", status=status, tags={PARTITION_TAG: day, **tags})
            instance.run_storage.add_run(run)
            time.sleep(0.01)  # distinct creation times
            return run.run_id

        killed = submitted("2026-11-14", DagsterRunStatus.STARTED, dead)
        never_started = submitted("2026-11-15", DagsterRunStatus.NOT_STARTED, dead)
        submitted("2026-11-16", DagsterRunStatus.STARTED, runner_tags())  # this process: alive
        submitted("2026-11-17", DagsterRunStatus.STARTED, {**dead, HOST_TAG: "another-host"})
        submitted("2026-11-18", DagsterRunStatus.STARTED, {})  # launched by the daemon
        mine = submitted("2026-11-20", DagsterRunStatus.STARTED, runner_tags())
        log = _Log()
        context = SimpleNamespace(
            instance=instance, run=SimpleNamespace(run_id=mine), partition_key="2026-11-20", log=log
        )
        assert earlier_days_in_flight(context) == ["2026-11-16", "2026-11-17", "2026-11-18"]
        assert [instance.get_run_by_id(run).status for run in (killed, never_started)] == [DagsterRunStatus.FAILURE] * 2
        assert sum("left unfinished by its process" in line for line in log.lines) == 2
        assert earlier_days_in_flight(context) == ["2026-11-16", "2026-11-17", "2026-11-18"]
        assert sum("left unfinished" in line for line in log.lines) == 2  # marked once


def test_a_day_does_not_wait_for_an_earlier_run_that_is_only_mailing() -> None:
    """The mail step writes nothing another day reads, and retries for minutes while the server is down."""
    with DagsterInstance.ephemeral() as instance:
        runs = {}
        for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
            runs[day] = DagsterRun(
                job_name="daily_pipeline", status=DagsterRunStatus.STARTED, tags={PARTITION_TAG: day}
            )
            instance.run_storage.add_run(runs[day])
            time.sleep(0.01)
        context = SimpleNamespace(instance=instance, run=runs["2026-11-20"], partition_key="2026-11-20", log=_Log())
        assert earlier_days_in_flight(context) == ["2026-11-18", "2026-11-19"]
        for step in ("daily_report", MAIL_STEP):  # the 18th's run has started mailing; the 19th's is drawing
            day = "2026-11-18" if step == MAIL_STEP else "2026-11-19"
            event = DagsterEvent(DagsterEventType.STEP_START.value, "daily_pipeline", step_key=step)
            instance.report_dagster_event(event, runs[day].run_id)
        assert earlier_days_in_flight(context) == ["2026-11-19"]
