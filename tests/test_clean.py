import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from chatpulse.config import SourceConfig
from chatpulse.ingest import clean
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.schema import Kind, is_error

from fixtures import write_jsonl

DAY = "2026-11-20"
T = "2026-11-20T10:00:00+00:00"

DIRTY = [
    {
        "request_id": "ok",
        "timestamp": T,
        "status_code": 200,
        "latency_ms": 100,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    },
    {
        "request_id": "ok",
        "timestamp": T,
        "status_code": 200,
        "latency_ms": 100,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    },
    {"request_id": "typo", "timestamp": T, "latency_ms": "fast"},
    {"request_id": "negative", "timestamp": T, "latency_ms": -5},
    {"request_id": "status", "timestamp": T, "status_code": 999},
    {"request_id": "undated", "timestamp": "half past ten"},
    {"request_id": "nodate"},
    '{"request_id": "cut", "timestamp": "2026-11-20T10:0',
    {"timestamp": T, "user_id": "u", "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 99},
    {"timestamp": T, "user_id": "u", "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 99},
    {"request_id": "derive", "timestamp": T, "completion_tokens": 3, "total_tokens": 10},
]


def _clean(tmp_path: Path, records: list, kind: Kind = Kind.REQUESTS):
    write_jsonl(tmp_path / f"{kind.value}-1.jsonl", records)
    source = SourceConfig(name=kind.value, kind=kind, pattern=f"{kind.value}*")
    extracted = extract_day(tmp_path, [source], kind, date(2026, 11, 20), "UTC").frame
    return clean_partition(extracted, kind, DAY)


def test_every_row_ends_in_exactly_one_place(tmp_path: Path) -> None:
    result = _clean(tmp_path, DIRTY)
    quality = result.quality
    # The second "ok" is a duplicate; the two identical id-less lines of the file are two calls.
    assert (quality["rows_in"], quality["clean"], quality["quarantined"], quality["duplicates"]) == (11, 4, 6, 1)
    assert quality["rows_in"] == quality["clean"] + quality["quarantined"] + quality["duplicates"]
    assert sorted(result.clean["request_id"])[2:] == ["derive", "ok"]
    reasons = json.loads(quality["reasons"])
    assert reasons["latency_ms: not a number"] == 1
    assert reasons["latency_ms: expect_column_values_to_be_between"] == 1
    assert reasons["status_code: expect_column_values_to_be_between"] == 1
    assert reasons["timestamp: expect_column_values_to_not_be_null"] == 2  # "half past ten" and no time
    assert reasons["line: malformed JSON: unexpected end of data"] == 1
    # A line that held no record has that one reason, not every expectation its empty fields then fail.
    cut = result.quarantine[result.quarantine["raw"].str.startswith('{"request_id": "cut"')]
    assert cut["reasons"].map(json.loads).tolist() == [["line: malformed JSON: unexpected end of data"]]


def test_missing_token_counts_are_recovered_and_contradicting_ones_flagged_not_changed(tmp_path: Path) -> None:
    result = _clean(tmp_path, DIRTY)
    clean = result.clean.set_index("request_id")
    assert clean.loc["derive", "prompt_tokens"] == 7  # 10 - 3
    assert clean.loc["ok", "total_tokens"] == 15  # 10 + 5, the total was missing
    derived = clean.index.difference(["ok", "derive"])
    # A logged total of 99 is not 7 + 3: kept as logged and flagged, never silently "repaired".
    assert clean.loc[derived, "total_tokens"].tolist() == [99, 99]
    assert result.quality["repaired"] == 2
    assert json.loads(result.quality["repairs"]) == {"total_tokens: recomputed": 1, "prompt_tokens: recomputed": 1}
    assert result.quality["flagged"] == 2
    assert json.loads(result.quality["flags"]) == {"total_tokens: not prompt_tokens + completion_tokens": 2}
    assert not clean["unmetered"].any()


def test_missing_ids_are_derived_from_content_not_location(tmp_path: Path) -> None:
    first = _clean(tmp_path / "a", DIRTY)
    again = _clean(tmp_path / "b", [{"x": "padding"}, *DIRTY])
    ids = set(first.clean["request_id"])
    assert ids == set(again.clean["request_id"])
    first_seen, second_seen = sorted(ids - {"ok", "derive"})
    assert len(first_seen) == 16 and second_seen == f"{first_seen}-2"  # two identical lines, two calls


def test_blank_text_is_no_value_but_in_free_text(tmp_path: Path) -> None:
    """An id of whitespace alone is no id: each such row gets its own derived id (blank ids were one id, the rest
    of the day's rows dropped as its duplicates); a blank error type names no error, a blank session id no
    session; a message's blank text stays its text."""
    blank = ["", "", " ", "\t"]
    requests = [
        {"request_id": text, "session_id": text, "error_type": text, "timestamp": T, "latency_ms": 100 + i}
        for i, text in enumerate(blank)
    ]
    result = _clean(tmp_path / "r", requests)
    assert (result.quality["clean"], result.quality["duplicates"]) == (4, 0)
    clean = result.clean
    assert clean["request_id"].str.fullmatch(r"[0-9a-f]{16}").all() and clean["request_id"].nunique() == 4
    assert clean[["session_id", "error_type"]].isna().all().all()
    assert not is_error(clean).any()
    messages = [
        {"message_id": text, "session_id": "s", "role": "user", "timestamp": T, "content": text} for text in blank
    ]
    result = _clean(tmp_path / "m", messages, Kind.MESSAGES)
    assert (result.quality["clean"], result.quality["duplicates"]) == (4, 0)
    assert sorted(result.clean["content"]) == sorted(blank)
    feedback = [{"feedback_id": "", "session_id": "s", "timestamp": T, "rating": r} for r in (1, -1)]
    assert _clean(tmp_path / "f", feedback, Kind.FEEDBACK).quality["clean"] == 2


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def test_metadata_nested_too_deep_to_write_is_quarantined_not_the_day_failed(tmp_path: Path) -> None:
    """orjson reads 1,024 levels and writes 254: a record between the two is its own problem (in its own
    metadata or an unmapped column joining it), with its original line, and the day's other rows go on."""
    lines = [
        {"request_id": "kept", "timestamp": T, "metadata": _nested(254)},
        {"request_id": "deep", "timestamp": T, "metadata": _nested(300)},
        {"request_id": "deep_extra", "timestamp": T, "custom": _nested(900)},
        {"request_id": "flat", "timestamp": T, "custom": 1},
    ]
    result = _clean(tmp_path, lines)
    assert sorted(result.clean["request_id"]) == ["flat", "kept"]
    quarantine = result.quarantine.set_index("record_id")
    assert sorted(quarantine.index) == ["deep", "deep_extra"]
    assert quarantine["reasons"].map(json.loads).tolist() == [["metadata: nested deeper than 254 levels"]] * 2
    assert quarantine.loc["deep", "raw"] == json.dumps(lines[1])  # the line as written
    assert json.loads(result.clean.set_index("request_id").loc["kept", "metadata"]) == _nested(254)


def test_true_and_false_are_not_numbers(tmp_path: Path) -> None:
    """JSON's booleans where a number belongs are quarantined as not numbers (Python would read true as 1),
    whether the column holds numbers beside them or booleans only."""
    mixed = [
        {"request_id": "n", "timestamp": T, "prompt_tokens": 5, "status_code": 200},
        {"request_id": "b", "timestamp": T, "prompt_tokens": True, "status_code": True},
    ]
    result = _clean(tmp_path / "mixed", mixed)
    assert result.clean["request_id"].tolist() == ["n"]
    reasons = result.quarantine.set_index("record_id").loc["b", "reasons"]
    assert {"prompt_tokens: not a number", "status_code: not a number"} <= set(json.loads(reasons))
    only = [{"request_id": f"b{i}", "timestamp": T, "cached_tokens": flag} for i, flag in enumerate((True, False))]
    result = _clean(tmp_path / "only", only)
    assert result.quality["clean"] == 0 and json.loads(result.quality["reasons"]) == {"cached_tokens: not a number": 2}


def test_a_token_count_no_context_window_holds_is_quarantined(tmp_path: Path) -> None:
    """A count past 100,000,000 tokens (ten times the largest context window) is a garbled record: quarantined
    rather than a day's cost of $150,000,000 from one row; the bound itself (a total of exactly 100,000,000) is kept."""
    lines = [
        {"request_id": "garbled", "timestamp": T, "prompt_tokens": 10**15, "completion_tokens": 5},
        {"request_id": "bound", "timestamp": T, "prompt_tokens": 99_999_995, "completion_tokens": 5},
    ]
    result = _clean(tmp_path, lines)
    assert result.clean["request_id"].tolist() == ["bound"]
    reasons = json.loads(result.quarantine.set_index("record_id").loc["garbled", "reasons"])
    assert "prompt_tokens: expect_column_values_to_be_between" in reasons


def test_quarantine_keeps_file_line_reasons_and_the_raw_record(tmp_path: Path) -> None:
    result = _clean(tmp_path, DIRTY)
    quarantine = result.quarantine.set_index("source_line")
    assert sorted(quarantine.index) == [3, 4, 5, 6, 7, 8]
    assert quarantine.loc[3, "source_file"] == "requests-1.jsonl"
    assert json.loads(quarantine.loc[3, "reasons"]) == ["latency_ms: not a number"]
    assert json.loads(quarantine.loc[3, "raw"])["latency_ms"] == "fast"
    assert quarantine.loc[8, "raw"] == DIRTY[7]
    # A row that parsed but failed an expectation is shown as read, under canonical names.
    assert json.loads(quarantine.loc[4, "raw"]) == {
        "request_id": "negative",
        "timestamp": "2026-11-20 10:00:00+00:00",
        "latency_ms": -5.0,
    }


def test_message_roles_are_normalised_and_unknown_roles_quarantined(tmp_path: Path) -> None:
    result = _clean(
        tmp_path,
        [
            {"session_id": "s", "timestamp": T, "role": " User", "content": "hi"},
            {"session_id": "s", "timestamp": T, "role": "robot", "content": "beep"},
        ],
        Kind.MESSAGES,
    )
    assert result.clean["role"].tolist() == ["user"]
    assert json.loads(result.quality["reasons"]) == {"role: expect_column_values_to_be_in_set": 1}
    assert result.quality["repaired"] == 1


def test_empty_partitions_are_well_formed(tmp_path: Path) -> None:
    result = _clean(tmp_path, [])
    assert result.quality["rows_in"] == 0 and result.clean.empty and result.quarantine.empty


def test_a_consumed_frame_cleans_the_same_and_is_emptied(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "requests-1.jsonl", DIRTY)
    source = SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*")
    extracted = extract_day(tmp_path, [source], Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    kept = clean_partition(extracted, Kind.REQUESTS, DAY)
    assert len(extracted.columns) > 20  # cleaning without `consume` leaves its input whole
    consumed = extracted.copy()
    result = clean_partition(consumed, Kind.REQUESTS, DAY, consume=True)
    pd.testing.assert_frame_equal(result.clean, kept.clean, check_exact=True)
    pd.testing.assert_frame_equal(result.quarantine, kept.quarantine, check_exact=True)
    assert result.quality == kept.quality
    assert list(consumed.columns) == ["_errors", "_repaired", "_raw"]  # the columns clean does not keep


def test_text_taken_a_piece_at_a_time_gives_the_same_clean_rows(tmp_path: Path, monkeypatch) -> None:
    # The clean step takes Arrow-backed text columns in pieces of TAKE_ROWS rows (one growing buffer per
    # column cost 0.35 GB at 4M messages); pieces of two rows over a duplicate and a bad row must change nothing.
    lines = [
        {"message_id": f"m{n}", "session_id": "s", "timestamp": T, "role": "user", "content": f"text {n}"}
        for n in range(7)
    ]
    lines.insert(3, lines[1])  # a duplicate
    lines.insert(5, {"message_id": "bad", "session_id": "s", "timestamp": T, "role": "narrator", "content": "x"})
    write_jsonl(tmp_path / "messages-1.jsonl", lines)
    source = SourceConfig(name="messages", kind=Kind.MESSAGES, pattern="messages*")
    extracted = extract_day(tmp_path, [source], Kind.MESSAGES, date(2026, 11, 20), "UTC").frame
    whole = clean_partition(extracted.copy(), Kind.MESSAGES, DAY, consume=True).clean
    monkeypatch.setattr(clean, "TAKE_ROWS", 2)
    pieces = clean_partition(extracted.copy(), Kind.MESSAGES, DAY, consume=True).clean
    assert pieces["content"].array.__arrow_array__().num_chunks == 4
    assert pieces["content"].tolist() == [f"text {n}" for n in range(7)]
    pd.testing.assert_frame_equal(pieces, whole)


def test_text_of_several_chunks_is_taken_chunk_by_chunk(monkeypatch) -> None:
    # A hand-off holds a chunk per row group; Arrow's take on a chunked array would join them into a copy first.
    chunks = [["a", "b", "c"], ["d", None], ["e", "f", "g", "h"], ["i"]]
    column = pd.Series(pd.array(pa.chunked_array([pa.array(c, pa.large_string()) for c in chunks]), dtype="str"))
    rows = np.array([0, 2, 5, 6, 7, 9])  # none of the second chunk, three of the third
    monkeypatch.setattr(clean, "TAKE_ROWS", 2)
    taken = pd.Series(clean._take(column, rows))
    assert taken.tolist() == ["a", "c", "e", "f", "g", "i"] == [column[row] for row in rows]
    assert [len(chunk) for chunk in taken.array.__arrow_array__().chunks] == [2, 2, 1, 1]
    assert clean._take(column, np.array([], dtype=np.int64)).tolist() == []
    for rows in ([9, 0, 5], [5, 5], [-1]):  # not ascending: taken as pandas takes them
        assert clean._take(column, np.array(rows)).tolist() == column.take(rows).tolist()


def test_role_spellings_are_normalised_whether_the_role_is_coded_or_text(tmp_path: Path) -> None:
    roles = ["User ", "user", "ASSISTANT", " system", "narrator"]
    lines = [
        {"message_id": f"m{n}", "session_id": "s", "timestamp": T, "role": role, "content": "x"}
        for n, role in enumerate(roles)
    ]
    write_jsonl(tmp_path / "messages-1.jsonl", lines)
    source = SourceConfig(name="messages", kind=Kind.MESSAGES, pattern="messages*")
    extracted = extract_day(tmp_path, [source], Kind.MESSAGES, date(2026, 11, 20), "UTC").frame
    assert isinstance(extracted["role"].dtype, pd.CategoricalDtype)  # extract codes it (schema.CODED)
    for frame in (extracted.copy(), extracted.astype({"role": "str"})):
        result = clean_partition(frame, Kind.MESSAGES, DAY)
        assert result.clean["role"].astype(str).tolist() == ["user", "user", "assistant", "system"]
        assert json.loads(result.quality["repairs"]) == {"role: normalised": 3}
        assert json.loads(result.quality["reasons"]) == {"role: expect_column_values_to_be_in_set": 1}
