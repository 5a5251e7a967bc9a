"""The real Dagster daemon (what `dagster dev` runs) picks a landing file up and runs its day by itself."""

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from chatpulse.config import load_settings
from chatpulse.pipelines.instance import prepare_dagster_home
from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.warehouse import Warehouse

from fixtures import running_daemon, write_jsonl

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _wait_for_run(instance: DagsterInstance, daemon: subprocess.Popen, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [run for run in instance.get_runs() if run.status in FINISHED]
        if runs:
            return runs
        assert daemon.poll() is None, "the daemon exited"
        time.sleep(1)
    raise AssertionError(f"no run finished within {timeout_s:.0f} s")


@pytest.mark.daemon
@pytest.mark.subprocess
def test_the_daemon_runs_the_day_of_a_file_landing_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    landed = now - timedelta(minutes=1)
    day = landed.date().isoformat()
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: .\nstart_date: {now.date() - timedelta(days=3)}\nsensor_interval_seconds: 5\n"
        f"schedule_time: '{now + timedelta(hours=12):%H:%M}'\n"  # the schedule stays out of the way
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("CHATPULSE_CONFIG", str(config))
    settings = load_settings(config, env={})
    prepare_dagster_home(settings)
    request = {"request_id": "r1", "timestamp": landed.isoformat(), "model": "gpt-4o", "status_code": 200}
    write_jsonl(tmp_path / "landing" / "requests-now.jsonl", [request])
    with running_daemon() as daemon, DagsterInstance.get() as instance:
        runs = _wait_for_run(instance, daemon, timeout_s=240)
    assert [(run.status, run.tags["dagster/partition"], run.tags["dagster/sensor_name"]) for run in runs] == [
        (DagsterRunStatus.SUCCESS, day, LANDING_SENSOR)
    ]
    assert Warehouse(settings.database_url).read("requests", day)["request_id"].tolist() == ["r1"]
