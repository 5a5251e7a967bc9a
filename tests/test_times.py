"""Any time value a log holds either parses or quarantines its row with a reason; none fails a file or a run.

Expected instants are worked out a second way: Python's datetime with an explicit offset, or
zoneinfo for wall-clock times (the documented rule for DST gaps and folds is zoneinfo's fold=0).
"""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from readpaths import both_read_paths

from chatpulse.config import SourceConfig, parse_source
from chatpulse.ingest.extract import ERRORS, read_source
from chatpulse.ingest.times import OUTSIDE, UNRECOGNISED, parse_timestamps
from chatpulse.schema import Kind

from fixtures import clean_every_day, write_jsonl


def _source(**raw: object) -> SourceConfig:
    return parse_source({"kind": "requests", "pattern": "requests*", **raw}, "source")


def _at(*fields: int, hours: float = 0, micro: int = 0) -> pd.Timestamp:
    """The UTC instant of a wall-clock time written with a fixed offset of `hours`."""
    zone = timezone(timedelta(hours=hours))
    return pd.Timestamp(datetime(*fields, microsecond=micro, tzinfo=zone).astimezone(UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-28 18:00:00+08", _at(2026, 8, 28, 18, hours=8)),
        ("2026-08-28T18:00:00+0800", _at(2026, 8, 28, 18, hours=8)),
        ("2026-08-28T18:00:00+08:00", _at(2026, 8, 28, 18, hours=8)),
        ("2026-08-28T18:00:00-03:30", _at(2026, 8, 28, 18, hours=-3.5)),
        ("2026-08-28T18:00:00-0330", _at(2026, 8, 28, 18, hours=-3.5)),
        ("2026-08-28T18:00:00+14:00", _at(2026, 8, 28, 18, hours=14)),
        ("2026-08-28T18:00:00Z", _at(2026, 8, 28, 18)),
        ("2026-08-28T18:00:00z", _at(2026, 8, 28, 18)),
        ("2026-08-28t18:00:00z", _at(2026, 8, 28, 18)),
        ("2026-08-28 18:00:00 UTC", _at(2026, 8, 28, 18)),
        ("2026-08-28 18:00:00 +08:00", _at(2026, 8, 28, 18, hours=8)),
        ("  2026-08-28T18:00:00.250+08  ", _at(2026, 8, 28, 18, hours=8, micro=250_000)),
        ("2026-08-28T18:00:00,5Z", _at(2026, 8, 28, 18, micro=500_000)),
        ("20260828T180000+0800", _at(2026, 8, 28, 18, hours=8)),
        ("2026-08-28T18+08", _at(2026, 8, 28, 18, hours=8)),
    ],
)
def test_every_way_of_writing_an_offset(text: str, expected: pd.Timestamp) -> None:
    # A naive zone far from every offset above, so an offset read as naive would show.
    parsed = parse_timestamps(pd.Series([text], dtype=object), _source(timestamp={"timezone": "Pacific/Kiritimati"}))
    assert parsed.utc.tolist() == [expected]
    assert parsed.problems.tolist() == [None]


def test_nanoseconds_are_kept() -> None:
    parsed = parse_timestamps(pd.Series(["2026-08-28T18:00:00.123456789+08"]), _source())
    assert parsed.utc.iloc[0] == pd.Timestamp("2026-08-28T10:00:00Z") + pd.Timedelta(123456789, unit="ns")


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai", "America/Santiago"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_naive_and_zoned_values_mixed_in_one_file(tmp_path: Path, tz: str, fmt: str) -> None:
    walls = [datetime(2026, 8, 28, 1, 30), datetime(2026, 8, 28, 18), datetime(2026, 11, 20), datetime(2026, 8, 28, 23)]
    texts = [
        "2026-08-28 01:30:00",
        "2026-08-28 18:00:00+08",
        "2026-11-20",
        "2026-08-28T23:00:00.000000-05:00",
    ]
    zone = ZoneInfo(tz)
    expected = [
        pd.Timestamp(walls[0].replace(tzinfo=zone).astimezone(UTC)),
        _at(2026, 8, 28, 18, hours=8),
        pd.Timestamp(walls[2].replace(tzinfo=zone).astimezone(UTC)),
        _at(2026, 8, 28, 23, hours=-5),
    ]
    path = tmp_path / f"requests.{fmt}"
    if fmt == "csv":
        path.write_text("request_id,start\n" + "".join(f"r{i},{t}\n" for i, t in enumerate(texts)))
    else:
        write_jsonl(path, [{"request_id": f"r{i}", "start": t} for i, t in enumerate(texts)])
    source = _source(columns={"timestamp": "start"}, timestamp={"timezone": tz})
    frame = read_source(path, source, path.name)
    assert frame["timestamp"].tolist() == expected
    assert frame[ERRORS].isna().all()


# Wall-clock times next to a change of offset, every 15 minutes over the night, in zones whose
# changes differ: a one-hour DST gap and fold (New York), a southern one (Santiago, where the
# gap skips midnight), a 30-minute one (Lord Howe), a fold that is no DST (Moscow 2014), a day
# skipped whole (Apia 2011-12-30).
NIGHTS = [
    ("America/New_York", "2026-03-08"),
    ("America/New_York", "2026-11-01"),
    ("America/Santiago", "2024-09-07"),
    ("America/Santiago", "2024-04-06"),
    ("Australia/Lord_Howe", "2026-04-05"),
    ("Australia/Lord_Howe", "2026-10-04"),
    ("Europe/Moscow", "2014-10-26"),
    ("Pacific/Apia", "2011-12-29"),
]


@pytest.mark.parametrize(("tz", "night"), NIGHTS)
def test_dst_gaps_and_folds_read_with_the_offset_before_the_change(tz: str, night: str) -> None:
    walls = pd.date_range(f"{night} 20:00", periods=4 * 36, freq="15min")
    texts = pd.Series(walls.strftime("%Y-%m-%d %H:%M:%S"), dtype=object)
    parsed = parse_timestamps(texts, _source(timestamp={"timezone": tz}))
    zone = ZoneInfo(tz)
    expected = [pd.Timestamp(wall.to_pydatetime().replace(tzinfo=zone).astimezone(UTC)) for wall in walls]
    assert parsed.utc.tolist() == expected
    assert parsed.problems.isna().all()


def test_the_gap_and_fold_rule_in_plain_words() -> None:
    texts = pd.Series(["2026-03-08 02:30:00", "2026-11-01 01:30:00"], dtype=object)
    parsed = parse_timestamps(texts, _source(timestamp={"timezone": "America/New_York"}))
    # 02:30 does not exist: it is 03:30 summer time (07:30 UTC). 01:30 happens twice: the first, in summer time.
    assert parsed.utc.tolist() == [_at(2026, 3, 8, 2, 30, hours=-5), _at(2026, 11, 1, 1, 30, hours=-4)]


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00",
        "0001-01-01",
        "2262-04-11T23:59:59Z",
        "1677-09-21T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
    ],
)
def test_years_a_timestamp_cannot_hold_are_said_to_be_out_of_range(text: str) -> None:
    # Beside a nanosecond value, pandas reads the whole column at nanoseconds: the odd one must still be told apart.
    values = pd.Series([text, "2026-11-20T10:00:00.123456789Z", "9999-12-31T23:59:59.999999999Z"], dtype=object)
    for tz in ("UTC", "America/New_York"):
        parsed = parse_timestamps(values, _source(timestamp={"timezone": tz}))
        assert parsed.problems.tolist() == [OUTSIDE, None, OUTSIDE]
        assert parsed.utc.isna().tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("fmt", "values", "expected"),
    [
        ("epoch_s", [1787911200, "1787911200", 1787911200.25, " 1787911200 "], [0, 0, 250_000_000, 0]),
        ("epoch_ms", [1787911200001, "1787911200001", 1787911200000.5], [1_000_000, 1_000_000, 500_000]),
        ("epoch_us", [1787911200000001, "1787911200000001"], [1_000, 1_000]),
        ("epoch_ns", [1787911200000000001, "1787911200000000001"], [1, 1]),
    ],
)
def test_epoch_units_are_exact(fmt: str, values: list, expected: list[int]) -> None:
    parsed = parse_timestamps(pd.Series(values, dtype=object), _source(timestamp=fmt))
    start = pd.Timestamp("2026-08-28T10:00:00Z")  # 1787911200 s after 1970-01-01 UTC
    assert parsed.utc.tolist() == [start + pd.Timedelta(ns, unit="ns") for ns in expected]
    assert parsed.problems.isna().all()


@pytest.mark.parametrize(
    ("fmt", "value", "looks_like"),
    [
        ("epoch_s", 1787911200000, "epoch_ms"),  # read as seconds: about the year 58 600
        ("epoch_s", 1787911200000000000, "epoch_ns"),
        ("epoch_ms", 1787911200000000, "epoch_us"),
        ("epoch_us", 1787911200000000000, "epoch_ns"),
        ("epoch_ms", -1e300, None),
        ("epoch_ns", float("inf"), None),
        ("seconds_since", 1e20, None),
    ],
)
def test_a_number_far_outside_its_unit_is_quarantined_never_a_far_year(fmt: str, value: float, looks_like: str) -> None:
    timestamp = {"format": fmt, "origin": "2023-01-01"} if fmt == "seconds_since" else fmt
    parsed = parse_timestamps(pd.Series([value, 0], dtype=object), _source(timestamp=timestamp))
    hint = f" (it looks like {looks_like})" if looks_like else ""
    assert parsed.problems.tolist() == [f"{OUTSIDE} as {fmt}{hint}", None]
    assert pd.isna(parsed.utc.iloc[0]) and parsed.utc.iloc[1].year in (1970, 2023)


def test_seconds_since_an_origin_in_a_dst_gap() -> None:
    source = _source(
        timestamp={"format": "seconds_since", "origin": "2026-03-08 02:30", "timezone": "America/New_York"}
    )
    parsed = parse_timestamps(pd.Series([0, 60.5]), source)
    assert parsed.utc.tolist() == [_at(2026, 3, 8, 2, 30, hours=-5), _at(2026, 3, 8, 2, 31, hours=-5, micro=500_000)]


GARBAGE = ["soon", "", "   ", None, True, False, {"t": 1}, [1, 2], float("nan"), float("inf"), 2**70, -(2**70),
           "2026-13-45T99:99:99Z", "2026-11-20T10:00:00+25:00", "1e400", "0x10", "NaT", "\u0000", "\ufffd"]  # fmt: skip


@pytest.mark.parametrize("timestamp", ["iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", {"format": "seconds_since",
                                       "origin": "2026-01-01", "timezone": "Europe/Paris"}])  # fmt: skip
def test_no_value_raises_and_each_is_a_time_a_reason_or_missing(timestamp: object) -> None:
    values = pd.Series([*GARBAGE, "2026-11-20T10:00:00Z", 1787911200], dtype=object)
    parsed = parse_timestamps(values, _source(timestamp=timestamp))
    missing = values.map(lambda v: v is None or (isinstance(v, str) and not v.strip()) or v != v)
    # Exactly one of: an instant, a reason, or nothing was there.
    outcome = parsed.utc.notna().astype(int) + parsed.problems.notna().astype(int) + missing.astype(int)
    assert outcome.tolist() == [1] * len(values)
    assert parsed.problems.dropna().map(lambda r: r.startswith((OUTSIDE, UNRECOGNISED, "not a number"))).all()


def test_the_arrow_and_line_paths_read_the_same_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamps = ["2026-11-20T10:00:00+08", "2026-11-20T10:00:00z", "2026-11-20 10:00:00", "9999-12-31T23:59:59Z"]
    path = write_jsonl(
        tmp_path / "requests.jsonl", [{"request_id": str(i), "timestamp": t} for i, t in enumerate(stamps)]
    )
    source = _source(timestamp={"timezone": "Asia/Shanghai"})
    arrow = both_read_paths(path, source, monkeypatch)  # checks Arrow read it, then compares the line path
    assert arrow[ERRORS].tolist() == [None, None, None, [f"timestamp: {OUTSIDE}"]]


def test_every_time_row_ends_in_exactly_one_place_across_days(tmp_path: Path) -> None:
    rows = [
        {"request_id": "a", "timestamp": "2026-11-20T10:00:00+08"},
        {"request_id": "b", "timestamp": "2026-11-20T23:30:00"},  # naive, Shanghai: the 20th
        {"request_id": "c", "timestamp": "2026-11-21T00:30:00z"},  # the 21st in Shanghai
        {"request_id": "d", "timestamp": "9999-12-31T23:59:59Z"},
        {"request_id": "e", "timestamp": "0001-01-01"},
        {"request_id": "f", "timestamp": "2026-03-08 02:30:00"},
        {"request_id": "g", "timestamp": "soon"},
        {"request_id": "h", "timestamp": 1787911200},  # a number in an ISO column
        {"request_id": "a", "timestamp": "2026-11-20T10:00:00+08"},  # the same id again
        {"request_id": "i"},
    ]
    write_jsonl(tmp_path / "requests-1.jsonl", rows)
    outcomes = clean_every_day(
        tmp_path, [_source(timestamp={"timezone": "Asia/Shanghai"})], Kind.REQUESTS, "Asia/Shanghai"
    )
    totals = {
        key: sum(o.quality[key] for o in outcomes.values()) for key in ("rows_in", "clean", "quarantined", "duplicates")
    }
    assert totals == {"rows_in": len(rows), "clean": 4, "quarantined": 5, "duplicates": 1}
    clean = sorted(rid for o in outcomes.values() for rid in o.clean["request_id"])
    assert clean == ["a", "b", "c", "f"]
    reasons = [r for o in outcomes.values() for r in o.quarantine["reasons"]]
    assert sum(f"timestamp: {OUTSIDE}" in r for r in reasons) == 2
    assert sum(f"timestamp: {UNRECOGNISED}" in r for r in reasons) == 2
    # Quarantined rows without a time are filed once, under the file's busiest day.
    assert sorted(o.quality["day"] for o in outcomes.values() if o.quality["quarantined"]) == ["2026-11-20"]
