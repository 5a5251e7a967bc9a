"""ChatPulse's SQLite event log: Dagster's files and tables, an engine per file, named in the dagster.yaml it writes."""

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine

from chatpulse.config import settings_from_mapping
from chatpulse.pipelines.eventlog import ENGINES_KEPT, SqliteEventLog
from chatpulse.pipelines.instance import prepare_dagster_home


def _entry(run_id: str, text: str) -> EventLogEntry:
    """A log line of a run, as a step's context.log writes it."""
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=text,
        run_id=run_id,
        timestamp=time.time(),
        step_key="daily_report",
        job_name="daily_pipeline",
        dagster_event=None,
    )


def _messages(storage: SqliteEventLogStorage, run_id: str) -> list[str]:
    return [entry.user_message for entry in storage.get_logs_for_run(run_id)]


@pytest.fixture
def new_engines() -> Iterator[list[str]]:
    """The database URL of every engine that connects for the first time while the test runs."""
    urls: list[str] = []

    def first(connection: sqlite3.Connection, record: object) -> None:
        urls.append(connection.execute("PRAGMA database_list").fetchone()[2])

    event.listen(Engine, "first_connect", first)
    yield urls
    event.remove(Engine, "first_connect", first)


def test_dagster_reads_what_it_writes_and_it_reads_what_dagster_writes(tmp_path: Path) -> None:
    ours, dagsters = SqliteEventLog(str(tmp_path)), SqliteEventLogStorage(str(tmp_path))
    for number in range(3):
        ours.store_event(_entry("run-a", f"ours {number}"))
        dagsters.store_event(_entry("run-b", f"dagster's {number}"))
    assert _messages(dagsters, "run-a") == ["ours 0", "ours 1", "ours 2"]
    assert _messages(ours, "run-b") == ["dagster's 0", "dagster's 1", "dagster's 2"]
    ours.delete_events("run-a")
    assert _messages(dagsters, "run-a") == []


def test_one_engine_per_file_where_dagster_makes_one_per_event(tmp_path: Path, new_engines: list[str]) -> None:
    SqliteEventLogStorage(str(tmp_path / "dagster")).store_event(_entry("run", "first"))
    ours = SqliteEventLog(str(tmp_path / "ours"))
    new_engines.clear()
    for number in range(20):
        ours.store_event(_entry("run", str(number)))
    assert new_engines == [str(tmp_path / "ours" / "run.db")]
    dagsters = SqliteEventLogStorage(str(tmp_path / "dagster"))
    new_engines.clear()
    for number in range(20):
        dagsters.store_event(_entry("run", str(number)))
    assert len(new_engines) == 20


def test_a_process_reading_many_runs_keeps_few_engines(tmp_path: Path) -> None:
    storage = SqliteEventLog(str(tmp_path))
    runs = [f"run-{number}" for number in range(ENGINES_KEPT + 3)]
    for run_id in runs:
        storage.store_event(_entry(run_id, run_id))
    assert storage.kept_engines() == runs[-ENGINES_KEPT:]
    assert _messages(storage, runs[0]) == [runs[0]]  # an engine let go is made again
    assert storage.kept_engines() == [*runs[-ENGINES_KEPT + 1 :], runs[0]]


def test_the_dagster_yaml_names_it_for_sqlite_storage_in_dagsters_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = prepare_dagster_home(settings_from_mapping({}, tmp_path, {}))
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert type(storage) is SqliteEventLog
        assert (
            Path(storage.inst_data.config_dict["base_dir"]) == tmp_path / "dagster" / "history" / "runs"
        )  # where Dagster keeps it
    settings = settings_from_mapping({"dagster_storage_url_env": "MY_PG"}, tmp_path, {})
    assert "event_log_storage" not in yaml.safe_load((prepare_dagster_home(settings) / "dagster.yaml").read_text())
