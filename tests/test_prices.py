"""Built-in prices: genai-prices' list prices pinned against the providers' published ones, names as logs
write them, tiers by prompt length, service tiers, the price files before the package, offline use, and
the model_prices table.

Every expected rate below is written here from the provider's own price page (named beside it), never
read back from the package: a genai-prices update that changes one fails here and is looked at.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.metrics import pricing
from chatpulse.metrics.costs import MODEL_PRICE_COLUMNS, model_prices
from chatpulse.metrics.pricing import BUILTIN_PRICES, estimate_cost, load_prices, prices_on
from chatpulse.pricefile import read_prices

DAY = dt.date(2026, 11, 20)
NOON = "12:00:00Z"

# (logged model, day): (input, cache read, cache write, output), USD per million tokens, from the
# provider's published list prices.
LIST_PRICES = {
    # openai.com/api/pricing: GPT-4o $2.50 input, $1.25 cached input, $10.00 output (no cache write charge).
    ("gpt-4o", DAY): (2.50, 1.25, 2.50, 10.00),
    # openai.com/api/pricing: GPT-4o mini $0.15, $0.075 cached, $0.60.
    ("gpt-4o-mini", DAY): (0.15, 0.075, 0.15, 0.60),
    # docs.anthropic.com/en/docs/about-claude/pricing: Claude Sonnet 4 $3 input, $0.30 cache hits,
    # $3.75 5-minute cache writes (1.25 x input), $15 output.
    ("claude-sonnet-4-20250514", DAY): (3.00, 0.30, 3.75, 15.00),
    # The same page: Claude Sonnet 3.5 at the same rates.
    ("claude-3-5-sonnet-20241022", DAY): (3.00, 0.30, 3.75, 15.00),
    # ai.google.dev/gemini-api/docs/pricing: Gemini 2.5 Flash $0.30 text input, $0.03 context caching,
    # $2.50 output (thinking included); Google bills cache storage per hour, not cache writes.
    ("gemini-2.5-flash", DAY): (0.30, 0.03, 0.30, 2.50),
    # api-docs.deepseek.com/quick_start/pricing (2025-02 to 2025-09): deepseek-chat (V3) $0.27 cache miss,
    # $0.07 cache hit, $1.10 output, standard hours (UTC 00:30-16:30).
    ("deepseek-chat", dt.date(2025, 6, 2)): (0.27, 0.07, 0.27, 1.10),
    # alibabacloud.com/help/en/model-studio/models, international (Singapore): qwen-max $1.6 / $6.4
    # (ChatPulse's own prices.yaml: the package lacks Alibaba's API).
    ("qwen-max", DAY): (1.60, 1.60, 1.60, 6.40),
}


def _frame(day: dt.date, *rows: dict) -> pd.DataFrame:
    """Served requests at noon UTC on day (or each row's own `at`), canonical token counts."""
    records = []
    for row in rows:
        at = row.pop("at", NOON)
        records.append({"timestamp": pd.Timestamp(f"{day}T{at}"), "status_code": 200, **row})
    frame = pd.DataFrame(records)
    for column in ("prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens"):
        frame[column] = frame.get(column, pd.Series(0, index=frame.index)).fillna(0).astype("int64")
    frame["total_tokens"] = frame["prompt_tokens"] + frame["completion_tokens"]
    return frame


def _rates_of(model: str, day: dt.date, **row: object) -> tuple[float, ...]:
    resolved = prices_on(load_prices(), day).resolve(_frame(day, {"model": model, **row}))
    assert resolved.codes[0] >= 0, f"{model} unpriced"
    return tuple(resolved.table.iloc[resolved.codes[0]][list(pricing.RATES)])


@pytest.mark.parametrize(("model", "day"), list(LIST_PRICES))
def test_built_in_prices_are_the_providers_list_prices(model: str, day: dt.date) -> None:
    assert _rates_of(model, day) == pytest.approx(LIST_PRICES[model, day])


@pytest.mark.parametrize(
    ("logged", "listed"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),  # a dated snapshot
        ("openai/gpt-4o", "gpt-4o"),  # LiteLLM's provider prefix
        ("GPT-4o", "gpt-4o"),
        ("anthropic/claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
        ("claude-sonnet-4", "claude-sonnet-4-20250514"),  # an alias without the date
        ("gemini/gemini-2.5-flash", "gemini-2.5-flash"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("dashscope/qwen-max", "qwen-max"),  # LiteLLM's prefix for Alibaba, on ChatPulse's own table
    ],
)
def test_aliases_snapshots_and_provider_prefixes_resolve(logged: str, listed: str) -> None:
    day = next(d for m, d in LIST_PRICES if m == listed)
    assert _rates_of(logged, day) == pytest.approx(LIST_PRICES[listed, day])


def test_a_bare_name_is_found_through_the_logged_provider_or_the_first_party_apis() -> None:
    # openai.com/api/pricing: text-embedding-3-small $0.02 per million tokens.
    assert _rates_of("text-embedding-3-small", DAY)[0] == 0.02
    assert _rates_of("text-embedding-3-small", DAY, provider="openai")[0] == 0.02


def test_a_model_matching_nothing_stays_unpriced_and_named() -> None:
    frame = _frame(DAY, {"model": "our-private-llm", "prompt_tokens": 100, "completion_tokens": 10})
    rates = prices_on(load_prices(), DAY)
    assert np.isnan(estimate_cost(frame, rates)).all()
    table = model_prices(frame, DAY, "UTC", rates)
    assert table["model"].tolist() == ["our-private-llm"] and table["requests"].tolist() == [1]
    assert table["input_usd_per_mtok"].isna().all() and table["price_source"].isna().all()


def test_a_served_request_naming_no_model_is_unpriced_only_when_it_has_usage_to_price() -> None:
    """One with no model and no usage was counted both unmetered and unpriced: "3 unmetered, 3 unpriced"."""
    frame = _frame(
        DAY,
        {"status_code": 200, "latency_ms": 2000},  # no model, no usage: unmetered, its cost unknown for that
        {"status_code": 200, "prompt_tokens": 5, "completion_tokens": 5},  # usage nothing can price
        {"model": "our-private-llm", "status_code": 200},  # named: the model is shown where a price is missing
    )
    resolved = prices_on(load_prices(), DAY).resolve(frame)
    assert pricing.unpriced(frame, resolved).tolist() == [False, True, True]
    assert np.isnan(estimate_cost(frame, prices_on(load_prices(), DAY))).all()


def test_tiered_prices_by_prompt_length_follow_the_package() -> None:
    # ai.google.dev/gemini-api/docs/pricing, Gemini 2.5 Pro: prompts up to 200k tokens $1.25 input, $0.125
    # cached, $10 output; longer prompts $2.50, $0.25, $15, for all of the request's tokens.
    short = {"model": "gemini-2.5-pro", "prompt_tokens": 200_000, "cached_tokens": 50_000, "completion_tokens": 1000}
    long = {**short, "prompt_tokens": 200_001}
    frame = _frame(DAY, short, long)
    usd = estimate_cost(frame, prices_on(load_prices(), DAY))
    assert usd[0] == pytest.approx((150_000 * 1.25 + 50_000 * 0.125 + 1000 * 10) / 1e6)
    assert usd[1] == pytest.approx((150_001 * 2.50 + 50_000 * 0.25 + 1000 * 15) / 1e6)


def test_the_estimate_agrees_with_the_packages_own_calculation() -> None:
    from genai_prices import Usage, calc_price

    rows = [
        {
            "model": "claude-sonnet-4-20250514",
            "prompt_tokens": 13005,
            "cached_tokens": 12000,
            "cache_write_tokens": 1000,
        },
        {"model": "gemini-2.5-pro", "prompt_tokens": 250_000, "cached_tokens": 10_000, "completion_tokens": 900},
        {"model": "gpt-4o-mini", "prompt_tokens": 4000, "cached_tokens": 1024, "completion_tokens": 321},
        {
            "model": "deepseek-chat",
            "prompt_tokens": 3000,
            "cached_tokens": 1000,
            "completion_tokens": 500,
            "at": "20:00:00Z",
        },
    ]
    frame = _frame(DAY, *[dict(row) for row in rows])
    usd = estimate_cost(frame, prices_on(load_prices(), DAY))
    for n, row in enumerate(frame.itertuples()):
        usage = Usage(
            input_tokens=row.prompt_tokens,
            cache_read_tokens=row.cached_tokens,
            cache_write_tokens=row.cache_write_tokens,
            output_tokens=row.completion_tokens,
        )
        expected = calc_price(usage, row.model, genai_request_timestamp=row.timestamp.to_pydatetime()).total_price
        assert usd[n] == pytest.approx(float(expected)), row.model


def test_time_of_day_prices_are_resolved_per_request() -> None:
    # DeepSeek's published off-peak discount (UTC 16:30-00:30): deepseek-chat at 50%, $0.135 / $0.55.
    day = dt.date(2025, 6, 2)
    frame = _frame(
        day, *({"model": "deepseek-chat", "prompt_tokens": 1000, "at": at} for at in ("12:00:00Z", "17:00:00Z"))
    )
    resolved = prices_on(load_prices(), day).resolve(frame)
    assert resolved.rate("input").tolist() == [0.27, 0.135]


@pytest.mark.parametrize(
    ("tier", "model", "rates"),
    [
        # openai.com/api/pricing (Priority processing): GPT-4o $4.25 input, $2.125 cached, $17 output.
        ("priority", "gpt-4o", (4.25, 2.125, 17.0)),
        # The same page (Flex processing): o3 $1.00, $0.25 cached, $4.00.
        ("flex", "o3", (1.00, 0.25, 4.00)),
        # The same page (Batch API, 50% off): GPT-4o $1.25 input, $5.00 output.
        ("batch", "gpt-4o", (1.25, None, 5.00)),
        # `default` is what OpenAI reports for standard (and downgraded priority) requests.
        ("default", "gpt-4o", (2.50, 1.25, 10.0)),
    ],
)
def test_openai_service_tiers_are_priced_where_the_log_says_which(tier: str, model: str, rates: tuple) -> None:
    got = _rates_of(model, DAY, service_tier=tier)
    assert got[0] == rates[0] and got[3] == rates[2]
    if rates[1] is not None:
        assert got[1] == rates[1]


def test_batch_without_a_package_rate_is_the_providers_documented_half_of_standard() -> None:
    # genai-prices 0.2.x lists batch rates from October 2026 only: an earlier batch request was billed at 50%
    # of the standard rates (OpenAI's Batch API guide), not at the standard rates themselves.
    day = dt.date(2025, 3, 17)
    frame = _frame(
        day,
        {"model": "o3-mini-2025-01-31", "prompt_tokens": 1_000_000, "completion_tokens": 1_000_000},
        {
            "model": "o3-mini-2025-01-31",
            "prompt_tokens": 1_000_000,
            "completion_tokens": 1_000_000,
            "service_tier": "batch",
        },
    )
    prices = prices_on(load_prices(), day)
    standard, batch = estimate_cost(frame, prices)
    assert standard == pytest.approx(1.10 + 4.40)  # openai.com/api/pricing, o3-mini: $1.10 in, $4.40 out
    assert batch == pytest.approx(standard / 2)
    table = prices.resolve(frame).table.set_index("service_tier", drop=False)
    assert table.loc["batch", "price_source"] == f"{pricing.package_version()}; batch at 50% of standard (OpenAI)"
    # Where the package has a batch rate (gpt-4o on DAY: $1.25 in), it is used as it stands.
    listed = prices_on(load_prices(), DAY).resolve(
        _frame(DAY, {"model": "gpt-4o", "prompt_tokens": 1, "service_tier": "batch"})
    )
    assert listed.table["price_source"].tolist() == [pricing.package_version()] and listed.rate("input").tolist() == [
        1.25
    ]


def test_a_price_file_wins_and_an_unstated_cache_write_rate_follows_the_provider(tmp_path: Path) -> None:
    path = tmp_path / "negotiated.yaml"
    path.write_text(
        "models:\n  claude-sonnet-4:\n    - {from: 2025-01-01, input: 2.40, cached_input: 0.24, output: 12}\n"
    )
    frame = _frame(DAY, {"model": "anthropic/claude-sonnet-4", "prompt_tokens": 2000, "cache_write_tokens": 1000})
    resolved = prices_on(load_prices(path), DAY).resolve(frame)
    row = resolved.table.iloc[0]
    # Anthropic's 5-minute cache write is 1.25 x the input rate: 1.25 x the negotiated $2.40.
    assert (row["input"], row["cached_input"], row["cache_write_input"]) == (2.40, 0.24, pytest.approx(3.00))
    assert row["price_source"].startswith(str(path)) and "genai-prices" in row["price_source"]


def test_chatpulse_prices_yaml_holds_only_models_the_package_lacks() -> None:
    for model in read_prices(BUILTIN_PRICES):
        assert pricing.PriceBook(()).package_model(model, None) is None, f"genai-prices now prices {model}: drop it"


def test_prices_are_read_offline_from_the_installed_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from genai_prices import data_snapshot

    def refuse(*args: object) -> None:
        raise AssertionError("pricing tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    # Another library's UpdatePrices would install fetched data as the process-wide snapshot: not ours.
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", data_snapshot.DataSnapshot([], from_auto_update=True))
    pricing._snapshot.cache_clear()
    try:
        assert _rates_of("gpt-4o", DAY) == pytest.approx(LIST_PRICES["gpt-4o", DAY])
    finally:
        pricing._snapshot.cache_clear()
    assert pricing.package_version().startswith("genai-prices 0.")


def test_model_prices_records_each_rate_set_and_its_source() -> None:
    frame = _frame(
        DAY,
        {"model": "gpt-4o", "prompt_tokens": 10},
        {"model": "gpt-4o", "prompt_tokens": 10},
        {"model": "gpt-4o", "prompt_tokens": 10, "service_tier": "priority"},
        {"model": "qwen-max", "prompt_tokens": 10},
    )
    table = model_prices(frame, DAY, "UTC", prices_on(load_prices(), DAY))
    assert list(table.columns) == list(MODEL_PRICE_COLUMNS)
    rows = {(r.model, r.service_tier): r for r in table.itertuples()}
    standard, priority, qwen = rows["gpt-4o", None], rows["gpt-4o", "priority"], rows["qwen-max", None]
    assert (standard.requests, priority.requests, qwen.requests) == (2, 1, 1)
    assert (standard.input_usd_per_mtok, priority.input_usd_per_mtok, qwen.input_usd_per_mtok) == (2.5, 4.25, 1.6)
    assert standard.price_source == pricing.package_version() and standard.price_provider == "openai"
    assert (qwen.price_source, qwen.price_from) == (pricing.BUILTIN_SOURCE, "2025-01-25")


def test_every_step_shares_one_book_per_price_file_version(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("models:\n  our-llm:\n    - {from: 2026-01-01, input: 1, output: 2}\n")
    frame = _frame(DAY, {"model": "our-llm", "prompt_tokens": 1_000_000})
    first = pricing.day_prices(path, DAY)
    assert pricing.day_prices(path, DAY).book is first.book  # assets/metrics.py and assets/spend.py alike
    assert estimate_cost(frame, first).tolist() == [1.0]
    path.write_text("models:\n  our-llm:\n    - {from: 2026-01-01, input: 3.5, output: 2}\n")  # edited: read again
    assert estimate_cost(frame, pricing.day_prices(path, DAY)).tolist() == [3.5]


def test_a_day_without_requests_prices_nothing() -> None:
    frame = _frame(DAY, {"model": "gpt-4o", "prompt_tokens": 1}).iloc[0:0]
    rates = prices_on(load_prices(), DAY)
    assert len(estimate_cost(frame, rates)) == 0
    assert model_prices(frame, DAY, "UTC", rates).empty
