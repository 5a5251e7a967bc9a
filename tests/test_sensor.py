"""The landing-folder sensor: a dropped file requests runs of exactly the days it touches, once."""

import json
import os
from pathlib import Path

import pytest
from dagster import DagsterInstance

from chatpulse.config import settings_from_mapping
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.schema import Kind
from chatpulse.warehouse import FileStamp, Warehouse

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
def test_the_first_tick_skips_files_a_run_has_already_read(tmp_path: Path) -> None:
    settings = settings_from_mapping({"data_home": str(tmp_path), "start_date": "2026-11-01"}, tmp_path, {})
    defs = build_definitions(settings)
    read = write_jsonl(tmp_path / "landing" / "requests-read.jsonl", [_request("r1", "2026-11-20T08:00:00+00:00")])
    new = write_jsonl(tmp_path / "landing" / "requests-new.jsonl", [_request("r2", "2026-11-22T08:00:00+00:00")])
    stat = read.stat()
    stamp = FileStamp(stat.st_size, stat.st_mtime_ns, frozenset({"2026-11-20"}))
    Warehouse(settings.database_url).save_stamps(Kind.REQUESTS, {"requests-read.jsonl": stamp})
    result = sensor_tick(defs, DagsterInstance.ephemeral(), None)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-22"]
    assert set(json.loads(result.cursor)) == {str(read), str(new)}
