"""End to end through Dagster: a hand-built day on a temporary SQLite warehouse."""

from pathlib import Path

import numpy as np
import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from chatpulse.config import load_settings
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

from fixtures import PIPELINE_DAY as DAY
from fixtures import PIPELINE_REQUESTS as REQUESTS
from fixtures import pipeline_request, write_jsonl

MESSAGES = [
    {
        "session_id": "s1",
        "user_id": "u1",
        "timestamp": "2026-11-20T10:00:00Z",
        "role": "user",
        "content": "Write a Python function to parse dates",
    },
    {
        "session_id": "s1",
        "user_id": "u1",
        "timestamp": "2026-11-20T10:00:06Z",
        "role": "assistant",
        "content": "def parse(s): ...",
    },
    {
        "session_id": "s1",
        "user_id": "u1",
        "timestamp": "2026-11-20T10:00:30Z",
        "role": "user",
        "content": "now add tests",
    },
    {
        "session_id": "s1",
        "user_id": "u1",
        "timestamp": "2026-11-20T10:00:36Z",
        "role": "assistant",
        "content": "def test(): ...",
    },
    {
        "session_id": "s3",
        "user_id": "u3",
        "timestamp": "2026-11-20T23:59:58Z",
        "role": "user",
        "content": "把这段话翻译成英文",
    },
]
FEEDBACK = [{"session_id": "s1", "user_id": "u1", "timestamp": "2026-11-20T10:01:00Z", "rating": 1}]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl.gz", REQUESTS)
    write_jsonl(tmp_path / "landing" / "messages-1.jsonl", MESSAGES)
    write_jsonl(tmp_path / "landing" / "feedback-1.jsonl", FEEDBACK)
    (tmp_path / "chatpulse.yaml").write_text("data_home: .\n")
    return tmp_path


def _run(home: Path):
    config = home / "chatpulse.yaml"
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(partition_key=DAY, instance=DagsterInstance.ephemeral())
    assert result.success
    return result, Warehouse(f"sqlite:///{home / 'warehouse.db'}")


@pytest.mark.pipeline
def test_a_day_end_to_end(home: Path) -> None:
    result, warehouse = _run(home)
    daily = warehouse.read("daily_metrics", DAY).iloc[0]
    latencies = [100, 300, 50, 200, 1000]
    assert (daily["requests"], daily["errors"], daily["error_rate"]) == (5, 1, 0.2)
    assert (daily["peak_rpm"], daily["peak_minute"]) == (3, "2026-11-20T10:00:00+00:00")
    assert daily["latency_mean_ms"] == 330.0
    assert daily["latency_p95_ms"] == pytest.approx(np.percentile(latencies, 95)) == pytest.approx(860.0)
    assert (daily["prompt_tokens"], daily["total_tokens"], daily["users"], daily["sessions"]) == (16, 42, 3, 4)

    hourly = warehouse.read("hourly_metrics", DAY).set_index("hour")
    assert len(hourly) == 24
    assert hourly.loc[[10, 11, 23], "requests"].tolist() == [3, 1, 1]
    assert hourly.loc[10, "errors"] == 1 and hourly.loc[10, "peak_rpm"] == 3

    sessions = warehouse.read("sessions", DAY).set_index("session_id")
    assert sessions.loc["s1", ["turns", "messages", "requests", "duration_s"]].tolist() == [2, 4, 2, 36.0]
    assert (sessions["delimited_by"] == "inactivity_gap").sum() == 2
    assert sessions.loc["s1", "scenario"] == "coding" and sessions.loc["s3", "scenario"] == "translation"

    scenarios = warehouse.read("scenario_daily", DAY).set_index("scenario")
    assert scenarios.loc[["coding", "translation", "other"], "requests"].tolist() == [2, 1, 2]

    quality = warehouse.read("data_quality", DAY).set_index("kind")
    assert quality.loc["requests", ["rows_in", "clean", "quarantined", "duplicates", "repaired"]].tolist() == [
        7,
        5,
        1,
        1,
        3,
    ]
    quarantine = warehouse.read("quarantine", DAY)
    assert quarantine[["source_file", "source_line"]].values.tolist() == [["requests-1.jsonl.gz", 7]]

    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    assert checks[("clean_requests", "rows_accounted_for")].passed
    rate = checks[("clean_requests", "quarantine_rate")]
    assert not rate.passed and rate.severity == AssetCheckSeverity.WARN
    assert checks[("clean_messages", "expectations_pass")].passed

    html = (home / "reports" / f"{DAY}.html").read_text()
    assert "ChatPulse daily report" in html and "860 ms" in html
    assert "Write a Python function" not in html  # session content never reaches the report
    charts = {p.name for p in (home / "reports" / DAY).glob("*.png")}
    assert {"error_rate_by_hour.png", "latency_distribution.png", "requests_per_hour.png"} <= charts


@pytest.mark.pipeline
def test_rerunning_a_day_replaces_it(home: Path) -> None:
    _, warehouse = _run(home)
    tables = ("requests", "messages", "sessions", "daily_metrics", "hourly_metrics", "data_quality", "quarantine")
    first = {name: warehouse.read(name) for name in tables}
    _, warehouse = _run(home)
    for name in tables:
        assert warehouse.read(name).equals(first[name]), name


@pytest.mark.pipeline
def test_rerunning_a_day_picks_up_late_rows(home: Path) -> None:
    _run(home)
    write_jsonl(
        home / "landing" / "requests-late.jsonl", [pipeline_request("late", "12:00:00", user_id="u9", latency_ms=10)]
    )
    _, warehouse = _run(home)
    assert warehouse.read("daily_metrics", DAY)["requests"].tolist() == [6]
    assert len(warehouse.read("requests", DAY)) == 6
