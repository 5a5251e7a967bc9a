"""The Dagster definitions load, validate and carry the configured partitions."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dagster import DagsterInstance, DefaultScheduleStatus, build_schedule_context

from chatpulse.assets.daystate import DAY_CONSISTENT
from chatpulse.config import settings_from_mapping
from chatpulse.daystate import STEPS
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.pipelines.instance import EARLIER_CONFIG, prepare_dagster_home

from fixtures import ASSET_NAMES as ASSETS
from fixtures import ROOT, invoke_cli


def test_every_stage_is_a_daily_partitioned_asset_in_the_configured_zone(tmp_path: Path) -> None:
    settings = settings_from_mapping({"timezone": "Asia/Shanghai", "schedule_time": "07:30"}, tmp_path, {})
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert {key.path[-1] for key in graph.get_all_asset_keys()} == ASSETS
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        assert partitions is not None and partitions.timezone == "Asia/Shanghai"
    checks = {(key.asset_key.path[-1], key.name) for key in graph.asset_check_keys}
    day_checks = {(step, DAY_CONSISTENT) for step in STEPS}  # the day's state, on every step that writes it
    assert ("clean_requests", "rows_accounted_for") in checks and ("raw_requests", "mapped_columns_present") in checks
    assert ("cost_reconciliation", "bill_matches_log") in checks  # issue 13: the bill against the log
    assert len(checks - day_checks) == 15
    assert day_checks <= checks
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_schedule")
    assert schedule.cron_schedule == "30 7 * * *" and schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_today_is_a_partition_and_the_schedule_runs_the_day_that_ended(tmp_path: Path) -> None:
    settings = settings_from_mapping({"timezone": "Asia/Shanghai", "start_date": "2026-11-01"}, tmp_path, {})
    defs = build_definitions(settings)
    job = defs.resolve_job_def(DAILY_JOB)
    shanghai = ZoneInfo("Asia/Shanghai")
    keys = job.partitions_def.get_partition_keys(current_time=datetime(2026, 11, 28, 0, 30, tzinfo=shanghai))
    assert keys[0] == "2026-11-01" and keys[-1] == "2026-11-28"  # today, half an hour old, is a partition
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_schedule")
    # 06:00 in Shanghai is still the day before in UTC: the run is for the local day that just ended.
    tick = datetime(2026, 11, 28, 6, 0, tzinfo=shanghai).astimezone(UTC)
    repository = defs.get_repository_def()
    with build_schedule_context(scheduled_execution_time=tick, repository_def=repository) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [request.partition_key for request in requests] == ["2026-11-27"]


def test_the_instance_runs_one_day_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = prepare_dagster_home(settings_from_mapping({}, tmp_path, {}))
    with DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        coordinator = type(instance.run_coordinator).__name__
    assert queue.tag_concurrency_limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert (coordinator, queue.max_concurrent_runs) == ("QueuedRunCoordinator", 10)  # Dagster's own default


def test_concurrent_runs_and_the_storage_variable_reach_dagster_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = settings_from_mapping({"concurrent_runs": 3, "dagster_storage_url_env": "MY_PG"}, tmp_path, {})
    written = yaml.safe_load((prepare_dagster_home(settings) / "dagster.yaml").read_text())
    assert written["storage"] == {"postgres": {"postgres_url": {"env": "MY_PG"}}}  # the variable, never the URL
    assert written["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert written["concurrency"]["runs"]["max_concurrent_runs"] == 3
    # Without the storage key (SQLite files in the home), Dagster itself reads the new limit.
    home = prepare_dagster_home(settings_from_mapping({"concurrent_runs": 2}, tmp_path, {}))
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2


def test_a_dagster_yaml_of_the_users_own_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (home / "dagster.yaml").write_text(EARLIER_CONFIG)  # what versions before wrote: ours to update
    prepare_dagster_home(settings_from_mapping({"concurrent_runs": 4}, tmp_path, {}))
    assert yaml.safe_load((home / "dagster.yaml").read_text())["concurrency"]["runs"]["max_concurrent_runs"] == 4
    own = "telemetry:\n  enabled: false\nconcurrency:\n  runs:\n    max_concurrent_runs: 7\n"
    (home / "dagster.yaml").write_text(own)
    prepare_dagster_home(settings_from_mapping({"concurrent_runs": 4}, tmp_path, {}))
    assert (home / "dagster.yaml").read_text() == own


@pytest.mark.subprocess
def test_dagster_validates_the_workspace(tmp_path: Path) -> None:
    env = {**os.environ, "CHATPULSE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_chatpulse_instance_writes_the_home_it_prints(tmp_path: Path) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text("data_home: .\nconcurrent_runs: 3\n")
    result = invoke_cli("--config", str(config), "instance")
    home = tmp_path / "dagster"
    daemon = Path(sys.executable).with_name("dagster-daemon")
    start = f"start: DAGSTER_HOME={home} CHATPULSE_CONFIG={config} {daemon} run -m chatpulse.pipelines.definitions"
    assert (result.exit_code, result.output.splitlines()) == (
        0,
        [
            f"DAGSTER_HOME={home}",
            f"{home / 'dagster.yaml'}: written from the configuration",
            "  days at once: 3 (concurrent_runs), one run per day",
            f"  Dagster's storage: SQLite files in {home}",
            start,
        ],
    )
    assert yaml.safe_load((home / "dagster.yaml").read_text())["concurrency"]["runs"]["max_concurrent_runs"] == 3
    again = invoke_cli("--config", str(config), "instance").output.splitlines()
    assert again[1] == f"{home / 'dagster.yaml'}: unchanged from the configuration"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")  # the user's own
    config.write_text("data_home: .\nconcurrent_runs: 3\ndagster_storage_url_env: DAGSTER_PG\n")
    kept = invoke_cli("--config", str(config), "instance").output.splitlines()
    assert kept[1:] == [
        f"{home / 'dagster.yaml'}: your own file, left as it is (its first line is not ChatPulse's)",
        start,
    ]
    (home / "dagster.yaml").unlink()
    storage = invoke_cli("--config", str(config), "instance").output.splitlines()
    assert storage[3] == "  Dagster's storage: PostgreSQL at $DAGSTER_PG"
    # Unset here, it may be set where the daemon runs: said by instance, refused by a run before Dagster fails.
    unset = "dagster_storage_url_env names DAGSTER_PG, which is not set"
    assert storage[4].startswith(f"  warning: {unset}") and storage[4].endswith(" where Dagster runs")
    refused = invoke_cli("--config", str(config), "run", "--start", datetime.now(UTC).date().isoformat())
    assert refused.exit_code != 0 and refused.output.startswith(f"chatpulse: error: {unset}: export it")
    assert "Traceback" not in refused.output
    # A URL without psycopg2, which Dagster's storage runs on, is said and refused alike, its password never.
    bare = {"DAGSTER_PG": "postgresql://dagster:s3cret-pw@db.internal:5432/dagster"}
    wrong = "DAGSTER_PG starts postgresql://: Dagster's PostgreSQL storage runs on the psycopg2 driver"
    said = invoke_cli("--config", str(config), "instance", **bare).output
    assert f"  warning: {wrong}, write postgresql+psycopg2:// where Dagster runs" in said.splitlines()
    refused = invoke_cli("--config", str(config), "run", "--start", datetime.now(UTC).date().isoformat(), **bare)
    assert refused.exit_code != 0 and refused.output.startswith(f"chatpulse: error: {wrong}")
    assert "s3cret-pw" not in said + refused.output and "Traceback" not in refused.output
