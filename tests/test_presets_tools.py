"""The presets for what logging tools write (issue 12, item 6): LiteLLM's StandardLoggingPayload and its
LiteLLM_SpendLogs rows (read from PostgreSQL by a SQL source), a Langfuse trace export, and OpenTelemetry
GenAI spans as OTLP/JSON.

Real samples from ../shared/realdata/formats are read where they are (a LiteLLM payload, a Langfuse trace
export); no recorded OTLP/JSON GenAI file exists, so that test builds its input from the GenAI semantic
conventions' documented examples (open-telemetry/semantic-conventions, docs/gen-ai/non-normative/
examples-llm-calls.md and gen-ai-spans.md) in the OTLP/JSON encoding of the collector's file exporter (64-bit
integers as decimal text, enums as numbers). Expected values are computed here with json and datetime.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from chatpulse.config import SourceConfig, parse_source
from chatpulse.ingest.extract import ERRORS, read_source
from chatpulse.ingest.sqlsource import read_day
from chatpulse.metrics.errors import error_kind

from fixtures import SPEND_LOGS, write_jsonl

MS = timedelta(milliseconds=1)
NAME_ATTRIBUTES = ("gen_ai.operation.name", "gen_ai.request.model")  # a GenAI span's name: "chat gpt-4"


def _preset(name: str, **raw: object) -> SourceConfig:
    return parse_source({"preset": name, "pattern": "*", **raw}, "sources[0]")


def _sample(realdata: Path, name: str) -> Path:
    path = realdata / "formats" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _naive(text: str) -> datetime:
    """LiteLLM's datetime text (no offset), read as UTC like the preset's default timezone."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_litellm_standard_logging_payload(realdata: Path, tmp_path: Path) -> None:
    path = _sample(realdata, "litellm-standard-logging-payload.json")
    payload = json.loads(path.read_text())
    frame = read_source(path, _preset("litellm_standard_logging_payload"), path.name)  # a file per payload
    assert frame[ERRORS].isna().all() and len(frame) == 1
    row = frame.iloc[0]
    start, end = _naive(payload["startTime"]), _naive(payload["endTime"])
    assert row["request_id"] == payload["id"] and row["timestamp"] == pd.Timestamp(start)
    assert row["latency_ms"] == pytest.approx((end - start) / MS)
    assert payload["completionStartTime"] == payload["endTime"] and pd.isna(row["ttft_ms"])  # no stream: no TTFT
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        payload["prompt_tokens"],
        payload["completion_tokens"],
        payload["total_tokens"],
    )
    assert row["cost_usd"] == payload["response_cost"] and row["status_code"] == 200
    assert (row["model"], row["endpoint"], row["provider"]) == (
        payload["model"],
        payload["call_type"],
        payload["custom_llm_provider"],
    )
    assert row["finish_reason"] == payload["response"]["choices"][0]["finish_reason"]
    assert pd.isna(row["user_id"])  # end_user is "" and every user_api_key_* is null
    assert "messages" not in json.loads(row["metadata"])  # the payload's metadata only, never the messages
    # LiteLLM's own type writes the times as epoch seconds; a streamed call's first token comes before its end;
    # a failed call says its status and error class.
    epoch = {
        **payload,
        "id": "streamed",
        "startTime": start.timestamp(),
        "endTime": end.timestamp() + 2.0,
        "completionStartTime": start.timestamp() + 0.25,
        "end_user": "customer-7",
    }
    failed = {
        **payload,
        "id": "failed",
        "status": "failure",
        "error_information": {**payload["error_information"], "error_code": "429", "error_class": "RateLimitError"},
    }
    write_jsonl(tmp_path / "payloads.jsonl", [epoch, failed])
    more = read_source(tmp_path / "payloads.jsonl", _preset("litellm_standard_logging_payload"), "payloads.jsonl")
    assert more[ERRORS].isna().all()
    assert more["ttft_ms"].iloc[0] == pytest.approx(250.0) and more["latency_ms"].iloc[0] == pytest.approx(
        ((end - start) / MS) + 2000.0, abs=1e-3
    )
    assert more["user_id"].iloc[0] == "customer-7"
    assert more["status_code"].tolist() == [200, 429] and error_kind(more).tolist() == [None, "rate_limit"]


def _spend_row(payload: dict[str, Any], **changes: object) -> dict[str, Any]:
    """A LiteLLM_SpendLogs row as LiteLLM's proxy builds it from a StandardLoggingPayload (naive UTC times)."""
    row = {
        "request_id": payload["id"],
        "call_type": payload["call_type"],
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": payload["response_cost"],
        "total_tokens": payload["total_tokens"],
        "prompt_tokens": payload["prompt_tokens"],
        "completion_tokens": payload["completion_tokens"],
        "startTime": datetime.fromisoformat(payload["startTime"]),
        "endTime": datetime.fromisoformat(payload["endTime"]),
        "completionStartTime": datetime.fromisoformat(payload["completionStartTime"]),
        "model": payload["model"],
        "custom_llm_provider": payload["custom_llm_provider"],
        "user": "",
        "end_user": "",
        "metadata": json.dumps({k: v for k, v in payload["metadata"].items() if v is not None}),
        "status": payload["status"],
        "session_id": None,
    }
    return {**row, **changes}


def _to_ms(moment: datetime) -> datetime:
    """A time rounded to the millisecond, as a PostgreSQL timestamp(3) column stores it."""
    return moment + timedelta(microseconds=round(moment.microsecond / 1000) * 1000 - moment.microsecond)


@pytest.mark.postgres
def test_litellm_spend_logs_from_postgresql(realdata: Path, postgres_url: str) -> None:
    payload = json.loads(_sample(realdata, "litellm-standard-logging-payload.json").read_text())
    base = _spend_row(payload)
    rows = [
        base,
        _spend_row(
            payload,
            request_id="streamed",
            completionStartTime=base["startTime"] + timedelta(milliseconds=2),
            end_user="customer-7",
            session_id="s-1",
        ),
        _spend_row(
            payload,
            request_id="failed",
            status="failure",
            spend=0.0,
            metadata=json.dumps(
                {"error_information": {"error_code": "400", "error_class": "ContextWindowExceededError"}}
            ),
        ),
    ]
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SPEND_LOGS)
        names = list(rows[0])
        values = ", ".join(f"CAST(:{n} AS jsonb)" if n == "metadata" else f":{n}" for n in names)
        columns = ", ".join(f'"{n}"' for n in names)
        conn.execute(sa.text(f'INSERT INTO litellm."LiteLLM_SpendLogs" ({columns}) VALUES ({values})'), rows)
    engine.dispose()
    query = 'SELECT * FROM litellm."LiteLLM_SpendLogs" WHERE "startTime" >= :day_start AND "startTime" < :day_end'
    source = parse_source({"preset": "litellm_spend_logs", "sql": {"url": postgres_url, "query": query}}, "sources[0]")
    frame = read_day(source, date.fromisoformat(payload["startTime"][:10]), "UTC").frame.set_index("request_id")
    assert frame[ERRORS].isna().all() and sorted(frame.index) == sorted(r["request_id"] for r in rows)
    assert set(frame["source_file"]) == {"sql:requests"}
    for row in rows:
        got = frame.loc[row["request_id"]]
        # timestamp(3): PostgreSQL keeps the times rounded to milliseconds; expected values use what it keeps.
        stored = {key: _to_ms(row[key]) for key in ("startTime", "endTime", "completionStartTime")}
        assert got["timestamp"] == pd.Timestamp(stored["startTime"].replace(tzinfo=UTC))
        assert got["latency_ms"] == pytest.approx((stored["endTime"] - stored["startTime"]) / MS)
        if stored["completionStartTime"] == stored["endTime"]:
            assert pd.isna(got["ttft_ms"])
        else:
            assert got["ttft_ms"] == pytest.approx((stored["completionStartTime"] - stored["startTime"]) / MS)
        assert (got["prompt_tokens"], got["completion_tokens"], got["total_tokens"]) == (
            row["prompt_tokens"],
            row["completion_tokens"],
            row["total_tokens"],
        )
        assert got["cost_usd"] == pytest.approx(row["spend"]) and got["model"] == row["model"]
    assert frame.loc["streamed", "user_id"] == "customer-7" and frame.loc["streamed", "session_id"] == "s-1"
    ids = [r["request_id"] for r in rows]
    assert frame.loc[ids, "status_code"].tolist() == [200 if r["status"] == "success" else 400 for r in rows]
    assert error_kind(frame.loc[ids]).tolist() == [None, None, "context_length"]


def test_langfuse_trace_export(realdata: Path, tmp_path: Path) -> None:
    path = _sample(realdata, "langfuse-trace-export-gemini.json")
    export = json.loads(path.read_text())
    generations = [o for o in export["observations"] if o["type"] == "GENERATION"]
    frame = read_source(path, _preset("langfuse_trace_export"), path.name)
    assert frame[ERRORS].isna().all() and len(frame) == len(generations) == 1
    row, generation = frame.iloc[0], generations[0]
    usage = generation["usageDetails"]
    # OpenInference put the thoughts inside output here (and says so under completion_details.reasoning).
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        usage["input"],
        usage["output"],
        usage["total"],
    )
    assert usage["total"] == usage["input"] + usage["output"]
    assert row["reasoning_tokens"] == usage["completion_details.reasoning"] <= row["completion_tokens"]
    start, end = (datetime.fromisoformat(generation[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    assert row["latency_ms"] == pytest.approx((end - start) / MS) == pytest.approx(generation["latency"] * 1000)
    assert row["timestamp"] == pd.Timestamp(start) and pd.isna(row["ttft_ms"])  # completionStartTime is null
    assert row["cost_usd"] == pytest.approx(generation["costDetails"]["total"]) and row["model"] == generation["model"]
    assert "input" not in json.loads(row["metadata"]) and "metadata" not in json.loads(row["metadata"])
    # Langfuse's own split of an OpenAI call: cache reads and reasoning apart from input and output; a SPAN and
    # a failed GENERATION (level ERROR) of the same trace.
    split = {
        **generation,
        "id": "split",
        "usageDetails": {
            "input": 100,
            "input_cached_tokens": 900,
            "output": 20,
            "output_reasoning_tokens": 30,
            "total": 1050,
        },
    }
    failed = {**generation, "id": "failed", "level": "ERROR", "statusMessage": "429 rate limit"}
    span = {**generation, "id": "span", "type": "SPAN"}
    (tmp_path / "trace.json").write_text(json.dumps({**export, "observations": [split, failed, span]}))
    more = read_source(tmp_path / "trace.json", _preset("langfuse_trace_export"), "trace.json").set_index("request_id")
    assert sorted(more.index) == ["failed", "split"]
    assert more.loc[
        "split", ["prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens", "total_tokens"]
    ].tolist() == [
        1000,
        900,
        50,
        30,
        1050,
    ]
    assert error_kind(more.reset_index()).tolist() == [None, "other"]


def _any(value: object) -> dict[str, object]:
    """A value as OTLP/JSON's AnyValue (ints as decimal text, as the proto3 JSON mapping writes int64)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any(item) for item in value]}}
    return {"stringValue": value}


def _span(
    span_id: str, start: datetime, attributes: dict[str, object], seconds: float, status: int = 0
) -> dict[str, Any]:
    ns = int(start.timestamp()) * 10**9
    return {
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": span_id,
        "name": " ".join(str(attributes[key]) for key in NAME_ATTRIBUTES if key in attributes),
        "kind": 3,
        "startTimeUnixNano": str(ns),
        "endTimeUnixNano": str(ns + int(seconds * 1e9)),
        "attributes": [{"key": key, "value": _any(value)} for key, value in attributes.items()],
        "status": {"code": status} if status else {},
    }


def test_otel_genai_spans_from_the_conventions_examples(tmp_path: Path) -> None:
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    common = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4", "gen_ai.request.max_tokens": 200}
    # examples-llm-calls.md: "Simple chat completion", the two client spans of "Tool calls (functions)" (the
    # second written there without gen_ai.operation.name), the execute_tool span between them; an error as
    # gen-ai-spans.md describes one (error.type, status ERROR); and an HTTP span that is no GenAI call.
    requests = {
        "00f067aa0ba902b7": (
            {
                **common,
                "gen_ai.operation.name": "chat",
                "gen_ai.response.model": "gpt-4-0613",
                "gen_ai.usage.input_tokens": 52,
                "gen_ai.usage.output_tokens": 47,
                "gen_ai.response.finish_reasons": ["stop"],
            },
            1.25,
            0,
        ),
        "00f067aa0ba902b8": (
            {
                **common,
                "gen_ai.operation.name": "chat",
                "gen_ai.response.model": "gpt-4-0613",
                "gen_ai.usage.input_tokens": 47,
                "gen_ai.usage.output_tokens": 17,
                "gen_ai.response.finish_reasons": ["tool_calls"],
            },
            0.75,
            0,
        ),
        "00f067aa0ba902ba": (
            {
                **common,
                "gen_ai.response.model": "gpt-4-0613",
                "gen_ai.usage.input_tokens": 97,
                "gen_ai.usage.output_tokens": 52,
                "gen_ai.response.finish_reasons": ["stop"],
            },
            2.5,
            0,
        ),
        "00f067aa0ba902bb": (
            {
                **common,
                "gen_ai.operation.name": "chat",
                "error.type": "RateLimitError",
                "http.response.status_code": 429,
            },
            0.1,
            2,
        ),
    }
    others = {
        "00f067aa0ba902b9": (
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_VSPygqKTWdrhaFErNvMV18Yl",
            },
            0.05,
            0,
        ),
        "00f067aa0ba902bc": (
            {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"},
            1.2,
            0,
        ),
    }
    spans = [
        _span(sid, at + timedelta(seconds=n), *spec) for n, (sid, spec) in enumerate({**requests, **others}.items())
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "chat-app"}}]}
    line = {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": spans}],
            }
        ]
    }
    write_jsonl(tmp_path / "traces.jsonl", [line])
    frame = read_source(tmp_path / "traces.jsonl", _preset("otel_genai_spans"), "traces.jsonl").set_index("request_id")
    assert frame[ERRORS].isna().all() and sorted(frame.index) == sorted(requests)
    for sid, (attributes, seconds, _) in requests.items():
        got = frame.loc[sid]
        assert got["latency_ms"] == pytest.approx(seconds * 1000)
        assert got["model"] == attributes.get("gen_ai.response.model", attributes["gen_ai.request.model"])
        assert got["provider"] == "openai"
        if "gen_ai.usage.input_tokens" in attributes:
            assert (got["prompt_tokens"], got["completion_tokens"], got["total_tokens"]) == (
                attributes["gen_ai.usage.input_tokens"],
                attributes["gen_ai.usage.output_tokens"],
                attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"],
            )
            assert got["finish_reason"] == attributes["gen_ai.response.finish_reasons"][0]
    assert frame["timestamp"].min() == pd.Timestamp(at)
    assert frame["status_code"].tolist() == [200, 200, 200, 429]
    assert error_kind(frame.reset_index()).tolist() == [None, None, None, "rate_limit"]
    assert frame["prompt_tokens"].sum() == sum(a.get("gen_ai.usage.input_tokens", 0) for a, _, _ in requests.values())
