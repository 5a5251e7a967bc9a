"""Any text a log holds: byte order marks, UTF-16, CRLF, lone surrogates, invalid UTF-8, NUL, huge fields.

No text fails a file: a row is read (repaired and counted where the text had to be changed) or
quarantined with its line; every row ends in exactly one place. Expected values come from the
same rows written plainly (UTF-8, LF, no mark), or from Python's own codecs.
"""

import codecs
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.config import ConfigError, SourceConfig, parse_source, settings_from_mapping
from chatpulse.ingest import files
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import ERRORS, RAW, read_source
from chatpulse.ingest.text import NUL_REMOVED, SURROGATE_REPLACED
from chatpulse.schema import Kind
from chatpulse.warehouse import Warehouse, Write

from fixtures import clean_every_day

DAY = "2026-11-20"
SOURCE = SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*")
ROWS = [
    {"request_id": "a", "timestamp": f"{DAY}T10:00:00Z", "model": "gpt-4o", "latency_ms": 5},
    {"request_id": "b", "timestamp": f"{DAY}T10:01:00Z", "model": "模型-é", "latency_ms": 6},
    {"request_id": "c", "timestamp": f"{DAY}T10:02:00Z", "model": "gpt-4o", "latency_ms": 7},
]


def _jsonl(rows: list[dict], newline: str = "\n") -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + newline for row in rows)


def _csv(rows: list[dict], newline: str = "\n") -> str:
    lines = [",".join(rows[0]), *(",".join(str(v) for v in row.values()) for row in rows)]
    return "".join(line + newline for line in lines)


def _read(path: Path, source: SourceConfig = SOURCE) -> pd.DataFrame:
    return read_source(path, source, path.name)


def _totals(outcomes: dict) -> dict[str, int]:
    keys = ("rows_in", "clean", "quarantined", "duplicates", "repaired")
    return {key: sum(o.quality[key] for o in outcomes.values()) for key in keys}


def _repairs(outcomes: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        for name, count in json.loads(outcome.quality["repairs"]).items():
            counts[name] = counts.get(name, 0) + count
    return counts


@pytest.mark.parametrize(
    ("suffix", "encode"),
    [
        (".jsonl", lambda text: codecs.BOM_UTF8 + text.encode()),
        (".jsonl.gz", lambda text: gzip.compress(codecs.BOM_UTF8 + text.encode())),
        (".jsonl", lambda text: text.encode("utf-16")),  # with its mark, in this machine's byte order
        (".jsonl", lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
        (".jsonl", lambda text: text.encode("utf-32")),
        (".csv", lambda text: codecs.BOM_UTF8 + text.encode()),
        (".csv", lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_byte_order_mark_and_crlf_change_nothing(tmp_path: Path, suffix: str, encode, newline: str) -> None:
    text = (_csv if suffix == ".csv" else _jsonl)(ROWS, newline)
    marked, plain = tmp_path / f"requests-marked{suffix}", tmp_path / f"requests-plain{suffix.removesuffix('.gz')}"
    marked.write_bytes(encode(text))
    plain.write_bytes((_csv if suffix == ".csv" else _jsonl)(ROWS).encode())
    read = read_source(marked, SOURCE, "f")
    pd.testing.assert_frame_equal(read, read_source(plain, SOURCE, "f"))
    assert read["request_id"].tolist() == ["a", "b", "c"] and read[ERRORS].isna().all()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_bad_line_keeps_its_number_with_a_mark_and_crlf(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [json.dumps(ROWS[0]), "{not json", "", json.dumps(ROWS[1]), codecs.BOM_UTF8.decode() + json.dumps(ROWS[2])]
    path.write_bytes(codecs.BOM_UTF8 + newline.join(lines).encode() + newline.encode())
    frame = _read(path)
    assert frame["source_line"].tolist() == [1, 4, 5, 2]  # records first, then the malformed line
    assert frame["request_id"].tolist()[:3] == ["a", "b", "c"]
    assert frame[RAW].iloc[3] == "{not json"  # no CR left on the quarantined line


# Lone surrogate escapes, as a truncating writer leaves them, in several places of a line.
SURROGATES = [
    ('"model": "gpt-4o \\ud83d"', {"model": "gpt-4o \ufffd"}),
    ('"model": "\\ude00gpt"', {"model": "\ufffdgpt"}),
    ('"model": "\\ude00\\ud83d"', {"model": "\ufffd\ufffd"}),  # a pair in the wrong order is two halves
    ('"model": "ok \\ud83d\\ude00 \\ud83d"', {"model": "ok \U0001f600 \ufffd"}),  # a whole pair stays whole
    ('"tag": {"\\ud83d": ["x\\udfff"]}', {"metadata": '{"tag":{"\ufffd":["x\ufffd"]}}'}),
    ('"user_id": "\\udbff"', {"user_id": "\ufffd"}),
]


@pytest.mark.parametrize(("field", "expected"), SURROGATES)
def test_a_lone_surrogate_becomes_a_replacement_character_and_is_counted(
    tmp_path: Path, field: str, expected: dict
) -> None:
    good = json.dumps(ROWS[0])
    cut = f'{{"request_id": "s", "timestamp": "{DAY}T11:00:00Z", {field}}}'
    (tmp_path / "requests-1.jsonl").write_text(f"{good}\n{cut}\n{json.dumps(ROWS[2])}\n")
    outcomes = clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)
    assert _totals(outcomes) == {"rows_in": 3, "clean": 3, "quarantined": 0, "duplicates": 0, "repaired": 1}
    assert _repairs(outcomes) == {SURROGATE_REPLACED: 1}
    row = outcomes[DAY].clean.set_index("request_id").loc["s"]
    for column, value in expected.items():
        assert row[column] == value
    json.loads(row["metadata"]) if isinstance(row["metadata"], str) else None  # metadata stays JSON


def test_a_lone_surrogate_in_a_session_turn_and_a_line_still_malformed(tmp_path: Path) -> None:
    session = '{"session_id": "s1", "turns": [{"role": "user", "content": "hi \\ud83d", "timestamp": "%sT10:00:00Z"}]}'
    nan = '{"session_id": "s2", "turns": [{"role": "user", "content": "\\ud83d", "timestamp": NaN}]}'
    (tmp_path / "sessions.jsonl").write_text(session % DAY + "\n" + nan + "\n")
    source = SourceConfig(name="sessions", kind=Kind.MESSAGES, pattern="sessions*", layout="sessions")
    outcomes = clean_every_day(tmp_path, [source], Kind.MESSAGES)
    assert _totals(outcomes) == {"rows_in": 2, "clean": 1, "quarantined": 1, "duplicates": 0, "repaired": 1}
    assert outcomes[DAY].clean["content"].tolist() == ["hi \ufffd"]
    assert json.loads(outcomes[DAY].quarantine["reasons"].iloc[0])[0].startswith("line: malformed JSON")


@pytest.mark.parametrize(
    "bad",
    [
        b"caf\xe9",  # Latin-1
        b"\xff\xfe",
        b"\xe6\xa8",  # a character cut in half
        b"\xed\xa0\xbd",  # a surrogate encoded as if it were a character (CESU-8)
        b"\xc0\xaf",  # an overlong '/'
    ],
)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_invalid_utf8_quarantines_that_row_only(tmp_path: Path, bad: bytes, fmt: str) -> None:
    rows = [{**row, "model": "MODEL"} if row["request_id"] == "b" else row for row in ROWS]
    text = (_csv if fmt == "csv" else _jsonl)(rows).encode().replace(b"MODEL", bad)
    path = tmp_path / f"requests-1.{fmt}"
    path.write_bytes(text)
    outcomes = clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)
    assert _totals(outcomes) == {"rows_in": 3, "clean": 2, "quarantined": 1, "duplicates": 0, "repaired": 0}
    quarantine = outcomes[DAY].quarantine
    line = 3 if fmt == "csv" else 2
    assert quarantine[["source_file", "source_line"]].values.tolist() == [[path.name, line]]
    assert json.loads(quarantine["reasons"].iloc[0])[0] == "line: not valid UTF-8"
    assert quarantine["raw"].iloc[0] == text.split(b"\n")[line - 1].decode("utf-8", errors="replace")
    assert sorted(outcomes[DAY].clean["request_id"]) == ["a", "c"]


def test_an_unreadable_header_byte_does_not_fail_the_file(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_bytes(b"request_id,timestamp,extra\xff\na," + f"{DAY}T10:00:00Z,x\n".encode())
    frame = _read(tmp_path / "requests.csv")
    assert frame["metadata"].tolist() == ['{"extra\ufffd":"x"}']


def test_a_utf16_file_cut_mid_character_is_named(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(_jsonl(ROWS).encode("utf-16")[:-1])
    with pytest.raises(files.ExtractError, match="requests.jsonl: not UTF-16 or UTF-32 text"):
        _read(path)


def _nul_inputs(folder: Path) -> int:
    """Files with NUL in every form a log writes it; returns how many rows they hold."""
    lines = [
        f'{{"request_id": "n1\\u0000", "timestamp": "{DAY}T10:00:00Z", "model": "gpt\\u0000-4o"}}',
        f'{{"request_id": "n2", "timestamp": "{DAY}T10:01:00Z", "model": "gpt-4o\x00\x00"}}',  # NUL bytes
        f'{{"request_id": "n3", "timestamp": "{DAY}T10:02:00Z", "extra": "x\\u0000y"}}',  # kept as JSON's escape
        f'{{"request_id": "n4", "timestamp": "{DAY}T10:03:00Z", "latency_ms": "fast\x00"}}',  # quarantined anyway
        "\x00" * 8,  # a crash's padding: no record
    ]
    (folder / "requests-1.jsonl").write_bytes(("\n".join(lines) + "\n").encode())
    (folder / "requests-2.csv").write_bytes(f"request_id,timestamp,model\nc1,{DAY}T11:00:00Z,gpt\x00-4o\n".encode())
    return len(lines) + 1


def test_nul_is_removed_from_text_and_counted(tmp_path: Path) -> None:
    rows = _nul_inputs(tmp_path)
    outcomes = clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)
    assert _totals(outcomes) == {"rows_in": rows, "clean": 4, "quarantined": 2, "duplicates": 0, "repaired": 3}
    assert _repairs(outcomes) == {NUL_REMOVED: 3}  # n1, n2, c1: n3's metadata keeps the escape, not a NUL
    clean = outcomes[DAY].clean.set_index("request_id")
    assert clean.loc[["n1", "n2", "c1"], "model"].tolist() == ["gpt-4o"] * 3
    assert clean.loc["n3", "metadata"] == '{"extra":"x\\u0000y"}'
    raws = outcomes[DAY].quarantine["raw"].tolist()
    assert not any("\x00" in raw for raw in raws) and "\u2400" * 8 in raws


def test_a_file_whose_only_nul_is_escaped_is_repaired(tmp_path: Path) -> None:
    # No NUL byte anywhere: only JSON's escape tells the file may hold one.
    line = f'{{"request_id": "e1", "timestamp": "{DAY}T10:00:00Z", "model": "gpt\\u0000-4o"}}\n'
    (tmp_path / "requests-1.jsonl").write_text(line)
    outcomes = clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)
    assert _repairs(outcomes) == {NUL_REMOVED: 1}
    assert outcomes[DAY].clean["model"].tolist() == ["gpt-4o"]


@pytest.mark.postgres
def test_text_with_nul_and_surrogates_is_stored_in_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _nul_inputs(tmp_path)
    cut = f'{{"request_id": "s\\ud83d", "timestamp": "{DAY}T12:00:00Z", "model": "\\ude00"}}\n'
    (tmp_path / "requests-3.jsonl").write_text(cut)
    csv = f"request_id,timestamp\nok,{DAY}T12:00:00Z\nbad\xff\x00,{DAY}T12:00:00Z\n"
    (tmp_path / "requests-4.csv").write_bytes(csv.encode("latin-1"))
    outcome = clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)[DAY]
    warehouse = Warehouse(postgres_url)
    try:
        warehouse.replace_day(
            DAY,
            Write("requests", outcome.clean),
            Write("quarantine", outcome.quarantine, kind="requests"),
            Write("data_quality", pd.DataFrame([outcome.quality]), kind="requests"),
        )
        stored = warehouse.read("requests", DAY).set_index("request_id")
        quarantine = warehouse.read("quarantine", DAY)
    finally:
        warehouse.engine.dispose()
    assert sorted(stored.index) == sorted(outcome.clean["request_id"]) and "s\ufffd" in stored.index
    assert stored.loc["n1", "model"] == "gpt-4o" and stored.loc["s\ufffd", "model"] == "\ufffd"
    assert sorted(quarantine["source_line"]) == sorted(outcome.quarantine["source_line"])
    assert "bad\ufffd\u2400,2026-11-20T12:00:00Z" in quarantine["raw"].tolist()


def test_a_csv_field_over_the_limit_quarantines_its_row_with_its_line(tmp_path: Path) -> None:
    huge = "M" * 300_000  # past the csv module's own 128 KiB cap, which used to fail the file
    lines = [
        "request_id,timestamp,model,note",
        f"r1,{DAY}T10:00:00Z,gpt-4o,short",
        f'r2,{DAY}T10:01:00Z,gpt-4o,"two\nlines"',
        f"r3,{DAY}T10:02:00Z,{huge},x",
        f"r4,{DAY}T10:03:00Z,gpt-4o,{huge}",  # an unmapped field, kept in the metadata
        f"r5,{DAY}T10:04:00Z,gpt-4o,{'é' * 60_000}",  # 120 000 bytes: over a 100 000 byte limit
        f"r6,{DAY}T10:05:00Z,gpt-4o,{'é' * 40_000}",
    ]
    (tmp_path / "requests.csv").write_text("\n".join(lines) + "\n")
    limit = 100_000
    source = parse_source({"kind": "requests", "pattern": "requests*", "max_field_bytes": limit}, "s")
    outcome = clean_every_day(tmp_path, [source], Kind.REQUESTS)[DAY]
    assert (outcome.quality["rows_in"], outcome.quality["clean"], outcome.quality["quarantined"]) == (6, 3, 3)
    assert outcome.clean["request_id"].tolist() == ["r1", "r2", "r6"]
    quarantine = outcome.quarantine
    assert quarantine["source_line"].tolist() == [5, 6, 7]
    assert [json.loads(r) for r in quarantine["reasons"]] == [
        [f"model: longer than max_field_bytes ({limit})"],
        [f"metadata: longer than max_field_bytes ({limit})"],
        [f"metadata: longer than max_field_bytes ({limit})"],
    ]
    # The stored line is cut at the limit too, and says how long it was.
    assert all(len(raw.encode()) < limit + 100 for raw in quarantine["raw"])
    assert quarantine["raw"].iloc[0].endswith(f"[... cut: the line holds {len(lines[3].encode())} bytes]")
    # Without a limit set, the default (16 MiB) reads every row.
    assert clean_every_day(tmp_path, [SOURCE], Kind.REQUESTS)[DAY].quality["clean"] == 6


def test_a_json_value_over_the_limit_quarantines_its_row(tmp_path: Path) -> None:
    rows = [*ROWS, {"request_id": "big", "timestamp": f"{DAY}T10:09:00Z", "user_id": "u" * 5000}]
    (tmp_path / "requests.jsonl").write_text(_jsonl(rows))
    source = parse_source({"kind": "requests", "pattern": "requests*", "max_field_bytes": 4096}, "s")
    outcome = clean_every_day(tmp_path, [source], Kind.REQUESTS)[DAY]
    assert (outcome.quality["clean"], outcome.quality["quarantined"]) == (3, 1)
    assert outcome.quarantine["source_line"].tolist() == [4]
    assert json.loads(outcome.quarantine["reasons"].iloc[0]) == ["user_id: longer than max_field_bytes (4096)"]


def test_max_field_bytes_is_a_default_for_every_source_and_a_per_source_override(tmp_path: Path) -> None:
    raw = {
        "max_field_bytes": 1000,
        "sources": [{"kind": "requests", "pattern": "a*"}, {"kind": "requests", "pattern": "b*", "max_field_bytes": 5}],
    }
    sources = settings_from_mapping(raw, tmp_path, {}).sources
    assert [s.field_limit for s in sources] == [1000, 5]
    defaults = settings_from_mapping({"max_field_bytes": 1000}, tmp_path, {}).sources
    assert {s.field_limit for s in defaults} == {1000}
    assert {s.field_limit for s in settings_from_mapping({}, tmp_path, {}).sources} == {16 << 20}
    for wrong in (0, "16MiB", 1.5):
        with pytest.raises(ConfigError, match="^max_field_bytes: expected a whole number of bytes, at least 1"):
            settings_from_mapping({"max_field_bytes": wrong}, tmp_path, {})


def test_clean_counts_extract_repairs_only_on_rows_it_keeps(tmp_path: Path) -> None:
    lines = [
        f'{{"request_id": "k", "timestamp": "{DAY}T10:00:00Z", "model": "\\ud83d"}}',
        f'{{"request_id": "q", "timestamp": "{DAY}T10:00:00Z", "model": "\\ud83d", "latency_ms": -1}}',
        f'{{"request_id": "k", "timestamp": "{DAY}T10:00:00Z", "model": "\\ud83d"}}',  # a duplicate
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    extracted = read_source(tmp_path / "requests.jsonl", SOURCE, "requests.jsonl")
    outcome = clean_partition(extracted, Kind.REQUESTS, DAY)
    assert (outcome.quality["clean"], outcome.quality["quarantined"], outcome.quality["duplicates"]) == (1, 1, 1)
    assert (outcome.quality["repaired"], json.loads(outcome.quality["repairs"])) == (1, {SURROGATE_REPLACED: 1})
    assert "_repaired" not in outcome.clean.columns


def test_half_a_surrogate_pair_in_a_utf16_file_is_invalid_text_for_its_row_only(tmp_path: Path) -> None:
    lines = [json.dumps(ROWS[0]), f'{{"request_id": "x", "timestamp": "{DAY}T10:00:00Z", "model": "\ud83d"}}']
    data = codecs.BOM_UTF16_LE + "\n".join(lines).encode("utf-16-le", errors="surrogatepass")
    (tmp_path / "requests.jsonl").write_bytes(data)
    frame = _read(tmp_path / "requests.jsonl")
    assert frame["request_id"].tolist()[:1] == ["a"]
    assert frame[ERRORS].tolist() == [None, ["line: not valid UTF-8"]]
