"""Price table, cost estimate, tokens per model and usage per user."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.behaviour.sessions import build_sessions
from chatpulse.config import ConfigError, settings_from_mapping
from chatpulse.metrics.costs import MODEL_COST_COLUMNS, USER_COLUMNS, daily_users, model_costs
from chatpulse.metrics.daily import daily_metrics
from chatpulse.metrics.pricing import estimate_cost, load_prices, prices_on
from chatpulse.pricefile import PriceError, read_prices

from fixtures import METRIC_DAY as DAY
from fixtures import clean_requests as requests
from fixtures import no_messages

RATES = prices_on(load_prices(), DAY)


def at(time: str, **fields) -> dict:
    return {"timestamp": f"2026-11-20T{time}Z", "status_code": 200, **fields}


FRAME = requests(
    # gpt-4o on 2026-11-20: $2.50 input, $1.25 cached, $10 output per million tokens.
    at(
        "01:00:00",
        user_id="a",
        model="gpt-4o",
        prompt_tokens=1000,
        cached_tokens=400,
        completion_tokens=300,
        reasoning_tokens=100,
        total_tokens=1300,
        cost_usd=0.006,
    ),
    # Completion missing: the reasoning tokens are the output.
    at(
        "02:00:00",
        user_id="a",
        model="gpt-4o",
        prompt_tokens=200,
        completion_tokens=None,
        reasoning_tokens=50,
        total_tokens=250,
    ),
    at(
        "03:00:00",
        user_id="b",
        model="mystery-1",
        prompt_tokens=10,
        completion_tokens=10,
        total_tokens=20,
        cost_usd=1.0,
    ),
    at("04:00:00", user_id="b", model="mystery-1", status_code=429, error_type="rate_limit"),
    at("05:00:00", user_id=None, model=None, prompt_tokens=7, completion_tokens=1, total_tokens=8),
    at("06:00:00", user_id="c", model="text-embedding-3-small", prompt_tokens=5000, total_tokens=5000, cost_usd=0.0001),
)


def test_estimate_bills_cached_and_reasoning_tokens_as_documented() -> None:
    usd = estimate_cost(FRAME, RATES)
    assert usd[0] == pytest.approx((600 * 2.50 + 400 * 1.25 + 300 * 10.0) / 1e6)
    assert usd[1] == pytest.approx((200 * 2.50 + 50 * 10.0) / 1e6)
    assert np.isnan(usd[2]) and np.isnan(usd[3]) and np.isnan(usd[4])  # unpriced, never 0
    assert usd[5] == pytest.approx(5000 * 0.02 / 1e6)


def _rates(day: dt.date, model: str, book=None) -> pd.Series:
    """The rates one request of model at noon UTC on day is priced at (a row of DayPrices.resolve's table)."""
    frame = pd.DataFrame({"timestamp": [pd.Timestamp(f"{day}T12:00:00Z")], "model": [model]})
    resolved = prices_on(book or load_prices(), day).resolve(frame)
    assert resolved.codes[0] >= 0, f"{model} unpriced on {day}"
    return resolved.table.iloc[resolved.codes[0]]


def test_a_days_spend_is_each_requests_logged_cost_else_its_estimate() -> None:
    daily = daily_metrics(FRAME, build_sessions(FRAME, no_messages()), DAY, "UTC", RATES).iloc[0]
    # Logged: rows 0, 2 and 5 ($0.006 + $1.0 + $0.0001). Row 1 has only its estimate (gpt-4o: 200 prompt
    # at $2.50 and 50 reasoning at $10 per million); rows 3 and 4 have neither (unpriced, no logged cost).
    assert daily["logged_requests"] == 3
    assert daily["spend_usd"] == pytest.approx(0.006 + 1.0 + 0.0001 + (200 * 2.50 + 50 * 10.0) / 1e6)
    assert daily["cost_usd"] == pytest.approx(0.006 + 1.0 + 0.0001)


def test_prices_are_versioned_by_day() -> None:
    # OpenAI cut o3 from $10 / $40 to $2 / $8 per million tokens on 2025-06-10 (the package's price history).
    before, after = _rates(dt.date(2025, 6, 1), "o3"), _rates(dt.date(2025, 7, 1), "o3")
    assert (before["input"], before["output"], after["input"], after["output"]) == (10.0, 40.0, 2.0, 8.0)
    assert after["price_from"] == "2025-06-10" and after["price_source"].startswith("genai-prices ")
    # A price file's entry starts on its own date: qwen3-max (ChatPulse's prices.yaml) is unpriced before it.
    frame = pd.DataFrame({"timestamp": [pd.Timestamp("2025-09-01T12:00:00Z")], "model": ["qwen3-max"]})
    assert prices_on(load_prices(), dt.date(2025, 9, 1)).resolve(frame).codes.tolist() == [-1]


def test_user_prices_extend_and_override_the_built_in_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  gpt-4o:\n    - {from: 2026-11-01, input: 2.0, cached_input: 1.0, output: 8.0}\n"
        "  mystery-1:\n    - {from: 2026-01-01, input: 1.0, output: 2.0}\n"
    )
    book = load_prices(path)
    # Before the user's entry starts, genai-prices' list price; from it on, the user's, named by its file.
    assert _rates(dt.date(2026, 10, 31), "gpt-4o", book)[["input", "output"]].tolist() == [2.5, 10.0]
    mine = _rates(DAY, "gpt-4o", book)
    assert (mine["input"], mine["cached_input"], mine["output"], mine["price_source"]) == (2.0, 1.0, 8.0, str(path))
    # A model the package lacks: unstated cache rates are the input rate.
    assert _rates(DAY, "mystery-1", book)[["cached_input", "cache_write_input"]].tolist() == [1.0, 1.0]
    costs = model_costs(FRAME, DAY, "UTC", prices_on(book, DAY)).set_index("model")
    assert costs.loc["mystery-1", "cost_estimate_usd"] == pytest.approx((10 * 1.0 + 10 * 2.0) / 1e6)
    assert costs.loc["gpt-4o", "cost_estimate_usd"] == pytest.approx(
        (600 * 2 + 400 * 1 + 300 * 8 + 200 * 2 + 50 * 8) / 1e6
    )
    assert costs.loc["gpt-4o", "price_source"] == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models: {m: [{from: 2026-01-01, input: -1, output: 1}]}",
            "models.m[0].input: expected a non-negative number",
        ),
        ("models: {m: [{input: 1, output: 1}]}", "models.m[0].from: required"),
        ("models: {m: [{from: soon, input: 1, output: 1}]}", "models.m[0].from: expected a date"),
        ("models: {m: [{from: 2026-01-01, input: 1, output: 1, extra: 2}]}", "models.m[0].extra: unknown key"),
        ("models: {m: []}", "models.m: expected a non-empty list"),
        ("prices: {}", "models: expected a mapping"),
        ("models: {m: [{from: 2026-02-30, input: 1, output: 1}]}", "models.m[0].from: expected a date YYYY-MM-DD"),
        ("models: {m: [{from: 2026-01-01, input: true, output: 1}]}", "models.m[0].input: expected a non-negative"),
    ],
)
def test_price_file_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PriceError, match=re.escape(message)):
        read_prices(path)
    with pytest.raises(ConfigError, match=f"^prices: .*{re.escape(message)}"):
        settings_from_mapping({"prices": "p.yaml"}, tmp_path, {})


def test_config_keys_for_prices_and_slow_requests(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("models: {m: [{from: 2026-01-01, input: 1, output: 1}]}")
    settings = settings_from_mapping({"prices": "p.yaml", "slow_request_seconds": 2.5}, tmp_path, {})
    assert (settings.prices, settings.slow_request_seconds) == (tmp_path / "p.yaml", 2.5)
    assert settings_from_mapping({}, tmp_path, {}).slow_request_seconds == 10.0
    with pytest.raises(ConfigError, match="slow_request_seconds: expected a positive number"):
        settings_from_mapping({"slow_request_seconds": 0}, tmp_path, {})
    with pytest.raises(ConfigError, match="prices: cannot read"):
        settings_from_mapping({"prices": "missing.yaml"}, tmp_path, {})


def test_model_costs_name_unpriced_models_and_keep_the_logged_cost() -> None:
    table = model_costs(FRAME, DAY, "UTC", RATES)
    assert list(table.columns) == list(MODEL_COST_COLUMNS)
    assert table["model"].tolist() == ["gpt-4o", "mystery-1", "text-embedding-3-small", None]
    rows = table.set_index(table["model"].fillna("-")).to_dict("index")
    gpt = rows["gpt-4o"]
    assert (gpt["requests"], gpt["prompt_tokens"], gpt["cached_tokens"], gpt["completion_tokens"]) == (
        2,
        1200,
        400,
        300,
    )
    assert (gpt["reasoning_tokens"], gpt["total_tokens"], gpt["unpriced_requests"]) == (150, 1550, 0)
    estimate = (600 * 2.50 + 400 * 1.25 + 300 * 10.0 + 200 * 2.50 + 50 * 10.0) / 1e6
    assert gpt["cost_estimate_usd"] == pytest.approx(estimate)
    assert (gpt["cost_logged_usd"], gpt["logged_requests"]) == (0.006, 1)
    assert gpt["cost_difference_usd"] == pytest.approx(0.006 - (600 * 2.50 + 400 * 1.25 + 300 * 10.0) / 1e6)
    assert (gpt["input_usd_per_mtok"], gpt["output_usd_per_mtok"]) == (2.5, 10.0)
    assert gpt["price_source"].startswith("genai-prices ")
    # Spend: the logged $0.006 of the first request, the estimate of the second (which logged none).
    assert gpt["spend_usd"] == pytest.approx(0.006 + (200 * 2.50 + 50 * 10.0) / 1e6)
    mystery = rows["mystery-1"]
    assert (mystery["requests"], mystery["unpriced_requests"], mystery["cost_logged_usd"]) == (2, 2, 1.0)
    assert np.isnan(mystery["cost_estimate_usd"]) and np.isnan(mystery["cost_difference_usd"])
    assert pd.isna(mystery["price_from"]) and pd.isna(mystery["price_source"])
    assert mystery["spend_usd"] == 1.0  # logged, no estimate
    assert rows["-"]["unpriced_requests"] == 1 and np.isnan(rows["-"]["cost_logged_usd"])
    assert np.isnan(rows["-"]["spend_usd"])  # neither: unknown, not $0
    # 5,000 input tokens at $0.02 per million, logged as $0.0001: no difference.
    assert rows["text-embedding-3-small"]["cost_difference_usd"] == pytest.approx(0.0001 - 5000 * 0.02 / 1e6)


def test_a_logged_cost_equal_to_the_estimate_differs_by_zero_not_float_dust() -> None:
    # 1 input and 46 output tokens of gpt-4o: (1 x 2.50 + 46 x 10) / 1e6 = $0.0004625, logged as such; the
    # estimate's float arithmetic left 5.4e-20 in cost_difference_usd.
    logged = (1 * 2.50 + 46 * 10.0) / 1e6
    request = at("10:00", model="gpt-4o", prompt_tokens=1, completion_tokens=46, total_tokens=47, cost_usd=logged)
    row = model_costs(requests(request), DAY, "UTC", RATES).iloc[0]
    assert row["cost_estimate_usd"] == pytest.approx(logged) and str(row["cost_difference_usd"]) == "0.0"


def test_daily_users_rank_and_sum_per_user() -> None:
    table = daily_users(FRAME, DAY, "UTC", RATES)
    assert list(table.columns) == list(USER_COLUMNS)
    # a and b both made 2 requests: a has more tokens (1550 against 20); c made one.
    assert table["user_id"].tolist() == ["a", "b", "c"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["requests"].tolist() == [2, 2, 1]
    assert table["errors"].tolist() == [0, 1, 0]
    assert table["total_tokens"].tolist() == [1550, 20, 5000]
    assert table["unpriced_requests"].tolist() == [0, 2, 0]
    assert table["cost_estimate_usd"][0] == pytest.approx(
        (600 * 2.50 + 400 * 1.25 + 300 * 10.0 + 200 * 2.50 + 50 * 10.0) / 1e6
    )
    assert np.isnan(table["cost_estimate_usd"][1])  # nothing priced: unknown, not $0
    assert table["cost_logged_usd"].tolist() == [0.006, 1.0, 0.0001]
