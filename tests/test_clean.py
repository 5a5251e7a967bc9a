import json
from datetime import date
from pathlib import Path

import pandas as pd

from chatpulse.config import SourceConfig
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.schema import Kind

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
