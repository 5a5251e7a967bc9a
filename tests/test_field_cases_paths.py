"""Field case 01 (raw OpenAI responses, tokens nested under `usage`), run as the daily job runs it.

The case is copied from the shared field-case folder; the tables are compared with its EXPECTED.md, the
numbers counted again from its responses.jsonl with the json module and the prices EXPECTED.md states.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dagster import AssetCheckSeverity, DagsterInstance, ExecuteInProcessResult

from chatpulse.config import load_settings
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

pytestmark = pytest.mark.pipeline

DAY = "2025-06-02"  # EXPECTED.md: run day 2025-06-02 (UTC)
# USD per million tokens, as EXPECTED.md states them: input, cached input, output.
PRICES = {"gpt-4.1": (2.00, 0.50, 8.00), "o3-mini": (1.10, 0.55, 4.40)}


def _run(config: Path, instance: DagsterInstance) -> ExecuteInProcessResult:
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(partition_key=DAY, instance=instance)
    assert result.success
    return result


def _mapping_check(result: ExecuteInProcessResult) -> object:
    (check,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "mapped_columns_present" and c.asset_key.path[-1] == "raw_requests"
    ]
    return check


def test_case_01_nested_usage_gives_the_days_tokens_and_cost(field_case: Callable[[str], Path]) -> None:
    case = field_case("01-openai-nested-usage")
    result = _run(case / "cfg.yaml", DagsterInstance.ephemeral())
    assert _mapping_check(result).passed

    responses = [json.loads(line) for line in (case / "responses.jsonl").read_text().splitlines() if line.strip()]
    usage = {r["id"]: r["usage"] for r in responses}
    expected = {
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage.values()),
        "completion_tokens": sum(u["completion_tokens"] for u in usage.values()),
        "total_tokens": sum(u["total_tokens"] for u in usage.values()),
        "cached_tokens": sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage.values()),
        "reasoning_tokens": sum(u["completion_tokens_details"]["reasoning_tokens"] for u in usage.values()),
    }
    assert expected == {  # EXPECTED.md's day
        "prompt_tokens": 22008,
        "completion_tokens": 1266,
        "total_tokens": 23274,
        "cached_tokens": 16000,
        "reasoning_tokens": 261,
    }
    cost = 0.0
    for response in responses:
        rate_in, rate_cached, rate_out = PRICES[response["model"]]
        tokens = response["usage"]
        cached = tokens["prompt_tokens_details"]["cached_tokens"]
        cost += (
            (tokens["prompt_tokens"] - cached) * rate_in + cached * rate_cached + tokens["completion_tokens"] * rate_out
        ) / 1e6
    assert cost == pytest.approx(0.0273792, abs=1e-12)  # EXPECTED.md

    store = Warehouse(load_settings(case / "cfg.yaml", env={}).database_url)
    requests = store.read("requests", DAY).set_index("request_id")
    for request_id, tokens in usage.items():
        row = requests.loc[request_id]
        assert (row["prompt_tokens"], row["cached_tokens"], row["reasoning_tokens"]) == (
            tokens["prompt_tokens"],
            tokens["prompt_tokens_details"]["cached_tokens"],
            tokens["completion_tokens_details"]["reasoning_tokens"],
        )
    costs = store.read("model_costs", DAY)
    assert {column: int(costs[column].sum()) for column in expected} == expected
    # The estimate is model_costs.cost_estimate_usd (daily_metrics.cost_usd sums the logged costs, none here).
    assert costs["cost_estimate_usd"].sum() == pytest.approx(cost, abs=1e-12)
    assert costs["unpriced_requests"].sum() == 0


def test_case_01_with_a_mistyped_path_warns_in_the_run(field_case: Callable[[str], Path]) -> None:
    case = field_case("01-openai-nested-usage")
    config = yaml.safe_load((case / "cfg.yaml").read_text())
    typo = "usage.prompt_token_details.cached_tokens"
    config["sources"][0]["columns"]["cached_tokens"] = typo
    (case / "cfg.yaml").write_text(yaml.safe_dump(config))
    instance = DagsterInstance.ephemeral()
    result = _run(case / "cfg.yaml", instance)

    check = _mapping_check(result)
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["missing"].value == [
        {"source": "requests", "column": "cached_tokens", "source_column": typo, "files": ["responses.jsonl"]}
    ]
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("mapping: ")]
    assert logged == [f"mapping: source 'requests': column '{typo}' (cached_tokens) is not in its file responses.jsonl"]
