"""Real public traces through source configs, checked against the raw CSV.

BurstGPT: Wang et al., "BurstGPT", KDD'25 (CC-BY-4.0). Azure LLM inference trace:
Patel et al., "Splitwise", ISCA'24 (CC-BY-4.0). Both are read from ../shared/realdata.
"""

import csv
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from chatpulse.config import load_settings
from chatpulse.warehouse import Warehouse

from fixtures import run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run_example(name: str, day: str, realdata: Path, tmp_path: Path, **overrides: object) -> Warehouse:
    config = yaml.safe_load((EXAMPLES / name).read_text())
    config.update(data_home=str(tmp_path), landing_dir=str(realdata), **overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    result = run_cli("--config", str(path), "run", "--start", day, DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"report: {tmp_path / 'reports' / day}.html"
    return Warehouse(load_settings(path, env={}).database_url)


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
def test_burstgpt_metrics_in_depth(realdata: Path, tmp_path: Path) -> None:
    """Per minute, peak minute, failures by kind, sessions and turns, tokens and cost per model."""
    with (realdata / "burstgpt3_first400.csv").open() as f:
        rows = list(csv.DictReader(f))
    seconds = [int(float(r["Timestamp"])) for r in rows]
    per_minute = Counter(s // 60 % 1440 for s in seconds)
    peak_minute, peak = min(per_minute.items(), key=lambda item: (-item[1], item[0]))
    failures = sum(int(r["Response tokens"]) == 0 for r in rows)
    turns = sorted(Counter(r["Session ID"] for r in rows if r["Session ID"]).values())
    models = sorted({r["Model"] for r in rows})
    # Price GPT-4 only (cached input defaults to input): ChatGPT must come out unpriced and named.
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  GPT-4:\n    - {from: 2023-01-01, input: 30.0, output: 60.0}\n")
    gpt4_cost = sum(
        int(r["Request tokens"]) * 30e-6 + int(r["Response tokens"]) * 60e-6 for r in rows if r["Model"] == "GPT-4"
    )

    warehouse = _run_example("burstgpt.yaml", "2023-08-14", realdata, tmp_path, prices=str(prices))
    minutes = warehouse.read("minute_metrics", "2023-08-14")
    assert len(minutes) == 1440
    assert minutes["requests"].tolist() == [per_minute[m] for m in range(1440)]
    overall = warehouse.read("request_metrics", "2023-08-14").set_index(["dimension", "value"], drop=False)
    everything = overall[overall["dimension"] == "all"].iloc[0]
    assert (everything["requests"], everything["peak_rpm"], everything["errors"]) == (400, peak, failures)
    assert everything["peak_minute"] == f"2023-08-14T{peak_minute // 60:02d}:{peak_minute % 60:02d}:00+00:00"
    for model in models:
        latencies = [float(r["Elapsed time"]) * 1000 for r in rows if r["Model"] == model]
        row = overall.loc[("model", model)]
        assert row["requests"] == len(latencies)
        assert row["latency_p50_ms"] == pytest.approx(np.percentile(latencies, 50))
        assert row["latency_max_ms"] == max(latencies)
    kinds = warehouse.read("error_kinds", "2023-08-14").set_index("error_kind")["errors"]
    assert kinds["server"] == kinds.sum() == failures  # status 500 from the failure rule
    assert len(warehouse.read("failed_requests", "2023-08-14")) == failures
    sessions = warehouse.read("session_metrics", "2023-08-14").iloc[0]
    assert sessions["sessions"] == len(turns)
    assert sessions["turns_mean"] == pytest.approx(sum(turns) / len(turns))
    assert (sessions["turns_max"], sessions["single_turn_sessions"]) == (max(turns), turns.count(1))
    costs = warehouse.read("model_costs", "2023-08-14").set_index("model")
    assert sorted(costs.index) == models
    for model in models:
        mine = [r for r in rows if r["Model"] == model]
        assert costs.loc[model, "requests"] == len(mine)
        assert costs.loc[model, "prompt_tokens"] == sum(int(r["Request tokens"]) for r in mine)
        assert costs.loc[model, "completion_tokens"] == sum(int(r["Response tokens"]) for r in mine)
        assert costs.loc[model, "total_tokens"] == sum(int(r["Total tokens"]) for r in mine)
    assert costs.loc["ChatGPT", "unpriced_requests"] == sum(r["Model"] == "ChatGPT" for r in rows)
    assert costs.loc["GPT-4", "unpriced_requests"] == 0
    assert costs.loc["GPT-4", "cost_estimate_usd"] == pytest.approx(gpt4_cost)


@pytest.mark.subprocess
def test_azure_trace_minutes_seconds_and_tokens_in_depth(realdata: Path, tmp_path: Path) -> None:
    with (realdata / "AzureLLMInferenceTrace_code.csv").open() as f:
        rows = list(csv.DictReader(f))
    starts = [datetime.strptime(r["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f") for r in rows]
    midnight = datetime(2023, 11, 16)
    per_minute = Counter((s - midnight) // timedelta(minutes=1) for s in starts)
    per_second = Counter(s.replace(microsecond=0) for s in starts)
    peak_second, peak_rps = min(per_second.items(), key=lambda item: (-item[1], item[0]))

    warehouse = _run_example("azure_code.yaml", "2023-11-16", realdata, tmp_path)
    minutes = warehouse.read("minute_metrics", "2023-11-16")
    assert minutes["requests"].tolist() == [per_minute[m] for m in range(1440)]
    overall = warehouse.read("request_metrics", "2023-11-16")
    everything = overall[overall["dimension"] == "all"].iloc[0]
    assert (everything["peak_rps"], everything["peak_second"]) == (peak_rps, peak_second.isoformat() + "+00:00")
    assert everything["errors"] == 0 and pd.isna(everything["concurrency_peak"])  # the trace has no latency
    costs = warehouse.read("model_costs", "2023-11-16")
    assert len(costs) == 1 and pd.isna(costs["model"].iloc[0])  # no model column: one unnamed, unpriced row
    row = costs.iloc[0]
    assert (row["requests"], row["unpriced_requests"]) == (len(rows), len(rows))
    assert row["prompt_tokens"] == sum(int(r["ContextTokens"]) for r in rows)
    assert row["completion_tokens"] == sum(int(r["GeneratedTokens"]) for r in rows)
    assert warehouse.read("error_kinds", "2023-11-16")["errors"].sum() == 0
