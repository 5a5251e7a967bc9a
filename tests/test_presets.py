"""Presets and the reader features they rest on (issue 12, item 6): `preset:` merging, `first:` values,
`optional` and `drop`, time fallbacks, whole-JSON documents, Server-Sent Events streams, `records:`
paths, filters and OTLP/JSON decoding.

Expected values are written out by hand from the small inputs each test builds (json, datetime),
never read back through ChatPulse's reader. The real samples of each preset are in test_presets_formats.py.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from chatpulse.config import ConfigError, parse_source
from chatpulse.ingest.check import sample_file, sample_findings
from chatpulse.ingest.extract import ERRORS, RAW, read_mapped, read_source
from chatpulse.ingest.files import read_file
from chatpulse.ingest.records import decode_otlp, merge
from chatpulse.layout import Records
from chatpulse.presets import presets
from chatpulse.schema import REQUEST_COLUMNS

from fixtures import ROOT, write_jsonl


def _source(**raw: object) -> object:
    return parse_source({"kind": "requests", "pattern": "*", **raw}, "sources[0]")


def test_every_preset_is_a_valid_source_and_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(presets()) >= 9
    for name, body in presets().items():
        source = parse_source({"preset": name, "pattern": "*"}, "sources[0]")
        assert source.kind == "requests" and source.preset == name
        assert set(source.columns) == set(body["columns"]), name
        assert set(source.optional) <= set(source.columns) | {
            path for column in source.columns for path in source.inputs(column)
        }, name
        assert f"`{name}`" in readme, name


def test_own_keys_override_the_preset_columns_one_by_one_and_other_keys_whole() -> None:
    preset = presets()["openai_chat_completion"]
    source = parse_source(
        {
            "preset": "openai_chat_completion",
            "pattern": "*",
            "columns": {"user_id": "metadata.user", "reasoning_tokens": "usage.reasoning"},
            "timestamp": {"format": "iso"},
            "name": "mine",
        },
        "sources[0]",
    )
    assert source.name == "mine"
    assert source.column("user_id") == "metadata.user"
    assert source.column("reasoning_tokens") == "usage.reasoning"
    assert source.column("prompt_tokens") == preset["columns"]["prompt_tokens"]
    # A key other than columns replaces the preset's whole: no fallback is left from the preset's.
    assert source.timestamp.format == "iso" and source.timestamp.fallback == ()
    # A column the source maps itself is relied on again: it leaves the preset's optional list.
    assert "reasoning_tokens" not in source.optional and "cached_tokens" in source.optional


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"preset": "openai_chat"},
            "sources[0].preset: unknown preset 'openai_chat' (expected one of anthropic_messages",
        ),
        (
            {"preset": "openai_chat_completion", "columns": {"model": {"first": []}}},
            "sources[0].columns.model.first: expected a list of paths or values",
        ),
        (
            {"columns": {"status_code": {"first": ["code", {"map": {"from": "s", "values": {"ok": "fine"}}}]}}},
            "sources[0].columns.status_code.first.1.map.values.ok: expected a whole number for status_code, got 'fine'",
        ),
        (
            {"columns": {"model": {"first": ["a", {"sum": ["b", "c"]}]}}},
            "sources[0].columns.model.first.1.sum: a sum gives a number",
        ),
        ({"records": {"decode": "protobuf"}}, "sources[0].records.decode: expected one of otlp"),
        (
            {"timestamp": {"format": "iso", "fallback": ["soon"]}},
            "sources[0].timestamp.fallback[0]: expected one of iso",
        ),
        ({"layout": "table"}, "sources[0].layout: expected one of rows, sessions, document, sse"),
    ],
)
def test_a_wrong_preset_or_reader_key_is_named(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _source(**raw)
    assert str(error.value).startswith(message), str(error.value)


def test_first_takes_the_first_value_a_row_holds(tmp_path: Path) -> None:
    rows = [
        {"created": 1763632800, "usage": {"prompt_tokens": 5}, "response": {}},
        {"created": 1763632801, "request_time": "2026-11-20T10:00:05.250Z", "prompt": 7},
        {"created": 1763632802, "user": "", "name": "bo", "status": "failure"},
    ]
    write_jsonl(tmp_path / "a.jsonl", rows)
    source = _source(
        columns={
            "timestamp": {"first": ["request_time", "created"]},
            "prompt_tokens": {"first": ["usage.prompt_tokens", "prompt"]},
            "user_id": {"first": ["user", "name"]},  # blank text holds no value
            "status_code": {"first": ["code", {"map": {"from": "status", "values": {"failure": 500}, "missing": 200}}]},
        },
        timestamp={"format": "epoch_s", "fallback": "iso"},
    )
    frame = read_source(tmp_path / "a.jsonl", source, "a.jsonl")
    assert frame[ERRORS].isna().all()
    assert frame["timestamp"].tolist() == [
        pd.Timestamp(1763632800, unit="s", tz="UTC"),
        pd.Timestamp("2026-11-20T10:00:05.250Z"),
        pd.Timestamp(1763632802, unit="s", tz="UTC"),
    ]
    assert frame["prompt_tokens"].tolist() == [5, 7, pd.NA]
    assert frame["user_id"].tolist()[2] == "bo" and pd.isna(frame["user_id"].iloc[0])
    assert frame["status_code"].tolist() == [200, 200, 500]


def test_a_time_no_format_reads_keeps_the_first_formats_reason_and_file_time_dates_the_timeless(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "t.jsonl", [{"t": 1763632800}, {"t": "2026-11-20 11:00:00"}, {"t": "soon"}, {"id": "x"}])
    modified = datetime(2026, 11, 21, 9, 30, tzinfo=UTC).timestamp()
    os.utime(tmp_path / "t.jsonl", (modified, modified))
    source = _source(columns={"timestamp": "t"}, timestamp={"format": "epoch_s", "fallback": ["iso", "file_time"]})
    frame = read_source(tmp_path / "t.jsonl", source, "t.jsonl")
    assert frame["timestamp"].tolist()[:2] == [
        pd.Timestamp(1763632800, unit="s", tz="UTC"),
        pd.Timestamp("2026-11-20 11:00", tz="UTC"),
    ]
    assert pd.isna(frame["timestamp"].iloc[2])
    assert frame[ERRORS].iloc[2] == [
        "timestamp: not a number (timestamp.format is epoch_s), nor iso (timestamp.fallback)"
    ]
    assert frame["timestamp"].iloc[3] == pd.Timestamp(modified, unit="s", tz="UTC")


def test_a_document_file_is_one_json_value_or_json_lines(tmp_path: Path) -> None:
    records = {"path": "items", "where": {"kind": ["llm", None]}}
    document = {
        "trace": {"user": "u1"},
        "items": [{"id": "a", "kind": "llm"}, {"id": "b", "kind": "tool"}, {"id": "c"}],
    }
    (tmp_path / "one.json").write_text(json.dumps(document, indent=2))
    raw = read_file(tmp_path / "one.json", "document", records_at=Records(**records))
    # Each item gets the fields around it (trace); `where` keeps kind llm and items without a kind.
    assert raw.records["id"].tolist() == ["a", "c"]
    assert raw.records["trace"].tolist() == [{"user": "u1"}, {"user": "u1"}]
    assert raw.lines.tolist() == [1, 2]
    assert json.loads(raw.original_lines([2])[2]) == {"trace": {"user": "u1"}, "id": "c"}
    (tmp_path / "array.json").write_text(json.dumps([{"id": 1}, {"id": 2}]))
    assert read_file(tmp_path / "array.json", "document").records["id"].tolist() == [1, 2]
    write_jsonl(tmp_path / "lines.json", [document, "not json", {"items": []}, {"id": "plain"}])
    raw = read_file(tmp_path / "lines.json", "document", records_at=Records(**records))
    # JSON lines: a line's records keep its line; an empty list holds none; a line without the path is one.
    assert raw.records["id"].tolist() == ["a", "c", "plain"] and raw.lines.tolist() == [1, 1, 4]
    assert [line for line, reason in raw.malformed if reason.startswith("malformed JSON")] == [2]


def test_a_stream_is_merged_into_one_response_per_group(tmp_path: Path) -> None:
    def event(data: object, name: str | None = None) -> str:
        return (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\r\n\r\n"

    text = (
        ": a comment\n\n"
        + event({"id": "", "created": 0, "choices": [], "prompt_filter_results": []})  # Azure's first chunk
        + event(
            {"id": "r1", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}], "usage": None}
        )
        + event({"id": "r1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
        + event({"id": "r1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        + "data: [DONE]\n\n"
        + event({"id": "r1", "choices": [{"index": 1, "finish_reason": "length"}]})  # after [DONE]: another response
        + "data: {not json\n\n"
        + event({"id": "r2", "model": "m"}, "start")
        + event({"error": {"type": "overloaded_error"}})  # no id: belongs to r2
    )
    (tmp_path / "s.sse").write_text(text)
    raw = read_file(tmp_path / "s.sse", "sse", records_at=Records(group_by="id"))
    assert raw.records["id"].tolist() == ["r1", "r1", "r2"]
    first = raw.records.iloc[0]
    assert first["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}
    assert first["choices"] == [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]
    assert raw.records["error"].iloc[2] == {"type": "overloaded_error"}
    # Lines of the first event of each response (the comment and its blank line are lines 1-2).
    lines = text.replace("\r\n", "\n").split("\n")
    assert [lines[n - 1][:16] for n in raw.lines] == ['data: {"id": "",', 'data: {"id": "r1', 'data: {"id": "r2']
    assert raw.records["prompt_filter_results"].iloc[0] == [] and raw.records["created"].iloc[0] == 0
    assert [line for line, _ in raw.malformed] == [lines.index("data: {not json") + 1]


def test_chunks_logged_one_per_line_or_as_an_array_are_one_response_per_run_of_a_key(tmp_path: Path) -> None:
    chunks = [
        {"responseId": "a", "usageMetadata": {"trafficType": "ON_DEMAND"}},
        {"responseId": "a", "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 20}},
        {"error": {"code": 429}},  # no key: a response of its own
        {"responseId": "b", "usageMetadata": {"promptTokenCount": 3}},
    ]
    records = Records(group_by="responseId")
    (tmp_path / "array.json").write_text(json.dumps(chunks, indent=1))
    write_jsonl(tmp_path / "lines.jsonl", chunks)
    for name, layout, lines in (("array.json", "document", [1, 2, 3]), ("lines.jsonl", "sse", [1, 3, 4])):
        raw = read_file(tmp_path / name, layout, records_at=records)
        assert raw.records["usageMetadata"].tolist()[::2] == [
            {"trafficType": "ON_DEMAND", "promptTokenCount": 8, "totalTokenCount": 20},
            {"promptTokenCount": 3},
        ]
        assert raw.records["error"].tolist()[1] == {"code": 429} and raw.lines.tolist() == lines


def test_merge_takes_later_values_keeps_earlier_ones_for_null_and_matches_list_items_by_index() -> None:
    a = {"x": 1, "d": {"p": 1}, "c": [{"index": 0, "v": "a"}, {"index": 1, "v": "b"}], "l": [1, 2]}
    b = {"x": None, "d": {"q": 2}, "c": [{"index": 1, "v": "B", "f": "stop"}], "l": [3]}
    assert merge(a, b) == {
        "x": 1,
        "d": {"p": 1, "q": 2},
        "c": [{"index": 0, "v": "a"}, {"index": 1, "v": "B", "f": "stop"}],
        "l": [3, 2],
    }


def test_otlp_json_attributes_become_typed_values() -> None:
    span = {
        "attributes": [
            {"key": "n", "value": {"intValue": "52"}},
            {"key": "d", "value": {"doubleValue": 0.5}},
            {"key": "s", "value": {"stringValue": "chat"}},
            {"key": "b", "value": {"boolValue": True}},
            {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
            {"key": "k", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"intValue": 1}}]}}},
            {"key": "e", "value": {}},
        ],
        "events": [{"name": "ev", "attributes": [{"key": "m", "value": {"stringValue": "v"}}]}],
    }
    assert decode_otlp(span) == {
        "attributes": {"n": 52, "d": 0.5, "s": "chat", "b": True, "a": ["stop"], "k": {"x": 1}, "e": None},
        "events": [{"name": "ev", "attributes": {"m": "v"}}],
    }


def test_optional_and_first_paths_are_no_mapping_mistakes_and_drop_keeps_fields_out(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"ts": 1763632800, "b": 4, "note": "secret", "metadata": "private", "x": 1}])
    source = _source(
        columns={"timestamp": "ts", "prompt_tokens": {"first": ["a", "b"]}, "cached_tokens": "c.d", "model": "m"},
        timestamp="epoch_s",
        optional=["cached_tokens"],
        drop=["note", "metadata"],
    )
    findings = [str(f) for f in sample_findings(source, [sample_file(tmp_path / "a.jsonl", "a.jsonl", source, "UTC")])]
    assert findings == ["source 'requests': column 'm' (model) is not in its file a.jsonl"]
    frame = read_mapped(tmp_path / "a.jsonl", source, "a.jsonl").frame
    assert frame["prompt_tokens"].tolist() == [4]
    # A dropped field is neither read under its own name (metadata) nor kept in metadata.
    assert json.loads(frame["metadata"].iloc[0]) == {"x": 1}


def test_a_record_of_a_stream_that_cannot_be_read_is_quarantined_with_its_merged_record(tmp_path: Path) -> None:
    (tmp_path / "s.sse").write_text('data: {"id": "r", "created": "soon"}\n\ndata: {"id": "r", "usage": null}\n\n')
    source = _source(layout="sse", records={"group_by": "id"}, columns={"timestamp": "created"}, timestamp="epoch_s")
    frame = read_source(tmp_path / "s.sse", source, "s.sse")
    assert frame[ERRORS].tolist() == [["timestamp: not a number (timestamp.format is epoch_s)"]]
    assert json.loads(frame[RAW].iloc[0]) == {"id": "r", "created": "soon", "usage": None}


def test_the_readme_preset_examples_are_valid_sources() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Presets") : readme.index("### SQL sources")]
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    assert blocks
    for block in blocks:
        for raw in block.get("sources", [block]):
            source = parse_source(raw if "sql" in raw else {"pattern": "*", **raw}, "sources[0]")
            assert source.preset in presets() and set(source.columns) <= set(REQUEST_COLUMNS)
