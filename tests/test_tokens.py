"""Token conventions, contradictions, unmetered requests, cache-write pricing and provider error kinds.

Provider numbers come from the real recorded responses in ../shared/realdata/formats (read there, the
bodies taken out of the cassettes here); the expected canonical counts and costs are worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from chatpulse.config import ConfigError, SourceConfig, parse_source
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.metrics.errors import error_kind
from chatpulse.metrics.pricing import as_mapping, estimate_cost, prices_on
from chatpulse.pricefile import Price
from chatpulse.schema import Kind, is_error
from chatpulse.tokens import contradictions, to_canonical, unmetered

from fixtures import clean_requests, write_jsonl

DAY = dt.date(2026, 11, 20)
T = "2026-11-20T10:00:00Z"


def _price(**rates: float) -> Price:
    """A price entry in force from DAY (USD per million tokens)."""
    return Price(**{"from": DAY}, **rates)


def _clean(tmp_path: Path, rows: list[dict], **source: object) -> pd.DataFrame:
    """The rows landed as one JSONL file, read by one source and cleaned as a day's run does."""
    write_jsonl(tmp_path / "requests.jsonl", rows)
    config = parse_source({"kind": "requests", "pattern": "requests*", **source}, "sources[0]")
    frame = extract_day(tmp_path, [config], Kind.REQUESTS, DAY, "UTC").frame
    cleaned = clean_partition(frame, Kind.REQUESTS, DAY.isoformat())
    assert cleaned.quality["quarantined"] == 0, cleaned.quality["reasons"]
    return cleaned.clean.set_index("request_id")


def _cassette(realdata: Path, name: str) -> list[str]:
    """The response bodies of a VCR cassette, as text."""
    return [
        i["response"]["body"]["string"]
        for i in yaml.safe_load((realdata / "formats" / name).read_text())["interactions"]
    ]


def test_gemini_thoughts_join_the_completion_on_a_real_generate_content_response(
    realdata: Path, tmp_path: Path
) -> None:
    (body,) = _cassette(realdata, "gemini-generatecontent-otelcontrib.yaml")
    usage = json.loads(body)["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["thoughtsTokenCount"]) == (8, 433, 1477)
    columns = {
        "prompt_tokens": "promptTokenCount",
        "completion_tokens": "candidatesTokenCount",
        "reasoning_tokens": "thoughtsTokenCount",
        "total_tokens": "totalTokenCount",
    }
    row = {"request_id": "g", "timestamp": T, **usage}
    clean = _clean(tmp_path, [row], columns=columns, token_convention="gemini").loc["g"]
    assert (clean["prompt_tokens"], clean["completion_tokens"], clean["reasoning_tokens"]) == (8, 433 + 1477, 1477)
    assert clean["total_tokens"] == 1918 == 8 + 433 + 1477  # the logged total, which the convention explains
    flagged = _clean(tmp_path / "as-openai", [row], columns=columns).loc["g"]
    assert (flagged["completion_tokens"], flagged["total_tokens"]) == (433, 1918)  # kept, not "repaired"


def test_anthropic_cache_reads_and_writes_join_the_prompt_on_a_real_stream(realdata: Path, tmp_path: Path) -> None:
    rows = []
    for n, body in enumerate(_cassette(realdata, "anthropic-messages-stream-cache-openllmetry.yaml")):
        events = [json.loads(line[len("data:") :]) for line in body.splitlines() if line.startswith("data:")]
        start = next(e["message"]["usage"] for e in events if e["type"] == "message_start")
        final = [e["usage"]["output_tokens"] for e in events if e["type"] == "message_delta"][-1]
        rows.append({"request_id": f"a{n}", "timestamp": T, **start, "output_tokens": final})
    columns = {
        "prompt_tokens": "input_tokens",
        "cached_tokens": "cache_read_input_tokens",
        "cache_write_tokens": "cache_creation_input_tokens",
        "completion_tokens": "output_tokens",
    }
    clean = _clean(tmp_path, rows, columns=columns, token_convention="anthropic")
    # The README of the samples: 4 + 1165 + 0, then 4 + 0 + 1165; output 201 and 221 from the last message_delta.
    assert clean["prompt_tokens"].tolist() == [4 + 1165, 4 + 1165]
    assert clean["cache_write_tokens"].tolist() == [1165, 0] and clean["cached_tokens"].tolist() == [0, 1165]
    assert clean["total_tokens"].tolist() == [4 + 1165 + 201, 4 + 1165 + 221]
    claude = _price(input=3.0, output=15.0, cached_input=0.3, cache_write_input=3.75)
    rates = prices_on(as_mapping({"claude": (claude,)}), DAY)
    usd = estimate_cost(clean.assign(model="claude"), rates)
    assert usd.tolist() == pytest.approx(
        [(4 * 3.0 + 1165 * 3.75 + 201 * 15.0) / 1e6, (4 * 3.0 + 1165 * 0.3 + 221 * 15.0) / 1e6]
    )


def test_an_anthropic_total_it_never_sends_is_the_conventions_sum_not_a_repair() -> None:
    frame = clean_requests(
        {"prompt_tokens": 10, "cached_tokens": 4, "cache_write_tokens": 1, "completion_tokens": 3},
        {"prompt_tokens": 10, "completion_tokens": None},
    )
    to_canonical(frame, "anthropic")
    assert frame["total_tokens"].tolist() == [(10 + 4 + 1) + 3, pd.NA]  # no output count: nothing to sum


def test_conversions_leave_missing_counts_missing() -> None:
    frame = clean_requests(
        {"prompt_tokens": None, "cached_tokens": 5, "completion_tokens": 3, "total_tokens": None},
        {"prompt_tokens": 10, "cached_tokens": 5, "cache_write_tokens": 2, "completion_tokens": 3, "total_tokens": 13},
        {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 99},
    )
    anthropic = frame.copy()
    to_canonical(anthropic, "anthropic")
    assert anthropic["prompt_tokens"].tolist() == [pd.NA, 17, 10]
    assert anthropic["total_tokens"].tolist() == [pd.NA, 20, 99]  # 10 + 3 became 17 + 3; 99 explains nothing
    gemini = clean_requests(
        {"completion_tokens": None, "reasoning_tokens": 7},  # Gemini leaves out a count that is 0
        {"completion_tokens": 4, "reasoning_tokens": None},
        {"completion_tokens": None, "reasoning_tokens": None},
    )
    to_canonical(gemini, "gemini")
    assert gemini["completion_tokens"].tolist() == [7, 4, pd.NA]
    openai = frame.copy()
    to_canonical(openai, "openai")
    pd.testing.assert_frame_equal(openai, frame)


def test_each_contradiction_is_named_only_where_both_sides_are_known() -> None:
    frame = clean_requests(
        {"prompt_tokens": 5, "cached_tokens": 12, "completion_tokens": 1, "total_tokens": 6},
        {"prompt_tokens": 10, "cached_tokens": 6, "cache_write_tokens": 6, "completion_tokens": 1, "total_tokens": 11},
        {"prompt_tokens": 10, "completion_tokens": 50, "reasoning_tokens": 400, "total_tokens": 60},
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 16},
        {"prompt_tokens": None, "cached_tokens": 12, "completion_tokens": None, "reasoning_tokens": 3},
        {"prompt_tokens": 10, "cached_tokens": 4, "cache_write_tokens": 6, "completion_tokens": 5, "total_tokens": 15},
    )
    found = {reason: mask.tolist() for reason, mask in contradictions(frame).items()}
    assert found == {
        "cached_tokens: more than prompt_tokens": [True, False, False, False, False, False],
        "cache_write_tokens: cache reads and writes more than prompt_tokens": [False, True, False, False, False, False],
        "reasoning_tokens: more than completion_tokens": [False, False, True, False, False, False],
        "total_tokens: not prompt_tokens + completion_tokens": [False, False, False, True, False, False],
    }


def test_served_requests_without_usage_are_unmetered_and_unpriced() -> None:
    frame = clean_requests(
        {"model": "gpt-4o-mini", "status_code": 200, "prompt_tokens": 1000, "completion_tokens": 500},
        {"model": "gpt-4o-mini", "status_code": 200},
        {"model": "gpt-4o-mini", "status_code": 200, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        {"model": "gpt-4o-mini", "status_code": 500},  # failed: no usage is expected
        {"model": "gpt-4o-mini"},  # no status and no error: served
        {"model": "gpt-4o-mini", "status_code": 200, "finish_reason": "content_filter"},  # withheld: failed
    )
    assert unmetered(frame).tolist() == [False, True, True, False, True, False]
    usd = estimate_cost(frame, prices_on(as_mapping({"gpt-4o-mini": (_price(input=0.15, output=0.6),)}), DAY))
    assert usd[0] == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)
    assert np.isnan(usd[[1, 2, 4]]).all() and usd[3] == usd[5] == 0.0


def test_a_served_request_with_a_total_alone_is_unmetered_not_priced_at_zero() -> None:
    """Input and output are priced apart: a total without its split (a log keeping total_tokens only, or a usage
    field an SDK upgrade renamed) was estimated at $0 and counted as covered by the estimate."""
    frame = clean_requests(
        {"model": "gpt-4o-mini", "status_code": 200, "total_tokens": 1500},
        {
            "model": "gpt-4o-mini",
            "status_code": 200,
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
        },
        {"model": "gpt-4o-mini", "status_code": 429, "total_tokens": 1500},  # failed: not unmetered
    )
    assert unmetered(frame).tolist() == [True, False, False]
    usd = estimate_cost(frame, prices_on(as_mapping({"gpt-4o-mini": (_price(input=0.15, output=0.6),)}), DAY))
    assert np.isnan(usd[0]) and usd[1] == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)


def test_cache_writes_default_to_the_input_rate_and_contradicting_counts_have_no_estimate() -> None:
    frame = clean_requests(
        {"model": "m", "prompt_tokens": 100, "cached_tokens": 30, "cache_write_tokens": 20, "completion_tokens": 10},
        {"model": "m", "prompt_tokens": 5, "cached_tokens": 12000, "completion_tokens": 10},
    )
    rates = prices_on(as_mapping({"m": (_price(input=2.0, output=8.0, cached_input=0.5),)}), DAY)
    assert rates.resolve(frame).table.loc[0, "cache_write_input"] == 2.0
    usd = estimate_cost(frame, rates)
    assert usd[0] == pytest.approx((50 * 2.0 + 30 * 0.5 + 20 * 2.0 + 10 * 8.0) / 1e6)
    assert np.isnan(usd[1])  # never priced on cached tokens capped at the prompt


def test_token_convention_is_checked_and_named() -> None:
    assert SourceConfig(name="r", kind=Kind.REQUESTS, pattern="*").token_convention == "openai"
    with pytest.raises(
        ConfigError, match=r"^sources\[0\]\.token_convention: expected one of openai, anthropic, gemini"
    ):
        parse_source({"kind": "requests", "pattern": "*", "token_convention": "claude"}, "sources[0]")


def test_error_kinds_of_real_provider_error_bodies(realdata: Path) -> None:
    rows = []
    for body in _cassette(realdata, "azure-openai-content-filter-400-openllmetry.yaml")[:1]:
        error = json.loads(body)["error"]
        # The recorded status line says 200 (see the samples' README); the body's status is the real one.
        rows.append({"status_code": error["status"], "error_code": error["code"], "error_type": error["type"]})
        rows.append({"status_code": error["status"], "error_code": error["innererror"]["code"]})
    (finish,) = _cassette(realdata, "azure-openai-content-filter-finish-openllmetry.yaml")[:1]
    choice = json.loads(finish)["choices"][0]
    rows.append({"status_code": 200, "finish_reason": choice["finish_reason"]})
    frame = clean_requests(*rows)
    assert is_error(frame).all()
    assert error_kind(frame).tolist() == ["content_filter"] * 3


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (
            {"status_code": 400, "error_type": "invalid_request_error", "error_code": "context_length_exceeded"},
            "context_length",
        ),
        ({"status_code": 400, "error_type": "invalid_request_error"}, "invalid_request"),
        ({"status_code": 400, "error_type": "INVALID_ARGUMENT"}, "invalid_request"),
        ({"status_code": 400}, "invalid_request"),
        ({"status_code": 401, "error_code": "invalid_api_key"}, "authentication"),
        ({"status_code": 401}, "authentication"),
        ({"error_type": "AuthenticationError"}, "authentication"),
        ({"status_code": 403, "error_type": "permission_error"}, "authentication"),
        ({"status_code": 400, "error_type": "content_policy_violation"}, "content_filter"),
        ({"status_code": 200, "finish_reason": "SAFETY"}, "content_filter"),
        ({"status_code": 200, "finish_reason": "PROHIBITED_CONTENT"}, "content_filter"),
        ({"status_code": 200, "finish_reason": "refusal"}, "content_filter"),
        ({"error_type": "BLOCKLIST"}, "content_filter"),
        ({"status_code": 500, "finish_reason": "content_filter"}, "server"),  # the status decides first
        ({"status_code": 500, "error_type": "content_filter"}, "server"),
        ({"status_code": 529, "error_type": "overloaded_error"}, "server"),
        ({"status_code": 503, "error_type": "UNAVAILABLE"}, "server"),
        ({"error_type": "RESOURCE_EXHAUSTED"}, "rate_limit"),
        ({"error_type": "RateLimitError"}, "rate_limit"),
        ({"status_code": 504, "error_type": "DEADLINE_EXCEEDED"}, "timeout"),
        ({"status_code": 408}, "timeout"),
        ({"error_type": "ReadTimeout"}, "timeout"),
        ({"status_code": 404, "error_type": "not_found_error"}, "client"),
        # Words inside other words decide nothing.
        ({"error_type": "generate_content failed"}, "other"),
        ({"error_type": "moderated"}, "other"),
        ({"error_type": "accelerate"}, "other"),
    ],
)
def test_error_kind_reads_status_then_provider_words_then_finish_reason(row: dict, kind: str) -> None:
    frame = clean_requests(row)
    assert error_kind(frame).tolist() == [kind]
