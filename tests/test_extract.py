import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.config import SourceConfig, parse_source
from chatpulse.extract import ERRORS, ExtractError, extract_day, parse_timestamps, read_file
from chatpulse.schema import Kind
from tests.conftest import write_jsonl

REQUESTS = SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*")


def _source(**raw: object) -> SourceConfig:
    return parse_source({"kind": "requests", "pattern": "*", **raw}, "source")


@pytest.mark.parametrize(
    ("raw", "values", "expected"),
    [
        ({}, ["2026-11-20T10:00:00+08:00", "2026-11-20T02:00:00Z"], ["2026-11-20T02:00:00"] * 2),
        ({}, ["2023-11-16 18:17:03.9799600"], ["2023-11-16T18:17:03.979960"]),
        ({"timestamp": "epoch_s"}, [1763632800], ["2025-11-20T10:00:00"]),
        ({"timestamp": "epoch_ms"}, [1763632800500], ["2025-11-20T10:00:00.500"]),
        ({"timestamp": {"format": "seconds_since", "origin": "2023-01-01"}}, ["90061.5"], ["2023-01-02T01:01:01.500"]),
        (
            {"timestamp": {"format": "iso", "timezone": "Asia/Shanghai"}},
            ["2026-11-20 08:00:00"],
            ["2026-11-20T00:00:00"],
        ),
    ],
)
def test_timestamp_formats(raw: dict, values: list, expected: list[str]) -> None:
    parsed = parse_timestamps(pd.Series(values, dtype=object), _source(**raw))
    assert list(parsed) == [pd.Timestamp(e, tz="UTC") for e in expected]


def test_unparseable_timestamps_become_nat() -> None:
    parsed = parse_timestamps(pd.Series(["yesterday", None], dtype=object), _source())
    assert parsed.isna().all()


def test_jsonl_keeps_line_numbers_and_reports_malformed_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "requests.jsonl.gz", [{"a": 1}, "", '{"a": 2', "[1, 2]", {"a": 3}])
    raw = read_file(path)
    assert list(raw.lines) == [1, 5]
    assert [line for line, _ in raw.malformed] == [3, 4]
    assert raw.malformed[1][1] == "malformed JSON: not a JSON object"


def test_csv_rows_with_the_wrong_field_count_are_malformed(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text('a,b\n1,2\n3\n"multi\nline",4\n')
    raw = read_file(path)
    assert list(raw.lines) == [2, 4]
    assert raw.malformed == [(3, "expected 2 fields, got 1")]
    assert raw.records["a"].tolist() == ["1", "multi\nline"]


def test_unreadable_files_fail_with_the_file_name(tmp_path: Path) -> None:
    broken = tmp_path / "requests.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(ExtractError, match="requests.jsonl.gz: cannot read file"):
        read_file(broken)
    with pytest.raises(ExtractError, match="unknown file type"):
        read_file(tmp_path / "requests.parquet")


def test_rows_go_to_the_day_of_their_own_timestamp_whatever_file(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "requests-20.jsonl",
        [
            {"request_id": "a", "timestamp": "2026-11-20T23:59:59+00:00"},
            {"request_id": "a2", "timestamp": "2026-11-20T00:00:00+00:00"},
            {"request_id": "late", "timestamp": "2026-11-19T12:00:00+00:00"},
            {"request_id": "undated", "timestamp": "soon"},
        ],
    )
    write_jsonl(tmp_path / "requests-21.jsonl", [{"request_id": "b", "timestamp": "2026-11-21T00:00:00+00:00"}])
    day20 = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "UTC")
    day19 = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 19), "UTC")
    # The undated row goes to the file's busiest day, the 20th.
    assert day20.frame["request_id"].tolist() == ["a", "a2", "undated"]
    assert day20.frame[ERRORS].iloc[2] == ["timestamp: unrecognised time format"]
    assert day19.frame["request_id"].tolist() == ["late"]
    assert day20.stamps["requests-20.jsonl"].days == {"2026-11-19", "2026-11-20"}


def test_day_boundaries_follow_the_configured_time_zone(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "requests.jsonl",
        [
            {"request_id": "a", "timestamp": "2026-11-19T16:00:00+00:00"},  # 00:00 on the 20th in Shanghai
            {"request_id": "b", "timestamp": "2026-11-19T15:59:59+00:00"},
        ],
    )
    frame = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "Asia/Shanghai").frame
    assert frame["request_id"].tolist() == ["a"]


def test_unchanged_files_that_cannot_hold_the_day_are_skipped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "requests.jsonl", [{"timestamp": "2026-11-20T10:00:00+00:00"}])
    first = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "UTC")
    skipped = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 21), "UTC", first.stamps)
    assert skipped.stamps == {}
    write_jsonl(path, [{"timestamp": "2026-11-21T10:00:00+00:00"}, {"timestamp": "2026-11-21T11:00:00+00:00"}])
    reread = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 21), "UTC", first.stamps)
    assert len(reread.frame) == 2


def test_mapping_units_failures_and_type_errors(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(b"T,Elapsed,Out,Extra\n0,2,10,x\n60,fast,0,y\n120,1.5,2.5,z\n"))
    source = _source(
        pattern="log.csv*",
        columns={"timestamp": "T", "latency_ms": "Elapsed", "completion_tokens": "Out"},
        timestamp={"format": "seconds_since", "origin": "2026-11-20"},
        latency_unit="s",
        failure={"column": "completion_tokens", "equals": 0, "error_type": "empty_response"},
    )
    frame = extract_day(tmp_path, [source], Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    assert frame["latency_ms"].tolist()[0] == 2000.0
    assert pd.isna(frame["latency_ms"].iloc[1])
    assert frame["status_code"].tolist() == [200, 500, 200]
    assert frame["error_type"].tolist()[1] == "empty_response"
    assert frame[ERRORS].tolist() == [None, ["latency_ms: not a number"], ["completion_tokens: not an integer"]]
    assert frame["metadata"].tolist()[0] == '{"Extra":"x"}'


def test_session_per_line_layout_expands_turns(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "sessions.jsonl",
        [
            {
                "session_id": "s1",
                "user_id": "u1",
                "turns": [
                    {"role": "user", "content": "hi", "timestamp": "2026-11-20T10:00:00Z"},
                    {"role": "assistant", "content": "hello", "timestamp": "2026-11-20T10:00:02Z"},
                ],
            }
        ],
    )
    source = SourceConfig(name="sessions", kind=Kind.MESSAGES, pattern="sessions*", layout="sessions")
    frame = extract_day(tmp_path, [source], Kind.MESSAGES, date(2026, 11, 20), "UTC").frame
    assert frame[["session_id", "user_id", "role"]].values.tolist() == [["s1", "u1", "user"], ["s1", "u1", "assistant"]]
    assert frame["source_line"].tolist() == [1, 1]
