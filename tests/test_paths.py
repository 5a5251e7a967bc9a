"""Source columns as paths into nested JSON (and JSON text), and values derived in the configuration.

Expected values are computed from the files with the json and csv modules and datetime, never through
ChatPulse's reader. Real samples (../shared/realdata/formats, read where they are): an OpenAI Batch API
output file (alexdong/query-reformulation, MIT) and a LiteLLM StandardLoggingPayload (BerriAI/litellm, MIT).
"""

import csv
import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from readpaths import both_read_paths

from chatpulse.config import ConfigError, SourceConfig, load_settings, parse_source
from chatpulse.ingest.check import sample_file, sample_findings
from chatpulse.ingest.check_report import check_day
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import ERRORS, extract_day, read_mapped, read_source
from chatpulse.ingest.privacy import user_keys
from chatpulse.mapping import split_path
from chatpulse.schema import Kind

from fixtures import ROOT, write_jsonl

DAY = date(2026, 11, 20)
OPENAI_COLUMNS = {
    "request_id": "id",
    "timestamp": "created",
    "prompt_tokens": "usage.prompt_tokens",
    "completion_tokens": "usage.completion_tokens",
    "total_tokens": "usage.total_tokens",
    "cached_tokens": "usage.prompt_tokens_details.cached_tokens",
    "reasoning_tokens": "usage.completion_tokens_details.reasoning_tokens",
}


def _source(columns: dict, **raw: object) -> SourceConfig:
    return parse_source({"kind": "requests", "pattern": "*", "columns": columns, **raw}, "sources[0]")


def _response(n: int, prompt: int, completion: int, cached: int, reasoning: int, finish: str = "stop") -> dict:
    """A chat.completion object as OpenAI returns it (created on DAY, UTC)."""
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(datetime(2026, 11, 20, 10, n, tzinfo=ZoneInfo("UTC")).timestamp()),
        "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("model", ("model",)),
        ("usage.prompt_tokens_details.cached_tokens", ("usage", "prompt_tokens_details", "cached_tokens")),
        ("choices.0.finish_reason", ("choices", "0", "finish_reason")),
        ('usageDetails."completion_details.reasoning"', ("usageDetails", "completion_details.reasoning")),
        ('"a.b"', ("a.b",)),
    ],
)
def test_a_path_is_split_into_keys(text: str, keys: tuple[str, ...]) -> None:
    assert split_path(text) == keys


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"prompt_tokens": "usage..prompt_tokens"}, "sources[0].columns.prompt_tokens: not a path: a key is empty"),
        ({"prompt_tokens": 'usage."x'}, "sources[0].columns.prompt_tokens: not a path: a quoted key is not closed"),
        (
            {"latency_ms": {"duration": {"start": "startTime"}}},
            "sources[0].columns.latency_ms.duration.end: required",
        ),
        (
            {"model": {"duration": {"start": "a", "end": "b"}}},
            "sources[0].columns.model.duration: a duration gives milliseconds: only for latency_ms, ttft_ms",
        ),
        (
            {"status_code": {"map": {"from": "finish", "values": {"content_filter": "bad"}}}},
            "sources[0].columns.status_code.map.values.content_filter: expected a whole number for status_code, "
            "got 'bad'",
        ),
        ({"status_code": {"map": {"values": {}}}}, "sources[0].columns.status_code.map.from: required"),
        ({"timestamp": {"sum": ["a", "b"]}}, "sources[0].columns.timestamp.sum: a sum gives a number"),
        (
            {"prompt_tokens": {"sum": ["a"], "map": {"from": "a"}}},
            "sources[0].columns.prompt_tokens: expected exactly one of duration, sum, map, first, got sum, map",
        ),
        ({"prompt_tokens": {"total": ["a"]}}, "sources[0].columns.prompt_tokens.total: unknown key"),
    ],
)
def test_a_wrong_column_is_named_by_its_key(columns: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _source(columns)
    assert str(error.value).startswith(message)


def test_nested_paths_read_alike_by_arrow_and_line_by_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    responses = [_response(1, 20000, 1000, 16000, 0), _response(2, 2008, 266, 0, 261, "content_filter")]
    responses.append({"id": "chatcmpl-3", "object": "chat.completion", "created": responses[0]["created"]})  # no usage
    columns = {
        **OPENAI_COLUMNS,
        "error_type": "choices.0.finish_reason",
        "endpoint": "choices.1.finish_reason",  # a list item past the end reaches nothing
    }
    frame = both_read_paths(
        write_jsonl(tmp_path / "r.jsonl", responses), _source(columns, timestamp="epoch_s"), monkeypatch
    )
    for canonical, path in OPENAI_COLUMNS.items():
        if canonical in ("request_id", "timestamp"):
            continue
        expected = []
        for response in responses:
            value: object = response
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            expected.append(value)
        assert frame[canonical].astype(object).where(frame[canonical].notna(), None).tolist() == expected, canonical
    assert frame["error_type"].tolist()[:2] == [r["choices"][0]["finish_reason"] for r in responses[:2]]
    assert frame["endpoint"].isna().all()
    assert frame[ERRORS].isna().all()
    # The keys the paths read are not copied into metadata; the others are, as before.
    assert [json.loads(m) for m in frame["metadata"]] == [{"object": "chat.completion"}] * len(responses)


def test_a_path_goes_into_json_text_and_bad_text_quarantines_its_row(tmp_path: Path) -> None:
    usage = [{"prompt_tokens": 10, "completion_tokens": 5}, {"prompt_tokens": 7, "completion_tokens": 1}]
    rows = [
        ["2026-11-20T10:00:00Z", json.dumps(usage[0])],
        ["2026-11-20T10:01:00Z", "{not json"],
        ["2026-11-20T10:02:00Z", json.dumps(usage[1])],
        ["2026-11-20T10:03:00Z", ""],  # blank: no usage, not a fault
    ]
    with (tmp_path / "requests.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["ts", "usage"], *rows])
    source = _source(
        {"timestamp": "ts", "prompt_tokens": "usage.prompt_tokens", "completion_tokens": "usage.completion_tokens"}
    )
    frame = extract_day(tmp_path, [source], Kind.REQUESTS, DAY, "UTC").frame
    assert frame[ERRORS].tolist() == [
        None,
        ["prompt_tokens: usage: not valid JSON", "completion_tokens: usage: not valid JSON"],
        None,
        None,
    ]
    cleaned = clean_partition(frame, Kind.REQUESTS, DAY.isoformat())
    quality = cleaned.quality
    assert (quality["clean"], quality["quarantined"], quality["duplicates"]) == (3, 1, 0)
    assert quality["clean"] + quality["quarantined"] + quality["duplicates"] == len(rows)  # each row in one place
    assert cleaned.quarantine["source_line"].tolist() == [3]  # the header is line 1
    clean = cleaned.clean.sort_values("timestamp")
    assert clean["prompt_tokens"].astype(object).where(clean["prompt_tokens"].notna(), None).tolist() == [
        usage[0]["prompt_tokens"],
        usage[1]["prompt_tokens"],
        None,
    ]


def test_a_path_goes_into_a_json_string_of_a_json_line(tmp_path: Path) -> None:
    """LiteLLM's spend logs keep `metadata` as JSON text."""
    metadata = [{"user_api_key_user_id": "u-1", "spend_logs_metadata": None}, {"user_api_key_user_id": None}]
    records = [{"t": f"2026-11-20T10:0{n}:00Z", "metadata": json.dumps(m)} for n, m in enumerate(metadata)]
    records.append({"t": "2026-11-20T10:09:00Z", "metadata": "user=u-2"})
    source = _source({"timestamp": "t", "user_id": "metadata.user_api_key_user_id"})
    frame = read_source(write_jsonl(tmp_path / "r.jsonl", records), source, "r.jsonl")
    users = frame["user_id"].astype(object).where(frame["user_id"].notna(), None).tolist()
    assert users == [m["user_api_key_user_id"] for m in metadata] + [None]
    assert frame[ERRORS].tolist() == [None, None, ["user_id: metadata: not valid JSON"]]


def test_a_flat_key_spelled_as_the_path_wins_and_a_quoted_key_holds_a_dot(tmp_path: Path) -> None:
    records = [
        {"t": "2026-11-20T10:00:00Z", "usage.prompt_tokens": 3, "usage": {"prompt_tokens": 99}},
        {"t": "2026-11-20T10:01:00Z", "usageDetails": {"completion_details.reasoning": 1104, "output": 2055}},
    ]
    source = _source(
        {
            "timestamp": "t",
            "prompt_tokens": "usage.prompt_tokens",
            "reasoning_tokens": 'usageDetails."completion_details.reasoning"',
            "completion_tokens": "usageDetails.output",
        }
    )
    frame = read_source(write_jsonl(tmp_path / "r.jsonl", records), source, "r.jsonl")
    assert frame["prompt_tokens"].iloc[0] == records[0]["usage.prompt_tokens"]
    assert frame["reasoning_tokens"].iloc[1] == records[1]["usageDetails"]["completion_details.reasoning"]
    assert frame["completion_tokens"].iloc[1] == records[1]["usageDetails"]["output"]


def test_a_path_in_no_row_is_reported_by_the_check_and_the_run(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "responses.jsonl", [_response(1, 10, 5, 0, 0), _response(2, 20, 6, 0, 1)])
    source = _source(
        {**OPENAI_COLUMNS, "cached_tokens": "usage.prompt_token_details.cached_tokens"}, timestamp="epoch_s"
    )
    mapped = read_mapped(tmp_path / "responses.jsonl", source, "responses.jsonl")
    assert "usage.prompt_token_details.cached_tokens" in mapped.unresolved
    assert "usage.prompt_tokens" not in mapped.unresolved
    sample = sample_file(tmp_path / "responses.jsonl", "responses.jsonl", source, "UTC")
    assert [str(f) for f in sample_findings(source, [sample])] == [
        "source 'requests': column 'usage.prompt_token_details.cached_tokens' (cached_tokens)"
        " is not in its file responses.jsonl"
    ]
    extract = extract_day(tmp_path, [source], Kind.REQUESTS, DAY, "UTC")
    day = check_day(tmp_path, [source], Kind.REQUESTS, extract.frame, "UTC", unresolved=extract.unresolved)
    assert day.missing == (
        {
            "source": "requests",
            "column": "cached_tokens",
            "source_column": "usage.prompt_token_details.cached_tokens",
            "files": ["responses.jsonl"],
        },
    )


def test_a_key_past_the_sample_counts_as_found_from_the_whole_file(tmp_path: Path) -> None:
    """The run's check takes the whole file's answer (extract's), not the first rows' alone: a day's
    values cannot tell which term of a sum a key past the sample fed."""
    records = [{"t": f"2026-11-20T10:0{n}:00Z", "usage": {"input": 10}} for n in range(4)]
    records[3]["usage"]["cache_write"] = 5
    write_jsonl(tmp_path / "requests.jsonl", records)
    source = _source({"timestamp": "t", "prompt_tokens": {"sum": ["usage.input", "usage.cache_write"]}})
    extract = extract_day(tmp_path, [source], Kind.REQUESTS, DAY, "UTC")
    assert extract.frame["prompt_tokens"].tolist() == [sum(r["usage"].values()) for r in records]
    sampled = check_day(tmp_path, [source], Kind.REQUESTS, extract.frame, "UTC", rows=2)
    assert [entry["source_column"] for entry in sampled.missing] == ["usage.cache_write"]
    whole = check_day(tmp_path, [source], Kind.REQUESTS, extract.frame, "UTC", rows=2, unresolved=extract.unresolved)
    assert whole.missing == () and whole.findings == ()


def test_durations_sums_and_maps(tmp_path: Path) -> None:
    records = [
        {
            "start": 1_763_632_800_000,
            "first": 1_763_632_800_250,
            "end": 1_763_632_801_500,
            "input": 4,
            "cache_read": 1165,
            "cache_write": 0,
            "stop": "end_turn",
        },
        {"start": 1_763_632_900_000, "end": 1_763_632_900_040, "input": 9, "stop": "refusal"},
        {"start": 1_763_633_000_000, "first": "soon", "end": 1_763_633_000_100, "input": None, "stop": None},
    ]
    source = _source(
        {
            "timestamp": "start",
            "latency_ms": {"duration": {"start": "start", "end": "end"}},
            "ttft_ms": {"duration": {"start": "start", "end": "first"}},
            "prompt_tokens": {"sum": ["input", "cache_read", "cache_write"]},
            "status_code": {"map": {"from": "stop", "values": {"refusal": 400}, "default": 200, "missing": 200}},
            "error_type": {"map": {"from": "stop", "values": {"refusal": "content_filter"}}},
        },
        timestamp="epoch_ms",
        latency_unit="s",  # a duration is milliseconds already: the unit is not applied to it
    )
    frame = read_source(write_jsonl(tmp_path / "r.jsonl", records), source, "r.jsonl")
    assert frame["latency_ms"].tolist() == [r["end"] - r["start"] for r in records]
    assert frame["ttft_ms"].iloc[0] == records[0]["first"] - records[0]["start"]
    assert frame["ttft_ms"].iloc[1:].isna().all()
    assert frame[ERRORS].tolist()[2] == ["ttft_ms: first: not a number (timestamp.format is epoch_ms)"]
    terms = [[r.get(k) for k in ("input", "cache_read", "cache_write")] for r in records]
    expected = [sum(t for t in row if t is not None) if any(t is not None for t in row) else None for row in terms]
    assert frame["prompt_tokens"].astype(object).where(frame["prompt_tokens"].notna(), None).tolist() == expected
    assert frame["status_code"].tolist() == [200, 400, 200]
    # A map's `missing` holds where its field is in no record at all; a default only where a value has none.
    absent = _source(
        {"timestamp": "start", "status_code": {"map": {"from": "state", "missing": 200}}}, timestamp="epoch_ms"
    )
    assert read_source(tmp_path / "r.jsonl", absent, "r.jsonl")["status_code"].tolist() == [200] * len(records)
    defaulted = _source(
        {"timestamp": "start", "prompt_tokens": {"sum": ["a", "b"]}},
        timestamp="epoch_ms",
        defaults={"prompt_tokens": 0},
    )
    assert read_source(tmp_path / "r.jsonl", defaulted, "r.jsonl")["prompt_tokens"].tolist() == [0] * len(records)
    assert frame["error_type"].astype(object).where(frame["error_type"].notna(), None).tolist() == [
        None,
        "content_filter",
        None,
    ]


def test_a_nested_user_id_is_pseudonymised_by_its_own_key(tmp_path: Path) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        "sources:\n  - {kind: requests, pattern: '*', columns: {user_id: metadata.user_api_key_user_id}}\n"
    )
    assert user_keys(load_settings(config, env={}), Kind.REQUESTS) == (
        "metadata.user_api_key_user_id",
        "user_api_key_user_id",
    )


def test_openai_batch_output_tokens_match_the_file(realdata: Path) -> None:
    path = realdata / "formats" / "openai-batch-output-queryreformulation.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    body = "response.body"
    source = _source(
        {
            "request_id": "custom_id",
            "timestamp": f"{body}.created",
            "model": f"{body}.model",
            "status_code": "response.status_code",
            "prompt_tokens": f"{body}.usage.prompt_tokens",
            "completion_tokens": f"{body}.usage.completion_tokens",
            "total_tokens": f"{body}.usage.total_tokens",
            "cached_tokens": f"{body}.usage.prompt_tokens_details.cached_tokens",
            "reasoning_tokens": f"{body}.usage.completion_tokens_details.reasoning_tokens",
            "error_type": {
                "map": {"from": f"{body}.choices.0.finish_reason", "values": {"content_filter": "content_filter"}}
            },
        },
        timestamp="epoch_s",
    )
    mapped = read_mapped(path, source, path.name)
    frame = mapped.frame
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    usages = [line["response"]["body"]["usage"] for line in lines]
    assert len(frame) == len(lines) == 60
    assert frame[ERRORS].isna().all()
    for column, key in (
        ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("total_tokens", "total_tokens"),
    ):
        assert int(frame[column].sum()) == sum(u[key] for u in usages), column
    assert int(frame["cached_tokens"].sum()) == sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert int(frame["reasoning_tokens"].sum()) == sum(
        u["completion_tokens_details"]["reasoning_tokens"] for u in usages
    )
    assert frame["status_code"].tolist() == [line["response"]["status_code"] for line in lines]
    assert frame["request_id"].tolist() == [line["custom_id"] for line in lines]
    assert frame["timestamp"].tolist() == [
        pd.Timestamp(line["response"]["body"]["created"], unit="s", tz="UTC") for line in lines
    ]
    assert frame["error_type"].isna().all()  # every answer finished with "stop"
    assert {line["response"]["body"]["choices"][0]["finish_reason"] for line in lines} == {"stop"}
    assert mapped.unresolved == (
        "user_id",
        "session_id",
        "provider",
        "endpoint",
        "error_code",
        "finish_reason",
        "latency_ms",
        "ttft_ms",
        "cache_write_tokens",
        "cost_usd",
        "metadata",
        "service_tier",
    )


def test_litellm_latency_and_time_to_first_token(realdata: Path, tmp_path: Path) -> None:
    path = realdata / "formats" / "litellm-standard-logging-payload.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    payload = json.loads(path.read_text())
    # A second call that streamed: its first token came before its end (the fixture's did not).
    streamed = {**payload, "id": "streamed", "completionStartTime": "2025-01-24 09:20:46.849000"}
    write_jsonl(tmp_path / "litellm.jsonl", [payload, streamed])
    zone = "Europe/Berlin"  # LiteLLM writes naive local times: the source's zone reads them
    source = _source(
        {
            "request_id": "id",
            "timestamp": "startTime",
            "latency_ms": {"duration": {"start": "startTime", "end": "endTime"}},
            "ttft_ms": {
                "duration": {"start": "startTime", "end": "completionStartTime", "null_if_end_equals": "endTime"}
            },
            "status_code": {"map": {"from": "status", "values": {"success": 200, "failure": 500}}},
            "user_id": "metadata.user_api_key_user_id",
            "cost_usd": "response_cost",
        },
        timestamp={"format": "iso", "timezone": zone},
    )
    frame = read_source(tmp_path / "litellm.jsonl", source, "litellm.jsonl")
    assert frame[ERRORS].isna().all()

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))

    for row, record in zip(frame.itertuples(), (payload, streamed), strict=True):
        assert row.latency_ms == pytest.approx(
            (at(record["endTime"]) - at(record["startTime"])) / timedelta(milliseconds=1)
        )
        assert row.timestamp == pd.Timestamp(at(record["startTime"]))
        assert row.status_code == 200 and record["status"] == "success"
        assert row.cost_usd == record["response_cost"]
    assert payload["completionStartTime"] == payload["endTime"]  # no stream: no first token
    assert pd.isna(frame["ttft_ms"].iloc[0])
    expected = (at(streamed["completionStartTime"]) - at(streamed["startTime"])) / timedelta(milliseconds=1)
    assert frame["ttft_ms"].iloc[1] == pytest.approx(expected)
    assert frame["user_id"].isna().all()  # the fixture's metadata holds no user


def test_the_readme_examples_are_valid_sources() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Paths and derived values") : readme.index("### Presets")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block in blocks:
        source = _source(**yaml.safe_load(block))
        assert set(source.columns) == set(yaml.safe_load(block)["columns"])
