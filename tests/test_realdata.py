"""Real public traces through source configs, checked against the raw CSV.

BurstGPT: Wang et al., "BurstGPT", KDD'25 (CC-BY-4.0). Azure LLM inference trace:
Patel et al., "Splitwise", ISCA'24 (CC-BY-4.0). Both are read from ../shared/realdata.
"""

import csv
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml

from chatpulse.config import load_settings
from chatpulse.warehouse import Warehouse
from tests.conftest import run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run_example(name: str, day: str, realdata: Path, tmp_path: Path) -> Warehouse:
    config = yaml.safe_load((EXAMPLES / name).read_text())
    config.update(data_home=str(tmp_path), landing_dir=str(realdata))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    result = run_cli("--config", str(path), "run", "--start", day, DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"report: {tmp_path / 'reports' / day}.html"
    return Warehouse(load_settings(path, env={}).database_url)


def test_burstgpt_hours_failures_and_sessions(realdata: Path, tmp_path: Path) -> None:
    with (realdata / "burstgpt3_first400.csv").open() as f:
        rows = list(csv.DictReader(f))
    per_hour = Counter(int(float(r["Timestamp"])) // 3600 % 24 for r in rows)
    failures = sum(int(r["Response tokens"]) == 0 for r in rows)
    sessions = Counter(r["Session ID"] for r in rows if r["Session ID"])
    tokens = sum(int(r["Total tokens"]) for r in rows)

    warehouse = _run_example("burstgpt.yaml", "2023-08-14", realdata, tmp_path)
    hourly = warehouse.read("hourly_metrics", "2023-08-14").set_index("hour")
    assert {h: n for h, n in hourly["requests"].items() if n} == dict(per_hour)
    daily = warehouse.read("daily_metrics", "2023-08-14").iloc[0]
    assert (daily["requests"], daily["errors"], daily["total_tokens"]) == (400, failures, tokens)
    table = warehouse.read("sessions", "2023-08-14").set_index("session_id")
    assert len(table) == daily["sessions"] == len(sessions)
    assert table["turns"].to_dict() == dict(sessions)


def test_azure_trace_minutes_and_tokens(realdata: Path, tmp_path: Path) -> None:
    with (realdata / "AzureLLMInferenceTrace_code.csv").open() as f:
        rows = list(csv.DictReader(f))
    # Parse the 7-digit fractions by hand, independently of pandas.
    starts = [datetime.strptime(r["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f") for r in rows]
    per_minute = Counter(s.replace(second=0, microsecond=0) for s in starts)
    peak_minute, peak = min(per_minute.items(), key=lambda item: (-item[1], item[0]))
    per_hour = Counter(s.hour for s in starts)

    warehouse = _run_example("azure_code.yaml", "2023-11-16", realdata, tmp_path)
    daily = warehouse.read("daily_metrics", "2023-11-16").iloc[0]
    assert daily["requests"] == len(rows) and daily["errors"] == 0
    assert daily["peak_rpm"] == peak
    assert daily["peak_minute"] == peak_minute.isoformat() + "+00:00"
    assert daily["prompt_tokens"] == sum(int(r["ContextTokens"]) for r in rows)
    assert daily["completion_tokens"] == sum(int(r["GeneratedTokens"]) for r in rows)
    hourly = warehouse.read("hourly_metrics", "2023-11-16").set_index("hour")
    assert {h: n for h, n in hourly["requests"].items() if n} == dict(per_hour)
