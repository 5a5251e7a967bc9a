"""The raw-provider presets over real recorded API traffic (issue 12, item 6): OpenAI chat completions, streams and
Batch output, Anthropic Messages streams, Gemini generateContent and its stream, Azure OpenAI content filters.

The samples are VCR cassettes in ../shared/realdata/formats (read where they are; see its README): each test
takes the response bodies out with yaml and writes them to tmp as a logging tool would (JSON lines of bodies,
or the SSE text of a stream; a wrapper with the request time, latency and status where the tool measured them).
Expected requests, tokens (in the canonical convention: docs/metrics.md), latency and errors are computed here
from the bodies with json, never through ChatPulse's reader.
"""

from __future__ import annotations

import json
import os
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance

from chatpulse.behaviour.sessions import build_sessions
from chatpulse.config import SourceConfig, load_settings, parse_source
from chatpulse.ingest.extract import ERRORS, read_source
from chatpulse.metrics.costs import model_costs, model_prices
from chatpulse.metrics.daily import daily_metrics
from chatpulse.metrics.errors import error_kind
from chatpulse.metrics.pricing import load_prices, prices_on
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.schema import UNMETERED_COLUMN, Kind, is_error
from chatpulse.warehouse import Warehouse

from fixtures import clean_every_day, no_messages, write_jsonl


@pytest.fixture
def formats(realdata: Path) -> Path:
    folder = realdata / "formats"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


def _interactions(folder: Path, name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((folder / name).read_text())["interactions"]


def _body(interaction: dict[str, Any]) -> str:
    return interaction["response"]["body"]["string"]


def _header(interaction: dict[str, Any], name: str) -> str:
    headers = {key.lower(): value for key, value in interaction["response"]["headers"].items()}
    return headers[name.lower()][0]


def _events(body: str) -> list[dict[str, Any]]:
    """A stream's JSON events: the data of each blank-line-separated block, [DONE] left out."""
    events = []
    for block in re.split(r"\r?\n\r?\n", body):
        data = "\n".join(line[5:].lstrip() for line in re.split(r"\r?\n", block) if line.startswith("data:"))
        if data and data != "[DONE]":
            events.append(json.loads(data))
    return events


def _preset(name: str, **raw: object) -> SourceConfig:
    return parse_source({"preset": name, "pattern": "*", **raw}, "sources[0]")


def _by_id(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["request_id"]: row for _, row in frame.iterrows()}


def _clean(landing: Path, source: SourceConfig) -> pd.DataFrame:
    """Every clean request the landing folder gives, all days together; none may be quarantined."""
    days = clean_every_day(landing, [source], Kind.REQUESTS)
    assert all(len(cleaned.quarantine) == 0 for cleaned in days.values())
    return pd.concat([cleaned.clean for cleaned in days.values()], ignore_index=True)


def test_openai_chat_completion_bare_wrapped_and_pretty(formats: Path, tmp_path: Path) -> None:
    interaction = _interactions(formats, "openai-chat-completion-otelcontrib.yaml")[0]
    body = json.loads(_body(interaction))
    sent = parsedate_to_datetime(_header(interaction, "Date"))
    latency = float(_header(interaction, "openai-processing-ms"))
    wrapped = {"request_time": sent.isoformat(), "latency_ms": latency, "status_code": 200, "response": body}
    write_jsonl(tmp_path / "bare" / "responses.jsonl", [body])
    write_jsonl(tmp_path / "wrapped" / "responses.jsonl", [wrapped])
    (tmp_path / "pretty").mkdir()
    (tmp_path / "pretty" / "response.json").write_text(_body(interaction))  # a file per body, as recorded
    usage = body["usage"]
    for folder, time, latency_ms in (
        ("bare", pd.Timestamp(body["created"], unit="s", tz="UTC"), None),
        ("wrapped", pd.Timestamp(sent), latency),
        ("pretty", pd.Timestamp(body["created"], unit="s", tz="UTC"), None),
    ):
        row = _clean(tmp_path / folder, _preset("openai_chat_completion")).iloc[0]
        assert row["request_id"] == body["id"] and row["model"] == body["model"]
        assert row["timestamp"] == time, folder
        assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        )
        assert row["cached_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
        assert row["reasoning_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"]
        assert row["finish_reason"] == body["choices"][0]["finish_reason"] and row["status_code"] == 200
        assert row["provider"] == "openai" and not row[UNMETERED_COLUMN]
        assert (pd.isna(row["latency_ms"]) and latency_ms is None) or row["latency_ms"] == latency_ms


def test_openai_chat_stream_usage_in_the_last_chunk(formats: Path, tmp_path: Path) -> None:
    body = _body(_interactions(formats, "openai-chat-completion-stream-otelcontrib.yaml")[0])
    events = _events(body)
    usage = next(event["usage"] for event in events if event["choices"] == [])
    finish = [c["finish_reason"] for event in events for c in event["choices"] if c["finish_reason"]]
    assert all(event["usage"] is None for event in events if event["choices"])  # the format as the README says
    (tmp_path / "land").mkdir()
    # Two streams logged one after the other in one file (a proxy appending response bodies).
    (tmp_path / "land" / "streams.sse").write_text(body + body.replace(events[0]["id"], "chatcmpl-second"))
    clean = _by_id(_clean(tmp_path / "land", _preset("openai_chat_stream")))
    assert list(clean) == [events[0]["id"], "chatcmpl-second"]
    for row in clean.values():
        assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        )
        assert row["finish_reason"] == finish[-1] and row["model"] == events[0]["model"]
        assert row["timestamp"] == pd.Timestamp(events[0]["created"], unit="s", tz="UTC")
    # The same stream without stream_options.include_usage: no usage chunk at all, so it is unmetered.
    usage_chunk = next(block for block in body.split("\n\n") if '"choices":[]' in block)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "no-usage.sse").write_text(body.replace(usage_chunk + "\n\n", ""))
    row = _clean(tmp_path / "plain", _preset("openai_chat_stream")).iloc[0]
    assert pd.isna(row["prompt_tokens"]) and row["finish_reason"] == finish[-1] and row[UNMETERED_COLUMN]


def test_openai_batch_output_reads_every_request_and_its_errors(formats: Path, tmp_path: Path) -> None:
    lines = [
        json.loads(line) for line in (formats / "openai-batch-output-queryreformulation.jsonl").read_text().splitlines()
    ]
    # An older output (Oct 2024) has no audio or prediction counts; failed requests carry `error` or an error body.
    # It (another batch) reuses a custom_id: its request is another one all the same.
    older = json.loads(json.dumps(lines[0]))
    older["id"], older["response"]["body"]["id"] = "batch_req_older", "chatcmpl-older"
    usage = older["response"]["body"]["usage"]
    del usage["prompt_tokens_details"]["audio_tokens"]
    usage["completion_tokens_details"] = {"reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"]}
    expired = {
        "id": "batch_req_x",
        "custom_id": "expired",
        "response": None,
        "error": {"code": "batch_expired", "message": "m"},
    }
    refused = {
        "id": "batch_req_y",
        "custom_id": "refused",
        "response": {
            "status_code": 400,
            "request_id": "r",
            "body": {"error": {"type": "invalid_request_error", "code": "context_length_exceeded", "message": "m"}},
        },
        "error": None,
    }
    write_jsonl(tmp_path / "batch.jsonl", [*lines, older, expired, refused])
    frame = _by_id(read_source(tmp_path / "batch.jsonl", _preset("openai_batch_output"), "batch.jsonl"))
    assert len(frame) == len(lines) + 3
    for line in [*lines, older]:
        row, body = frame[line["response"]["body"]["id"]], line["response"]["body"]
        assert row["timestamp"] == pd.Timestamp(body["created"], unit="s", tz="UTC")  # per request
        assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == tuple(
            body["usage"][key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        )
        assert row["reasoning_tokens"] == body["usage"]["completion_tokens_details"]["reasoning_tokens"]
        assert row["cached_tokens"] == body["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert row["status_code"] == line["response"]["status_code"] and row["model"] == body["model"]
    assert sum(frame[line["response"]["body"]["id"]]["reasoning_tokens"] > 0 for line in lines) == len(lines)
    # The bodies say `service_tier: default`; every line of a Batch API output was billed at batch rates.
    assert {line["response"]["body"]["service_tier"] for line in lines} == {"default"}
    assert {frame[key]["service_tier"] for key in frame} == {"batch"}
    # A line without a completion keeps the batch line's own id.
    failed = pd.DataFrame([frame["batch_req_x"], frame["batch_req_y"]])
    assert failed["error_code"].tolist() == ["batch_expired", "context_length_exceeded"]
    assert failed["status_code"].tolist()[1] == 400 and is_error(failed).all()
    assert error_kind(failed).tolist() == ["other", "context_length"]
    # The output holds no time for a request that got no completion: such rows are quarantined, not dated.
    assert failed["timestamp"].isna().all()


def test_anthropic_messages_stream_with_prompt_caching(formats: Path, tmp_path: Path) -> None:
    interactions = _interactions(formats, "anthropic-messages-stream-cache-openllmetry.yaml")
    (tmp_path / "land").mkdir()
    stream = tmp_path / "land" / "messages.sse"
    stream.write_text("".join(_body(interaction) for interaction in interactions))
    logged = parsedate_to_datetime(_header(interactions[-1], "Date")).timestamp()
    os.utime(stream, (logged, logged))  # a Message holds no time: the file's modification time dates it
    expected = {}
    for interaction in interactions:
        events = _events(_body(interaction))
        start = next(e["message"] for e in events if e["type"] == "message_start")
        last = [e for e in events if e["type"] == "message_delta"][-1]
        cache_read, cache_write = (
            start["usage"]["cache_read_input_tokens"],
            start["usage"]["cache_creation_input_tokens"],
        )
        prompt = start["usage"]["input_tokens"] + cache_read + cache_write  # input excludes the cache
        expected[start["id"]] = {
            "model": start["model"],
            "prompt_tokens": prompt,
            "completion_tokens": last["usage"]["output_tokens"],  # cumulative; message_start's is 1
            "total_tokens": prompt + last["usage"]["output_tokens"],
            "cached_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "finish_reason": last["delta"]["stop_reason"],
            "provider": "anthropic",
            "timestamp": pd.Timestamp(logged, unit="s", tz="UTC"),
        }
    assert {
        e["cache_read_input_tokens"] > 0 for e in (_events(_body(i))[0]["message"]["usage"] for i in interactions)
    } == {True, False}
    clean = _by_id(_clean(tmp_path / "land", _preset("anthropic_messages")))
    assert {rid: {key: row[key] for key in expected[rid]} for rid, row in clean.items()} == expected
    assert clean[next(iter(expected))]["status_code"] == 200
    # Dated by the file and so counted: the data quality says how many times came from a file's modification time.
    (cleaned,) = clean_every_day(tmp_path / "land", [_preset("anthropic_messages")], Kind.REQUESTS).values()
    repairs = json.loads(cleaned.quality["repairs"])
    assert repairs["timestamp: its file's modification time"] == len(interactions)
    # Anthropic sends no total: the convention defines it (prompt + completion, checked above), no repair.
    assert "total_tokens: recomputed" not in repairs


def test_anthropic_message_objects_wrapped_and_error_bodies(tmp_path: Path) -> None:
    # The non-streamed shape of the Messages API (as its reference documents it), logged with a wrapper.
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "refusal",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
            "output_tokens": 7,
        },
    }
    overloaded = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1",
    }
    lines = [
        {"request_time": "2026-11-20T10:00:00Z", "latency_ms": 812.5, "response": message},
        {"request_time": "2026-11-20T10:01:00Z", "latency_ms": 20.0, "response": overloaded},
    ]
    write_jsonl(tmp_path / "anthropic.jsonl", lines)
    frame = read_source(tmp_path / "anthropic.jsonl", _preset("anthropic_messages"), "anthropic.jsonl")
    assert frame[ERRORS].isna().all()
    served = frame.iloc[0]
    assert (served["prompt_tokens"], served["cached_tokens"], served["cache_write_tokens"]) == (10 + 100 + 5, 100, 5)
    assert served["latency_ms"] == 812.5 and served["timestamp"] == pd.Timestamp("2026-11-20T10:00:00Z")
    assert frame["status_code"].tolist() == [200, 529]  # the status Anthropic documents for overloaded_error
    assert error_kind(frame).tolist() == ["content_filter", "server"]  # a refusal is withheld: a content filter


def test_gemini_generate_content_and_its_stream(formats: Path, tmp_path: Path) -> None:
    one = json.loads(_body(_interactions(formats, "gemini-generatecontent-otelcontrib.yaml")[0]))
    stream = _body(_interactions(formats, "gemini-streamgeneratecontent-otelcontrib.yaml")[0])
    chunks = _events(stream)
    assert all("totalTokenCount" not in chunk["usageMetadata"] for chunk in chunks[:-1])
    write_jsonl(tmp_path / "land" / "responses.jsonl", [one])
    (tmp_path / "land" / "stream.sse").write_text(stream)
    clean = _by_id(_clean(tmp_path / "land", _preset("gemini_generate_content")))
    assert len(clean) == 2
    for response, usage in ((one, one["usageMetadata"]), (chunks[-1], chunks[-1]["usageMetadata"])):
        row = clean[response["responseId"]]
        # candidatesTokenCount excludes the thoughts; the canonical completion holds them.
        completion = usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
        assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (
            usage["promptTokenCount"],
            completion,
            usage["thoughtsTokenCount"],
        )
        assert row["total_tokens"] == usage["totalTokenCount"] == usage["promptTokenCount"] + completion
        assert row["timestamp"] == pd.Timestamp(response["createTime"])
        assert row["model"] == response["modelVersion"] and row["finish_reason"] == "STOP"
        assert row["provider"] == "gemini" and row["status_code"] == 200


def test_azure_content_filters_are_content_filter_errors(formats: Path, tmp_path: Path) -> None:
    for name, filtered in (
        ("azure-openai-content-filter-400-openllmetry.yaml", "error"),
        ("azure-openai-content-filter-finish-openllmetry.yaml", "finish"),
    ):
        bodies = [json.loads(_body(interaction)) for interaction in _interactions(formats, name)]
        write_jsonl(tmp_path / f"{filtered}.jsonl", bodies)
        frame = read_source(tmp_path / f"{filtered}.jsonl", _preset("openai_chat_completion"), f"{filtered}.jsonl")
        blocked = [
            "error" in body
            and body["error"]["code"] == "content_filter"
            or any(choice["finish_reason"] == "content_filter" for choice in body.get("choices", []))
            for body in bodies
        ]
        assert blocked[0] and not any(blocked[1:])
        assert error_kind(frame).tolist() == [("content_filter" if b else None) for b in blocked], name
        assert frame[ERRORS].isna().all()  # the error body holds no time: its file's modification time dates it
    # The blocked completion is still billed: its usage is read.
    finish = json.loads(_body(_interactions(formats, "azure-openai-content-filter-finish-openllmetry.yaml")[0]))
    row = read_source(tmp_path / "finish.jsonl", _preset("openai_chat_completion"), "f").iloc[0]
    assert "message" not in finish["choices"][0]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        finish["usage"]["prompt_tokens"],
        finish["usage"]["completion_tokens"],
    )
    assert row["provider"] == "azure_openai"


def test_an_azure_prompt_block_in_a_wrapper_is_azure_a_content_filter_and_no_cost_gap(
    formats: Path, tmp_path: Path
) -> None:
    """A proxy's wrapper lines around Azure's bodies: the prompt block (an error body, no model, no usage)
    is Azure's by its innererror, typed by its code, and costs $0 instead of counting as unpriced."""
    interactions = _interactions(formats, "azure-openai-content-filter-400-openllmetry.yaml")
    bodies = [json.loads(_body(interaction)) for interaction in interactions]
    # One day: the served calls' own times; the block (recorded in 2024) a minute before the first.
    sent = [parsedate_to_datetime(_header(interaction, "Date")) for interaction in interactions]
    sent[0] = sent[1] - pd.Timedelta(minutes=1)
    lines = [
        {
            "request_time": time.isoformat(),
            "latency_ms": 100 + n,
            # The recorded status line says 200 (see the samples' README); a proxy logs the real one.
            "status_code": body["error"]["status"] if "error" in body else 200,
            "user_id": f"u{n}",
            "response": body,
        }
        for n, (time, body) in enumerate(zip(sent, bodies, strict=True))
    ]
    write_jsonl(tmp_path / "land" / "azure.jsonl", lines)
    frame = _clean(tmp_path / "land", _preset("openai_chat_completion"))
    (error,) = [body["error"] for body in bodies if "error" in body]
    assert error["type"] is None and "innererror" in error
    (block,) = [row for _, row in frame.iterrows() if row["status_code"] >= 400]
    assert (block["error_type"], block["error_code"]) == (error["code"], error["code"]) == ("content_filter",) * 2
    assert pd.isna(block["model"]) and block["status_code"] == error["status"]
    assert frame["provider"].tolist() == ["azure_openai"] * len(bodies)
    assert error_kind(frame[frame["status_code"] >= 400]).tolist() == ["content_filter"]

    day = sent[1].date()
    rates = prices_on(load_prices(), day)
    served = [body for body in bodies if "usage" in body]
    assert len(served) == len(bodies) - 1 and all(body.get("model") for body in served)
    costs = model_costs(frame, day, "UTC", rates)
    assert costs["unpriced_requests"].sum() == 0
    (unnamed,) = costs[costs["model"].isna()].itertuples()
    assert (unnamed.requests, unnamed.estimated_requests, unnamed.cost_estimate_usd) == (1, 1, 0.0)
    prices = model_prices(frame, day, "UTC", rates)
    assert prices["model"].notna().all() and prices["requests"].sum() == len(served)
    daily = daily_metrics(frame, build_sessions(frame, no_messages()), day, "UTC", rates).iloc[0]
    assert (daily["unpriced_requests"], daily["unmetered_requests"]) == (0, 0)
    assert daily["estimated_requests"] == daily["requests"] == len(bodies)


@pytest.mark.pipeline
def test_a_day_of_openai_batch_output_through_the_daily_job(formats: Path, tmp_path: Path) -> None:
    sample = formats / "openai-batch-output-queryreformulation.jsonl"
    lines = [json.loads(line) for line in sample.read_text().splitlines()]
    (tmp_path / "land").mkdir()
    (tmp_path / "land" / "batch_output.jsonl").write_bytes(sample.read_bytes())
    config = tmp_path / "chatpulse.yaml"
    sources = [{"name": "batch", "preset": "openai_batch_output", "pattern": "batch_output*.jsonl"}]
    config.write_text(
        yaml.safe_dump({"data_home": "home", "landing_dir": "land", "start_date": "2025-03-01", "sources": sources})
    )
    days = {pd.Timestamp(line["response"]["body"]["created"], unit="s", tz="UTC").date().isoformat() for line in lines}
    assert len(days) == 1
    (day,) = days
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(partition_key=day, instance=DagsterInstance.ephemeral())
    assert result.success
    (check,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "mapped_columns_present" and c.asset_key.path[-1] == "raw_requests"
    ]
    assert check.passed  # the preset's optional columns (no latency in a batch file) are no mapping mistake
    store = Warehouse(load_settings(config, env={}).database_url)
    requests = store.read("requests", day)
    assert sorted(requests["request_id"]) == sorted(line["response"]["body"]["id"] for line in lines)
    usages = [line["response"]["body"]["usage"] for line in lines]
    costs = store.read("model_costs", day)
    assert int(costs["prompt_tokens"].sum()) == sum(u["prompt_tokens"] for u in usages)
    assert int(costs["completion_tokens"].sum()) == sum(u["completion_tokens"] for u in usages)
    assert int(costs["reasoning_tokens"].sum()) == sum(
        u["completion_tokens_details"]["reasoning_tokens"] for u in usages
    )
    quality = store.read("data_quality", day)
    assert quality[quality["kind"] == "requests"][["rows_in", "clean", "quarantined"]].values.tolist() == [
        [len(lines), len(lines), 0]
    ]
