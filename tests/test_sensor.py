"""The landing-folder sensor: a dropped file requests runs of exactly the days it touches, once, and of the days
next to them whose stored sessions its rows continue or begin earlier."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from chatpulse.config import settings_from_mapping
from chatpulse.daystate import StepRun
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.schema import Kind
from chatpulse.warehouse import FileStamp, Warehouse, Write

from fixtures import sensor_tick, write_jsonl


def _request(rid: str, ts: str) -> dict:
    return {"request_id": rid, "timestamp": ts, "model": "gpt-4o", "status_code": 200}


@pytest.mark.pipeline
def test_a_new_file_runs_the_days_it_touches_once_and_a_late_file_reruns_its_day(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    settings = settings_from_mapping(
        {"data_home": str(tmp_path), "start_date": "2026-11-01", "sensor_interval_seconds": 30}, tmp_path, {}
    )
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)
    assert (sensor.job_name, sensor.minimum_interval_seconds) == (DAILY_JOB, 30)
    instance = DagsterInstance.ephemeral()
    path = write_jsonl(
        landing / "requests-a.jsonl",
        [
            _request("r1", "2026-11-20T23:59:00+00:00"),
            _request("r2", "2026-11-21T00:01:00+00:00"),
            _request("r3", "2026-11-21T10:00:00+00:00"),
        ],
    )
    first = sensor_tick(defs, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-20", "2026-11-21"]
    stat = path.stat()
    assert json.loads(first.cursor) == {str(path): [stat.st_size, stat.st_mtime_ns]}

    second = sensor_tick(defs, instance, first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor

    late = write_jsonl(landing / "requests-late.jsonl", [_request("r0", "2026-11-05T08:00:00+00:00")])
    os.utime(late, ns=(1, 1))
    third = sensor_tick(defs, instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-11-05"]
    assert set(json.loads(third.cursor)) == {str(path), str(late)}
    assert json.loads(third.cursor)[str(late)] == [late.stat().st_size, 1]


@pytest.mark.pipeline
def test_days_outside_the_partitions_are_not_requested(tmp_path: Path) -> None:
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-10"}, tmp_path, {})
    defs = build_definitions(settings)
    write_jsonl(tmp_path / "landing" / "requests-old.jsonl", [_request("r1", "2026-11-01T08:00:00+00:00")])
    result = sensor_tick(defs, DagsterInstance.ephemeral(), None)
    assert result.run_requests == [] and isinstance(result.skip_message, str)
    assert result.skip_message == "no new or changed landing file touches a partition"


@pytest.mark.pipeline
def test_a_tick_that_reads_no_file_names_the_ones_it_cannot_read(tmp_path: Path) -> None:
    """A broken .gz was in the daemon's log only; the UI showed the tick as a routine skip."""
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-10"}, tmp_path, {})
    defs = build_definitions(settings)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests-2026-11-20.jsonl.gz").write_bytes(b"not gzip at all")
    result = sensor_tick(defs, DagsterInstance.ephemeral(), None)
    assert result.run_requests == [] and result.skip_message == (
        "no new or changed landing file touches a partition; 1 file cannot be read, skipped until changed"
        " (the daemon's log says why): requests-2026-11-20.jsonl.gz"
    )


@pytest.mark.pipeline
def test_the_first_tick_skips_files_a_run_has_already_read(tmp_path: Path) -> None:
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-01"}, tmp_path, {})
    defs = build_definitions(settings)
    read = write_jsonl(tmp_path / "landing" / "requests-read.jsonl", [_request("r1", "2026-11-20T08:00:00+00:00")])
    new = write_jsonl(tmp_path / "landing" / "requests-new.jsonl", [_request("r2", "2026-11-22T08:00:00+00:00")])
    stat = read.stat()
    stamp = FileStamp(stat.st_size, stat.st_mtime_ns, frozenset({"2026-11-20"}))
    warehouse = Warehouse(settings.database_url)
    warehouse.save_stamps(Kind.REQUESTS, {"requests-read.jsonl": stamp})
    warehouse.replace_day("2026-11-20", done=StepRun("clean_requests", "run-1", datetime.now(UTC)))  # its run
    result = sensor_tick(defs, DagsterInstance.ephemeral(), None)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-22"]
    assert set(json.loads(result.cursor)) == {str(read), str(new)}


@pytest.mark.pipeline
def test_the_first_tick_runs_the_days_of_read_files_no_run_has_written(tmp_path: Path) -> None:
    """A run of one day reads (and records) every file that may hold it: a file of several days read for the
    21st made its other days look done to the sensor, which then never ran them."""
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-01"}, tmp_path, {})
    defs = build_definitions(settings)
    rows = [_request(f"r{day}", f"2026-11-{day}T08:00:00+00:00") for day in (20, 21, 22)]
    read = write_jsonl(tmp_path / "landing" / "requests-week.jsonl", rows)
    stat = read.stat()
    stamp = FileStamp(
        stat.st_size, stat.st_mtime_ns, frozenset({"2026-10-31", "2026-11-20", "2026-11-21", "2026-11-22"})
    )
    warehouse = Warehouse(settings.database_url)
    warehouse.save_stamps(Kind.REQUESTS, {"requests-week.jsonl": stamp})
    warehouse.replace_day("2026-11-21", done=StepRun("clean_requests", "run-1", datetime.now(UTC)))
    # A day run before day states were recorded has its tables and no record: run, all the same.
    warehouse.replace_day("2026-11-22", Write("daily_metrics", pd.DataFrame({"requests": [1]})))
    instance = DagsterInstance.ephemeral()
    result = sensor_tick(defs, instance, None)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-20"]  # the 31st: no partition
    assert sensor_tick(defs, instance, result.cursor).run_requests == []  # the next tick: nothing changed


def _stored(warehouse: Warehouse, day: str, rows: list[tuple[str, str | None, str | None]]) -> None:
    """A day's requests as its run stores them: (timestamp, user_id, session_id) each."""
    frame = pd.DataFrame(rows, columns=["timestamp", "user_id", "session_id"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    warehouse.replace_day(day, Write("requests", frame.assign(request_id=[f"{day}-{i}" for i in range(len(rows))])))


@pytest.mark.pipeline
def test_a_rating_of_a_stored_session_given_the_next_day_reruns_the_sessions_day(tmp_path: Path) -> None:
    """The sessions step reads the next day's ratings; a rating landing after its session's day ran re-runs it."""
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-01"}, tmp_path, {})
    defs = build_definitions(settings)
    _stored(Warehouse(settings.database_url), "2026-11-20", [("2026-11-20T23:56:00+00:00", "u", "late")])
    rating = {"feedback_id": "f", "session_id": "late", "user_id": "u", "rating": -1}
    write_jsonl(tmp_path / "landing" / "feedback-1.jsonl", [{**rating, "timestamp": "2026-11-21T00:06:00Z"}])
    result = sensor_tick(defs, DagsterInstance.ephemeral(), None)
    assert sorted(r.partition_key for r in result.run_requests) == ["2026-11-20", "2026-11-21"]
    # A rating of no stored session, by a user active before midnight: only its own day.
    write_jsonl(
        tmp_path / "landing" / "feedback-1.jsonl",
        [{**rating, "session_id": "other", "timestamp": "2026-11-21T00:07:00Z"}],
    )
    result = sensor_tick(defs, DagsterInstance.ephemeral(), result.cursor)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-21"]


@pytest.mark.pipeline
@pytest.mark.parametrize("pseudonymize", [False, True])
def test_rows_that_continue_a_stored_session_rerun_the_day_it_started(tmp_path: Path, pseudonymize: bool) -> None:
    config = {"data_home": str(tmp_path), "start_date": "2026-11-01", "session_gap_minutes": 30}
    if pseudonymize:
        config["pseudonymize_storage"] = True
    env = {"CHATPULSE_PSEUDONYM_KEY": "k" * 32} if pseudonymize else {}
    settings = settings_from_mapping(config, tmp_path, env)
    defs = build_definitions(settings)
    warehouse = Warehouse(settings.database_url)
    user = settings.storage_pseudonyms.user if pseudonymize else str
    # The 20th: session s1 (explicit id) and user u1's id-less requests, the last 10 minutes before midnight;
    # u2 was last seen at 22:00, beyond the 30-minute gap. The 22nd: u3's id-less session from 00:10.
    _stored(
        warehouse,
        "2026-11-20",
        [
            ("2026-11-20T23:40:00Z", user("u9"), "s1"),
            ("2026-11-20T23:50:00Z", user("u1"), None),
            ("2026-11-20T22:00:00Z", user("u2"), None),
        ],
    )
    _stored(warehouse, "2026-11-22", [("2026-11-22T00:10:00Z", user("u3"), None)])
    landing, cursor = tmp_path / "landing", None

    def tick(name: str, rows: list[dict]) -> list[str]:
        nonlocal cursor
        write_jsonl(landing / name, rows)
        result = sensor_tick(defs, DagsterInstance.ephemeral(), cursor)
        cursor = result.cursor
        return [r.partition_key for r in result.run_requests]

    def request(rid: str, ts: str, user_id: str, session_id: str | None = None) -> dict:
        return _request(rid, ts) | {"user_id": user_id} | ({"session_id": session_id} if session_id else {})

    # Unrelated rows on the 21st: a new session id, and u2, last seen beyond the gap before midnight.
    assert tick(
        "requests-a.jsonl",
        [request("a1", "2026-11-21T00:05:00Z", "u9", "s7"), request("a2", "2026-11-21T00:01:00Z", "u2")],
    ) == ["2026-11-21"]
    # s1 goes on past midnight at noon: the 20th's session s1 is longer.
    assert tick("requests-b.jsonl", [request("b1", "2026-11-21T12:00:00Z", "u9", "s1")]) == ["2026-11-20", "2026-11-21"]
    # u1, active 10 minutes before midnight, goes on id-less in the afternoon: the chain may continue all day.
    assert tick("requests-c.jsonl", [request("c1", "2026-11-21T15:00:00Z", "u1")]) == ["2026-11-20", "2026-11-21"]
    # u3 at 23:50 on the 21st: the 22nd's session of u3 (00:10) now starts on the 21st. At 22:00 it would not.
    assert tick("requests-d.jsonl", [request("d1", "2026-11-21T22:00:00Z", "u3")]) == ["2026-11-21"]
    assert tick("requests-e.jsonl", [request("e1", "2026-11-21T23:50:00Z", "u3")]) == ["2026-11-21", "2026-11-22"]
