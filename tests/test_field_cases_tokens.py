"""Field cases 02, 03, 04 and 06 (../shared/field-cases): token conventions, unmetered requests, error kinds.

Each case is copied to a temporary folder and run with `chatpulse --config cfg.yaml run` in a process
of its own (Dagster caches a reconstructed job per process, so one configuration per process), and the
warehouse tables and the report are compared with the case's EXPECTED.md. Cases 02 and 03 as shipped
(without the convention their EXPECTED.md asks for) are read, cleaned and priced in this process, as a
day's run does. The expected numbers are worked out here from the case's own input rows and price file.
"""

import csv
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from chatpulse.config import load_settings
from chatpulse.ingest.clean import Cleaned
from chatpulse.metrics.costs import model_costs
from chatpulse.metrics.pricing import load_prices, prices_on
from chatpulse.schema import Kind
from chatpulse.warehouse import Warehouse

from fixtures import clean_every_day, field_case, run_cli

DAY = "2025-06-02"  # every case's requests are on this day (UTC, the cases' default zone)


def _run(case: Path, home: Path) -> Warehouse:
    result = run_cli(
        "--config", str(case / "cfg.yaml"), "run", "--start", DAY, CHATPULSE_HOME=str(home), DAGSTER_HOME=str(home)
    )
    assert result.returncode == 0, result.stderr
    return Warehouse(f"sqlite:///{home / 'warehouse.db'}")


def _declare(case: Path, convention: str) -> None:
    """Add `token_convention` to the case's one source, as its EXPECTED.md asks."""
    config = yaml.safe_load((case / "cfg.yaml").read_text())
    config["sources"][0]["token_convention"] = convention
    (case / "cfg.yaml").write_text(yaml.safe_dump(config))


def _rates(case: Path) -> dict:
    """The case's price entry (USD per million tokens); cached and cache write rates default to input."""
    (entries,) = yaml.safe_load((case / "prices.yaml").read_text())["models"].values()
    entry = entries[-1]
    return {"cached_input": entry["input"], "cache_write_input": entry["input"], **entry}


def _quality(warehouse: Warehouse) -> tuple[dict, dict, dict]:
    row = warehouse.read("data_quality", DAY, "requests").iloc[0]
    return json.loads(row["reasons"]), json.loads(row["repairs"]), json.loads(row["flags"])


def _cleaned(case: Path) -> tuple[Cleaned, pd.DataFrame]:
    """The case's day extracted and cleaned as a run does it, and its model_costs."""
    settings = load_settings(case / "cfg.yaml")
    (cleaned,) = clean_every_day(settings.landing_dir, settings.sources, Kind.REQUESTS).values()
    rates = prices_on(load_prices(settings.prices), date.fromisoformat(DAY))
    return cleaned, model_costs(cleaned.clean, date.fromisoformat(DAY), "UTC", rates)


def _page(home: Path) -> str:
    return " ".join((home / "reports" / f"{DAY}.html").read_text().split())


@pytest.mark.subprocess
def test_02_anthropic_cache_reads_and_writes_are_input_tokens_priced_at_their_own_rates(tmp_path: Path) -> None:
    case = field_case("02-anthropic-cache-tokens", tmp_path)
    _declare(case, "anthropic")
    # EXPECTED.md: a 5-minute cache write is billed at 1.25x the input rate; "the price file may state it, or
    # it follows from the provider". The case's file does not: genai-prices' Anthropic ratio applies.
    warehouse = _run(case, tmp_path / "home")

    with (case / "anthropic.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    given, read, written, output = (
        int(row[name])
        for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
    )
    rates = {**_rates(case), "cache_write_input": _rates(case)["input"] * 1.25}  # Anthropic's 5-minute write
    cost = (given * rates["input"] + read * rates["cached_input"] + written * rates["cache_write_input"]) / 1e6
    cost += output * rates["output"] / 1e6
    assert (given + read + written, output) == (13005, 200)  # EXPECTED.md
    assert cost == pytest.approx(0.010365)  # EXPECTED.md

    stored = warehouse.read("requests", DAY).iloc[0]
    assert (stored["prompt_tokens"], stored["cached_tokens"], stored["cache_write_tokens"]) == (13005, read, written)
    assert (stored["completion_tokens"], stored["total_tokens"]) == (output, 13005 + output)
    costs = warehouse.read("model_costs", DAY).iloc[0]
    assert costs["cost_estimate_usd"] == pytest.approx(cost)
    assert (costs["prompt_tokens"], costs["cache_write_tokens"], costs["estimated_requests"]) == (13005, written, 1)
    assert costs["cache_write_input_usd_per_mtok"] == pytest.approx(rates["cache_write_input"])
    assert costs["price_source"].startswith(str(case / "prices.yaml"))  # the case's file, its unstated rate named
    assert "cache_write_input at genai-prices" in costs["price_source"]
    daily = warehouse.read("daily_metrics", DAY).iloc[0]
    assert (daily["prompt_tokens"], daily["cost_estimate_usd"]) == (13005, pytest.approx(cost))
    assert _quality(warehouse)[2] == {}  # nothing contradicts the declared convention


def test_02_read_under_the_default_convention_is_flagged_never_capped(tmp_path: Path) -> None:
    case = field_case("02-anthropic-cache-tokens", tmp_path)  # as shipped: no token_convention, so openai
    cleaned, costs = _cleaned(case)
    with (case / "anthropic.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    stored = cleaned.clean.iloc[0]
    # Cached above prompt contradicts OpenAI's convention: kept as logged, not capped at the prompt.
    assert (stored["prompt_tokens"], stored["cached_tokens"]) == (
        int(row["input_tokens"]),
        int(row["cache_read_input_tokens"]),
    )
    assert json.loads(cleaned.quality["reasons"]) == {}
    assert json.loads(cleaned.quality["flags"]) == {"cached_tokens: more than prompt_tokens": 1}
    assert cleaned.quality["flagged"] == 1
    # Its cost is unknown, not priced on numbers that cannot both be right.
    assert pd.isna(costs.iloc[0]["cost_estimate_usd"]) and costs.iloc[0]["estimated_requests"] == 0


def _gemini(case: Path) -> dict:
    (line,) = (case / "gemini.jsonl").read_text().splitlines()
    return json.loads(line)


@pytest.mark.subprocess
def test_03_gemini_thoughts_are_output_and_the_total_is_kept(tmp_path: Path) -> None:
    case = field_case("03-gemini-thinking-tokens", tmp_path)
    _declare(case, "gemini")
    warehouse = _run(case, tmp_path / "home")
    usage, rates = _gemini(case), _rates(case)
    counts = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
    prompt, candidates, thoughts = (usage[name] for name in counts)
    assert prompt + candidates + thoughts == usage["totalTokenCount"] == 550  # EXPECTED.md
    cost = (prompt * rates["input"] + (candidates + thoughts) * rates["output"]) / 1e6
    assert cost == pytest.approx(0.001155)  # EXPECTED.md

    stored = warehouse.read("requests", DAY).iloc[0]
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (prompt, candidates + thoughts)
    assert (stored["reasoning_tokens"], stored["total_tokens"]) == (thoughts, 550)
    assert warehouse.read("model_costs", DAY).iloc[0]["cost_estimate_usd"] == pytest.approx(cost)
    assert warehouse.read("daily_metrics", DAY).iloc[0]["total_tokens"] == 550
    assert _quality(warehouse)[1:] == ({}, {})  # no repair, no flag


def test_03_read_under_the_default_convention_keeps_the_total_and_flags_it(tmp_path: Path) -> None:
    case = field_case("03-gemini-thinking-tokens", tmp_path)  # as shipped: openai, where completion holds reasoning
    cleaned, costs = _cleaned(case)
    usage = _gemini(case)
    stored = cleaned.clean.iloc[0]
    # Not "repaired" to 100 + 50: the logged total stays, and the contradiction is named.
    assert (stored["total_tokens"], stored["completion_tokens"]) == (
        usage["totalTokenCount"],
        usage["candidatesTokenCount"],
    )
    assert json.loads(cleaned.quality["repairs"]) == {}
    assert json.loads(cleaned.quality["flags"]) == {
        "reasoning_tokens: more than completion_tokens": 1,
        "total_tokens: not prompt_tokens + completion_tokens": 1,
    }
    assert pd.isna(costs.iloc[0]["cost_estimate_usd"])


@pytest.mark.subprocess
def test_04_unmetered_requests_are_counted_and_never_priced_at_zero(tmp_path: Path) -> None:
    case = field_case("04-unmetered-streaming", tmp_path)
    home = tmp_path / "home"
    warehouse = _run(case, home)
    rows = [json.loads(line) for line in (case / "usage.jsonl").read_text().splitlines()]
    counted = [r for r in rows if r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) > 0]
    unmetered = sorted(r["id"] for r in rows if r not in counted and r["status"] < 400)
    # gpt-4o-mini at 0.15 input and 0.60 output per 1M (EXPECTED.md, the built-in price table).
    cost = sum(r["prompt_tokens"] * 0.15 + r["completion_tokens"] * 0.60 for r in counted) / 1e6
    assert (len(rows), len(counted), unmetered, cost) == (3, 1, ["s-e2", "s-e3"], pytest.approx(0.00045))

    requests = warehouse.read("requests", DAY)
    assert sorted(requests.loc[requests["unmetered"].astype(bool), "request_id"]) == unmetered
    daily = warehouse.read("daily_metrics", DAY).iloc[0]
    assert (daily["requests"], daily["unmetered_requests"], daily["estimated_requests"]) == (3, 2, 1)
    assert daily["cost_estimate_usd"] == pytest.approx(cost)
    assert pd.isna(daily["cost_usd"])  # no row logged a cost: missing, not $0
    costs = warehouse.read("model_costs", DAY).iloc[0]
    assert (costs["requests"], costs["unmetered_requests"], costs["estimated_requests"]) == (3, 2, 1)
    assert costs["cost_estimate_usd"] == pytest.approx(cost) and pd.isna(costs["cost_logged_usd"])
    trends = warehouse.read("daily_trends", DAY).set_index("metric")["value"]
    assert pd.isna(trends["cost_usd"]) and trends["cost_estimate_usd"] == pytest.approx(cost)
    _, _, flags = _quality(warehouse)
    assert flags == {"unmetered: served without token counts": 2}

    page = _page(home)
    assert "estimate covers 1 of 3 requests · 2 unmetered" in page
    assert "2 requests were served without token counts (unmetered)" in page
    assert "flagged: <code>unmetered: served without token counts</code> (2)" in page


@pytest.mark.subprocess
def test_06_error_kinds_from_status_then_provider_codes_then_finish_reason(tmp_path: Path) -> None:
    case = field_case("06-error-kinds", tmp_path)
    warehouse = _run(case, tmp_path / "home")
    rows = [json.loads(line) for line in (case / "errors.jsonl").read_text().splitlines()]
    # EXPECTED.md, request by request; x-l8 (200, stop) succeeded.
    kinds = {
        "x-l1": "content_filter",
        "x-l3": "server",
        "x-l4": "rate_limit",
        "x-l5": "timeout",
        "x-l6": "server",
        "x-l7": "content_filter",
    }
    assert sorted(kinds) == sorted(r["id"] for r in rows if r["id"] != "x-l8")
    failed = warehouse.read("failed_requests", DAY)
    assert dict(zip(failed["request_id"], failed["error_kind"], strict=True)) == kinds
    daily = warehouse.read("daily_metrics", DAY).iloc[0]
    assert (daily["requests"], daily["errors"]) == (len(rows), len(kinds)) == (7, 6)
    table = warehouse.read("error_kinds", DAY).set_index("error_kind")["errors"]
    assert {kind: n for kind, n in table.items() if n} == dict(Counter(kinds.values()))
    assert dict(Counter(kinds.values())) == {"content_filter": 2, "server": 2, "rate_limit": 1, "timeout": 1}


def _without_price_file(case: Path, convention: str) -> None:
    """The case's source declared in its provider's convention, and its `prices:` key dropped: the built-in
    prices (genai-prices) alone price it."""
    _declare(case, convention)
    config = yaml.safe_load((case / "cfg.yaml").read_text())
    del config["prices"]
    (case / "cfg.yaml").write_text(yaml.safe_dump(config))


def test_02_and_03_are_priced_by_the_built_in_prices_alone(tmp_path: Path) -> None:
    anthropic = field_case("02-anthropic-cache-tokens", tmp_path / "02")
    _without_price_file(anthropic, "anthropic")
    _, costs = _cleaned(anthropic)
    # EXPECTED.md: 5 x 3.00 + 12000 x 0.30 + 1000 x 3.75 + 200 x 15.00 per million (Anthropic's list prices).
    assert costs.iloc[0]["cost_estimate_usd"] == pytest.approx(
        (5 * 3.00 + 12000 * 0.30 + 1000 * 3.75 + 200 * 15.0) / 1e6
    )
    assert costs.iloc[0]["cost_estimate_usd"] == pytest.approx(0.010365)
    assert costs.iloc[0]["price_source"].startswith("genai-prices ")

    gemini = field_case("03-gemini-thinking-tokens", tmp_path / "03")
    _without_price_file(gemini, "gemini")
    _, costs = _cleaned(gemini)
    # EXPECTED.md: 100 x 0.30 + (50 + 400) x 2.50 per million (Google's list prices).
    assert costs.iloc[0]["cost_estimate_usd"] == pytest.approx((100 * 0.30 + 450 * 2.50) / 1e6)
    assert costs.iloc[0]["cost_estimate_usd"] == pytest.approx(0.001155)
