"""Asset checks belong to their day: two days through the real Dagster job and instance, where the first day's
`quarantine_rate` fails and the second's passes; the event log keeps each result under its own day."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionResolvedStatus,
)

from chatpulse.assets.ingest import QUARANTINE_RATE
from chatpulse.config import load_settings
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions, daily_partitions

from fixtures import write_jsonl

FIRST, SECOND = "2026-11-20", "2026-11-21"
WARN_RATE = 0.05


def _requests(day: str, good: int, bad: int) -> list[dict]:
    """``good`` valid request lines of ``day`` and ``bad`` ones whose latency is not a number."""
    return [
        {
            "request_id": f"{day}-{n}",
            "timestamp": f"{day}T10:{n:02d}:00+00:00",
            "model": "gpt-4o",
            "status_code": 200,
            "latency_ms": 100 if n < good else "quick",
        }
        for n in range(good + bad)
    ]


@pytest.mark.pipeline
def test_each_check_result_names_its_day_and_an_earlier_failure_stays_visible(tmp_path: Path) -> None:
    counts = {FIRST: (8, 2), SECOND: (10, 0)}  # (good, bad) lines per day
    for day, (good, bad) in counts.items():
        write_jsonl(tmp_path / "landing" / f"requests-{day}.jsonl", _requests(day, good, bad))
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"data_home: .\nquarantine_warn_rate: {WARN_RATE}\n")
    settings = load_settings(config, env={})
    defs = build_definitions(settings, str(config))
    job = defs.resolve_job_def(DAILY_JOB)
    # The verdict each day should get, by hand: the share of its lines that are quarantined, against the limit.
    expected = {day: bad / (good + bad) <= WARN_RATE for day, (good, bad) in counts.items()}
    assert expected == {FIRST: False, SECOND: True}

    instance = DagsterInstance.ephemeral()
    for day in counts:
        assert job.execute_in_process(partition_key=day, instance=instance).success
    storage = instance.event_log_storage

    # Every check of the job (ingest, alerts, day_consistent) recorded its result under the run's day.
    check_keys = job.asset_layer.asset_graph.asset_check_keys
    assert len(check_keys) > 20
    for key in check_keys:
        history = storage.get_asset_check_execution_history(key, limit=10)
        assert sorted(record.partition for record in history) == [FIRST, SECOND], key
        for record in history:
            evaluation = record.event.dagster_event.event_specific_data
            assert evaluation.partition == record.partition
            assert evaluation.description.startswith(f"{record.partition}: "), (key, evaluation.description)

    rate = AssetCheckKey(AssetKey("clean_requests"), QUARANTINE_RATE)
    by_day = {record.partition: record.status for record in storage.get_asset_check_execution_history(rate, 10)}
    status = {True: AssetCheckExecutionRecordStatus.SUCCEEDED, False: AssetCheckExecutionRecordStatus.FAILED}
    assert by_day == {day: status[passed] for day, passed in expected.items()}
    # The latest result of the first day is still its failure after the second day passed.
    latest = storage.get_latest_asset_check_execution_by_key([rate], partition_filter=PartitionKeyFilter(key=FIRST))
    assert latest[rate].status == AssetCheckExecutionRecordStatus.FAILED
    evaluation = latest[rate].event.dagster_event.event_specific_data
    good, bad = counts[FIRST]
    assert evaluation.metadata["rate"].value == pytest.approx(bad / (good + bad))
    assert f"{bad / (good + bad):.1%}" in evaluation.description
    # What the UI shows per partition: the first day failed, the second passed, no day skipped.
    state = storage.get_asset_check_state([(rate, daily_partitions(settings))])[rate]
    subsets = {status: set(subset.subset_value.get_partition_keys()) for status, subset in state.subsets.items()}
    assert subsets[AssetCheckExecutionResolvedStatus.FAILED] == {FIRST}
    assert subsets[AssetCheckExecutionResolvedStatus.SUCCEEDED] == {SECOND}
    assert not subsets.get(AssetCheckExecutionResolvedStatus.SKIPPED)
