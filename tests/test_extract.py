import gzip
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from readpaths import both_read_paths

from chatpulse.config import SourceConfig, parse_source
from chatpulse.ingest.clean import derive_ids
from chatpulse.ingest.extract import ERRORS, extract_day, read_source
from chatpulse.ingest.files import ExtractError, read_file
from chatpulse.ingest.times import parse_timestamps
from chatpulse.schema import CODED, Kind

from fixtures import write_jsonl

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
    assert list(parsed.utc) == [pd.Timestamp(e, tz="UTC") for e in expected]
    assert parsed.problems.isna().all()


def test_unparseable_timestamps_become_nat() -> None:
    parsed = parse_timestamps(pd.Series(["yesterday", None], dtype=object), _source())
    assert parsed.utc.isna().all()
    assert parsed.problems.tolist() == ["unrecognised time format", None]


def test_jsonl_keeps_line_numbers_and_reports_malformed_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "requests.jsonl.gz", [{"a": 1}, "", '{"a": 2', "[1, 2]", {"a": 3}])
    raw = read_file(path)
    assert list(raw.lines) == [1, 5]
    assert [line for line, _ in raw.malformed] == [3, 4]
    assert raw.malformed[1][1] == "malformed JSON: not a JSON object"


# Arrow reads the first file; the blank line sends the second line by line.
@pytest.mark.parametrize(("text", "lines"), [("{}\n{}\n", [1, 2]), ("{}\n\n{}\n", [1, 3])])
def test_lines_of_empty_objects_are_records(tmp_path: Path, text: str, lines: list[int]) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(text)
    assert read_source(path, REQUESTS, "requests.jsonl")["source_line"].tolist() == lines


def test_csv_rows_with_the_wrong_field_count_are_malformed(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text('a,b\n1,2\n3\n"multi\nline",4\n')
    raw = read_file(path)
    assert list(raw.lines) == [2, 4]
    assert raw.malformed == [(3, "expected 2 fields, got 1")]
    assert raw.records["a"].tolist() == ["1", "multi\nline"]


def test_a_csv_quote_never_closed_is_its_line_alone(tmp_path: Path) -> None:
    """The csv module took the rest of the file as the open field: one record with a junk value, the lines
    after it in no place at all. (A quote closed by a later line's quote cannot be told from a field that
    spans lines.)"""
    path = tmp_path / "requests.csv"
    path.write_text('a,b\n1,2\n3,"open\n4,5\n6,7\n')
    raw = read_file(path)
    assert raw.malformed == [(3, "a quote opened on this line is never closed")]
    assert list(raw.lines) == [2, 4, 5] and raw.records["a"].tolist() == ["1", "4", "6"]
    path.write_text('a,b\n1,2\n3,"two\nlines"\n')  # a last record over two lines, closed: a record
    raw = read_file(path)
    assert (raw.malformed, list(raw.lines), raw.records["b"].tolist()) == ([], [2, 3], ["2", "two\nlines"])


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


def test_a_day_from_several_files_is_their_rows_of_the_day_one_after_the_other(tmp_path: Path) -> None:
    # Files wholly of the day, partly of it and with malformed lines: the day's frame is joined a column at
    # a time (no copy of a file held whole beside it), and must equal each file's own rows of the day, in
    # file order, concatenated by pandas.
    day = "2026-11-20T{:02d}:00:00+00:00"
    write_jsonl(tmp_path / "requests-a.jsonl", [{"request_id": f"a{n}", "timestamp": day.format(n)} for n in range(3)])
    write_jsonl(
        tmp_path / "requests-b.jsonl",
        [
            {"request_id": "b0", "timestamp": day.format(5), "latency_ms": 12.5, "model": "m"},
            {"request_id": "b1", "timestamp": "2026-11-21T01:00:00+00:00"},
            {"request_id": "b2", "timestamp": day.format(6), "status_code": 500},
        ],
    )
    (tmp_path / "requests-c.jsonl").write_text(
        '{"request_id": "c0", "timestamp": "2026-11-20T07:00:00+00:00", "user_id": "u"}\n{"request_id": \n'
    )
    frame = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    own = []
    for name in ("requests-a.jsonl", "requests-b.jsonl", "requests-c.jsonl"):
        rows = read_source(tmp_path / name, REQUESTS, name)
        stamps = rows["timestamp"].dt.strftime("%Y-%m-%d")
        own.append(rows[(stamps == "2026-11-20") | rows["timestamp"].isna()])  # the malformed line: its file's day
    expected = pd.concat(own, ignore_index=True)
    # Label columns are categoricals of the day's values (schema.CODED); every other column keeps its type.
    assert {name for name in frame if isinstance(frame[name].dtype, pd.CategoricalDtype)} == CODED & set(frame)
    pd.testing.assert_frame_equal(frame.astype(expected.dtypes.to_dict()), expected, check_exact=True)
    assert frame["request_id"].iloc[:-1].tolist() == ["a0", "a1", "a2", "b0", "b2", "c0"]
    assert frame[ERRORS].iloc[-1][0].startswith("line: malformed JSON")


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


@pytest.mark.parametrize(
    ("timezone", "stamps", "expected"),
    [
        (
            "Asia/Shanghai",
            ["2026-11-01T01:30:00Z", "2026-11-01T09:30:00+08:00", "2026-11-01 09:30:00"],
            ["2026-11-01T01:30:00Z"] * 3,
        ),
        # 01:30 happens twice that night in New York: read as its first occurrence (EDT), nothing raises.
        ("America/New_York", ["2026-11-01T01:30:00", "2026-11-01T05:30:00Z"], ["2026-11-01T05:30:00Z"] * 2),
    ],
)
def test_arrow_reads_whole_second_times_like_the_line_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timezone: str, stamps: list[str], expected: list[str | None]
) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [{"request_id": str(i), "timestamp": t} for i, t in enumerate(stamps)])
    frame = both_read_paths(path, _source(timestamp={"format": "iso", "timezone": timezone}), monkeypatch)
    assert frame["timestamp"].tolist() == [pd.Timestamp(e) if e else pd.NaT for e in expected]
    assert frame[ERRORS].tolist() == [None if e else ["timestamp: unrecognised time format"] for e in expected]


@pytest.mark.parametrize(
    ("records", "metadata"),
    [
        # Lists in the metadata and in an unmapped field (Arrow hands them over as arrays).
        ([{"metadata": {"tags": ["x"], "n": 1}}, {"metadata": {"n": 2.5}}], ['{"tags":["x"],"n":1}', '{"n":2.5}']),
        ([{"tags": ["x"], "ids": [1, 2]}, {"tags": []}], ['{"tags":["x"],"ids":[1,2]}', '{"tags":[]}']),
        # Nested objects: Arrow turns 2 into 2.0 and fills absent keys with null.
        ([{"n": 1, "x": {"k": 2}}, {"n": 2, "x": {"j": 2.5}}], ['{"n":1,"x":{"k":2}}', '{"n":2,"x":{"j":2.5}}']),
        # An unmapped whole-second time (Arrow makes it a naive UTC timestamp) stays as written.
        ([{"at": "2026-11-01T01:30:00+08:00"}, {"at": None}], ['{"at":"2026-11-01T01:30:00+08:00"}', None]),
        # A column that is null throughout, present or not.
        ([{"a": None, "b": True}, {"b": None}], ['{"b":true}', None]),
    ],
)
def test_arrow_reads_lists_and_objects_like_the_line_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: list[dict], metadata: list[str | None]
) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [{"timestamp": "2026-11-20T10:00:00Z", **r} for r in records])
    frame = both_read_paths(path, _source(), monkeypatch)
    assert [m if isinstance(m, str) else None for m in frame["metadata"]] == metadata


def test_an_object_under_a_key_that_ends_the_key_before_it_is_read_like_the_line_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written compactly, the key ":{}," also appears where "k"'s key ends and its empty object follows: only the
    # key itself holds b.
    records = [{"timestamp": "2026-11-20T10:00:00Z", "k": {}, ":{},": {"b": n}} for n in (1, 2)]
    lines = [json.dumps(record, separators=(",", ":")) for record in records]
    frame = both_read_paths(write_jsonl(tmp_path / "r.jsonl", lines), _source(), monkeypatch)
    assert [json.loads(m) for m in frame["metadata"]] == [{"k": {}, ":{},": {"b": n}} for n in (1, 2)]


def test_the_same_record_gets_the_same_id_whatever_its_neighbours(tmp_path: Path) -> None:
    record = {"timestamp": "2026-11-20T10:00:00Z", "metadata": {"app": "a", "n": 1}}
    write_jsonl(tmp_path / "requests-a.jsonl", [record])
    write_jsonl(tmp_path / "requests-b.jsonl", [{"timestamp": "2026-11-20T09:00:00Z", "metadata": {"n": 2.5}}, record])
    frame = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    assert frame["metadata"].tolist() == ['{"app":"a","n":1}', '{"n":2.5}', '{"app":"a","n":1}']
    ids = derive_ids(frame, Kind.REQUESTS)
    assert ids[0] == ids[2] != ids[1]


@pytest.mark.parametrize(
    ("text", "lines", "malformed"),
    [
        # Three records for three lines, but line 1 holds two and line 2 none.
        ('{"a":1}{"b":2}\n\n{"c":3}\n', [3], [1]),
        # Three records for three lines, but one spans lines 1 and 2.
        ('{"a":\n1}{"b":2}\n{"c":3}\n', [3], [1, 2]),
    ],
)
def test_line_numbers_are_never_guessed_from_a_matching_count(
    tmp_path: Path, text: str, lines: list[int], malformed: list[int]
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(text)
    raw = read_file(path)
    assert list(raw.lines) == lines
    assert [line for line, _ in raw.malformed] == malformed


def test_days_whose_midnight_daylight_saving_skips(tmp_path: Path) -> None:
    # In Santiago clocks jump from 00:00 to 01:00 on 2024-09-08: that day has no midnight.
    write_jsonl(
        tmp_path / "requests.jsonl",
        [
            {"request_id": "a", "timestamp": "2024-09-08T05:30:00Z"},
            {"request_id": "b", "timestamp": "2024-09-08T06:30:00Z"},
            {"request_id": "c", "timestamp": "2024-09-08T03:59:59Z"},  # 23:59:59 on the 7th
            {"request_id": "undated", "timestamp": "soon"},
        ],
    )
    result = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2024, 9, 8), "America/Santiago")
    assert result.frame["request_id"].tolist() == ["a", "b", "undated"]
    assert result.stamps["requests.jsonl"].days == {"2024-09-07", "2024-09-08"}


def test_own_metadata_is_kept_beside_unmapped_fields(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "requests-1.jsonl",
        [
            {"timestamp": "2026-11-20T10:00:00Z", "metadata": {"team": "a"}, "region": "eu"},
            {"timestamp": "2026-11-20T10:01:00Z", "metadata": "plain", "region": "us"},
            {"timestamp": "2026-11-20T10:02:00Z", "region": "ap"},
        ],
    )
    frame = read_source(path, REQUESTS, path.name)
    assert frame["metadata"].tolist() == [
        '{"region":"eu","team":"a"}',
        '{"region":"us","metadata":"plain"}',
        '{"region":"ap"}',
    ]


def test_an_integer_past_64_bits_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "requests-1.jsonl",
        [
            {"timestamp": "2026-11-20T10:00:00Z", "prompt_tokens": 12},
            '{"timestamp": "2026-11-20T10:01:00Z", "prompt_tokens": 99999999999999999999}',
        ],
    )
    frame = read_source(path, REQUESTS, path.name)
    assert frame["prompt_tokens"].tolist()[0] == 12 and pd.isna(frame["prompt_tokens"].iloc[1])
    assert frame[ERRORS].tolist() == [None, ["prompt_tokens: out of range"]]


def test_content_given_as_json_parts_or_an_object_is_kept_as_json_text(tmp_path: Path) -> None:
    """OpenAI's chat format allows content as a list of parts: it was stored as Python's repr ({'type': ...})."""
    parts = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]
    contents = [parts, {"text": "yo"}, "plain", [{"type": "text", "text": "¿qué?"}]]
    write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"session_id": "s", "role": "user", "timestamp": f"2026-11-20T10:00:0{i}Z", "content": c}
            for i, c in enumerate(contents)
        ],
    )
    source = SourceConfig(name="m", kind=Kind.MESSAGES, pattern="m.jsonl")
    frame = extract_day(tmp_path, [source], Kind.MESSAGES, date(2026, 11, 20), "UTC").frame
    stored = frame["content"].tolist()
    assert stored[2] == "plain"
    assert [json.loads(text) for i, text in enumerate(stored) if i != 2] == [parts, {"text": "yo"}, contents[3]]
