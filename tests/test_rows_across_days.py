"""Every row in exactly one place across days: rows on days that are never run, unreadable files, identical lines.

The day runs here do what the assets raw_<kind> and clean_<kind> do (assets/ingest.py) on a SQLite
warehouse, with the days that can be run fixed, so that "today" can move; the field cases run the
real pipeline through the CLI (test_field_cases_rows.py).
"""

import json
import os
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from chatpulse.config import SourceConfig
from chatpulse.days import DayOutOfRange, DaySpan
from chatpulse.ingest.clean import clean_partition, derive_ids, quarantine_outside
from chatpulse.ingest.extract import could_hold, extract_day, read_source
from chatpulse.ingest.files import ExtractError
from chatpulse.schema import Kind
from chatpulse.warehouse import FileStamp, Warehouse, Write

from fixtures import write_jsonl

REQUESTS = SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*")
START, TODAY = date(2026, 11, 1), date(2026, 11, 29)


def run_day(store: Warehouse, landing: Path, day: date, span: DaySpan) -> None:
    """One day's raw and clean steps, as the assets do them."""
    extract = extract_day(landing, [REQUESTS], Kind.REQUESTS, day, span.tz, store.file_stamps(Kind.REQUESTS), span)
    bounds = (span.first.isoformat(), span.last.isoformat())
    store.save_stamps(Kind.REQUESTS, extract.stamps, quarantine_outside(extract.outside, Kind.REQUESTS, span), bounds)
    cleaned = clean_partition(extract.frame, Kind.REQUESTS, day.isoformat())
    store.replace_day(
        day.isoformat(),
        Write("requests", cleaned.clean),
        Write("quarantine", cleaned.quarantine, kind="requests"),
        Write("data_quality", pd.DataFrame([cleaned.quality]), kind="requests"),
    )


def outside_rows(store: Warehouse, span: DaySpan) -> pd.DataFrame:
    """The quarantine rows on days that cannot be run."""
    quarantine = store.read("quarantine")
    return quarantine[(quarantine["day"] < span.first.isoformat()) | (quarantine["day"] > span.last.isoformat())]


def accounted(store: Warehouse, span: DaySpan) -> int:
    """Rows counted on some day (clean, quarantined or duplicate) plus rows recorded as outside the range."""
    return int(store.read("data_quality", kind="requests")["rows_in"].sum()) + len(outside_rows(store, span))


def local_day(stamp: str, tz: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).date()


def utc(local: str, tz: str) -> str:
    """A local wall-clock time in tz, written as a UTC instant."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC).isoformat()


# Local wall-clock times around the edges of the range: the last second before start_date, the first of
# start_date, the last of today, the first of tomorrow, and far off either way.
EDGES = [
    "2026-10-31T23:59:59",
    "2026-11-01T00:00:00",
    "2026-11-15T12:00:00",
    "2026-11-29T23:59:59",
    "2026-11-30T00:00:00",
    "1970-01-01T00:00:00",
    "2099-01-01T12:00:00",
]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def test_rows_on_days_never_run_are_quarantined_once_whatever_reads_them(tmp_path: Path, tz: str) -> None:
    landing, span = tmp_path / "landing", DaySpan(START, TODAY, tz)
    first = [{"request_id": f"a{n}", "timestamp": utc(t, tz), "latency_ms": 5} for n, t in enumerate(EDGES)]
    second = [{"request_id": f"b{n}", "timestamp": utc(t, tz), "latency_ms": 5} for n, t in enumerate(EDGES[2:])]
    write_jsonl(landing / "requests-a.jsonl", first)
    path = write_jsonl(landing / "requests-b.jsonl", second)
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    for day in (date(2026, 11, 1), date(2026, 11, 15), date(2026, 11, 29), date(2026, 11, 15)):
        run_day(store, landing, day, span)
    os.utime(path)  # a changed file is read again by any day's run
    run_day(store, landing, date(2026, 11, 20), span)

    lines = {("requests-a.jsonl", n + 1): r for n, r in enumerate(first)}
    lines |= {("requests-b.jsonl", n + 1): r for n, r in enumerate(second)}
    days = {key: local_day(r["timestamp"], tz) for key, r in lines.items()}
    expected = {key: day for key, day in days.items() if not START <= day <= TODAY}
    recorded = outside_rows(store, span)
    assert sorted(zip(recorded["source_file"], recorded["source_line"], strict=True)) == sorted(expected)
    for row in recorded.itertuples():
        day = expected[(row.source_file, row.source_line)]
        assert row.day == day.isoformat()
        where = "before start_date" if day < START else "after today"
        assert json.loads(row.reasons) == [f"timestamp: outside the partition range ({where})"]
        assert row.record_id == lines[(row.source_file, row.source_line)]["request_id"]
    requests = store.read("requests")
    assert Counter(requests["day"]) == Counter(d.isoformat() for k, d in days.items() if k not in expected)
    assert accounted(store, span) == len(lines)


def test_a_row_after_today_is_counted_on_its_day_once_the_day_comes(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_jsonl(
        landing / "requests.jsonl",
        [{"timestamp": "2026-11-20T10:00:00Z"}, {"timestamp": "2026-11-29T10:00:00Z"}, {"timestamp": "soon"}],
    )
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    yesterday = DaySpan(START, TODAY - timedelta(days=1), "UTC")
    run_day(store, landing, date(2026, 11, 20), yesterday)
    assert outside_rows(store, yesterday)["day"].tolist() == ["2026-11-29"]
    assert accounted(store, yesterday) == 3

    today = DaySpan(START, TODAY, "UTC")
    run_day(store, landing, date(2026, 11, 29), today)
    assert outside_rows(store, today).empty
    assert store.read("requests", "2026-11-29")["source_line"].tolist() == [2]
    # The undated line stays on the file's busiest day (a tie: the earlier one), once.
    assert store.read("quarantine")[["day", "source_line"]].values.tolist() == [["2026-11-20", 3]]
    assert accounted(store, today) == 3


def test_undated_rows_of_a_file_whose_busiest_day_is_never_run_are_outside_too(tmp_path: Path) -> None:
    landing, span = tmp_path / "landing", DaySpan(START, TODAY, "UTC")
    write_jsonl(
        landing / "requests.jsonl",
        [
            {"timestamp": "2099-01-01T00:00:00Z"},
            {"timestamp": "2099-01-01T00:00:01Z"},
            {"timestamp": "2026-11-20T00:00:00Z"},
            {"timestamp": "soon"},
            {"latency_ms": 5},
        ],
    )
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    run_day(store, landing, date(2026, 11, 20), span)
    recorded = outside_rows(store, span).set_index("source_line")
    after = "timestamp: outside the partition range (after today)"
    assert recorded["day"].tolist() == ["2099-01-01"] * 4
    assert json.loads(recorded.loc[4, "reasons"]) == ["timestamp: unrecognised time format", after]
    assert json.loads(recorded.loc[5, "reasons"]) == ["timestamp: missing", after]
    assert accounted(store, span) == 5


def test_asking_for_a_day_that_is_never_run_names_the_days_that_are() -> None:
    span = DaySpan(START, TODAY, "Asia/Shanghai")
    span.check(START)
    span.check(TODAY)
    with pytest.raises(DayOutOfRange) as after:
        span.check(date(2099, 1, 1))
    assert str(after.value) == (
        "day 2099-01-01 is after today: the days that can be run are 2026-11-01 (start_date) "
        "to 2026-11-29 (today in Asia/Shanghai)"
    )
    with pytest.raises(DayOutOfRange, match=r"^day 2026-10-31 is before start_date 2026-11-01: the days that"):
        span.check(date(2026, 10, 31))
    with pytest.raises(DayOutOfRange, match="no day can be run before start_date 2026-12-01"):
        DaySpan(date(2026, 12, 1), TODAY, "UTC").check(TODAY)


def test_today_is_the_local_day_of_now() -> None:
    now = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # already the 30th in Shanghai
    assert DaySpan.through_today(START, "Asia/Shanghai", now).last == date(2026, 11, 30)
    assert DaySpan.through_today(START, "America/Los_Angeles", now).last == date(2026, 11, 29)


def _broken(path: Path, modified: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not gzip")
    if modified:
        stamp = datetime.fromisoformat(modified).timestamp()
        os.utime(path, (stamp, stamp))
    return path


@pytest.mark.parametrize(
    ("name", "modified", "stamp_days", "failing"),
    [
        # A day in the name, and the day either side (a name may be in UTC or another zone).
        ("requests-2026-11-25.jsonl.gz", None, (), {"2026-11-24", "2026-11-25", "2026-11-26"}),
        ("requests_20261125.jsonl.gz", None, (), {"2026-11-24", "2026-11-25", "2026-11-26"}),
        ("requests-2026-11-24-to-2026-11-25.jsonl.gz", None, (), {f"2026-11-{d}" for d in (23, 24, 25, 26)}),
        # No day in the name: every day up to its modification time's (local) day.
        ("requests-all.jsonl.gz", "2026-11-22T23:30:00+00:00", (), {f"2026-11-{d:02}" for d in range(1, 23)}),
        # The days it held when last read count as well.
        (
            "requests-2026-11-25.jsonl.gz",
            None,
            ("2026-11-05",),
            {"2026-11-05", "2026-11-24", "2026-11-25", "2026-11-26"},
        ),
    ],
)
def test_an_unreadable_file_fails_only_the_days_it_could_hold(
    tmp_path: Path, name: str, modified: str | None, stamp_days: tuple[str, ...], failing: set[str]
) -> None:
    landing = tmp_path / "landing"
    path = _broken(landing / name, modified)
    write_jsonl(landing / "requests-good.jsonl", [{"timestamp": f"2026-11-{d:02}T12:00:00Z"} for d in range(1, 30)])
    known = {name: FileStamp(0, 0, frozenset(stamp_days))} if stamp_days else None
    for number in range(1, 30):
        day = date(2026, 11, number)
        assert could_hold(path, day, "UTC", known and known[name]) == (day.isoformat() in failing)
        if day.isoformat() in failing:
            with pytest.raises(ExtractError, match=f"{name}: cannot read file"):
                extract_day(landing, [REQUESTS], Kind.REQUESTS, day, "UTC", known)
        else:
            extract = extract_day(landing, [REQUESTS], Kind.REQUESTS, day, "UTC", known)
            assert len(extract.frame) == 1 and list(extract.unreadable) == [name]
            assert extract.unreadable[name].endswith("cannot read file: Not a gzipped file (b'no')")


def test_the_modification_day_of_a_nameless_file_is_local(tmp_path: Path) -> None:
    path = _broken(tmp_path / "requests.jsonl.gz", "2026-11-22T20:00:00+00:00")  # the 23rd in Shanghai
    assert could_hold(path, date(2026, 11, 23), "Asia/Shanghai", None)
    assert not could_hold(path, date(2026, 11, 23), "UTC", None)


TRACE = [
    {"timestamp": "2026-11-20T10:00:00.000Z", "model": "m1", "latency_ms": 120, "prompt_tokens": 901},
    {"timestamp": "2026-11-20T10:00:00.000Z", "model": "m1", "latency_ms": 120, "prompt_tokens": 901},
    {"timestamp": "2026-11-20T10:00:01.000Z", "model": "m1", "latency_ms": 80, "prompt_tokens": 50},
]


@pytest.mark.parametrize(
    ("files", "clean", "duplicates"),
    [
        ([TRACE], 3, 0),  # identical lines of one file are separate calls
        ([TRACE, TRACE], 3, 3),  # the same file landed twice: every line of the copy is a duplicate
        ([TRACE, TRACE[:1]], 3, 1),  # a second file holding the first line once
        ([TRACE[:1], TRACE], 3, 1),  # ... or the first file holding it once, the second twice
        ([TRACE, [TRACE[0]] * 3], 4, 2),  # a third identical line in another file is a third call
        ([TRACE, [TRACE[2], TRACE[2]]], 4, 1),
    ],
)
def test_identical_lines_are_calls_within_a_file_and_duplicates_across_files(
    tmp_path: Path, files: list[list[dict]], clean: int, duplicates: int
) -> None:
    for number, records in enumerate(files):
        write_jsonl(tmp_path / f"requests-{number}.jsonl", records)
    # Counted another way: a line is a call as often as the file holding it most often holds it.
    most = Counter()
    for records in files:
        for line, count in Counter(json.dumps(r, sort_keys=True) for r in records).items():
            most[line] = max(most[line], count)
    assert (clean, duplicates) == (sum(most.values()), sum(map(len, files)) - sum(most.values()))
    extracted = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    result = clean_partition(extracted, Kind.REQUESTS, "2026-11-20")
    assert (result.quality["clean"], result.quality["duplicates"], result.quality["quarantined"]) == (
        clean,
        duplicates,
        0,
    )
    assert result.clean["request_id"].is_unique


def test_derived_ids_are_the_same_whichever_day_reads_the_file_and_however_often(tmp_path: Path) -> None:
    line = {"timestamp": "2026-11-20T10:00:00Z", "model": "m1", "prompt_tokens": 7}
    other = {"timestamp": "2026-11-21T10:00:00Z", "model": "m1", "prompt_tokens": 7}
    path = write_jsonl(tmp_path / "landing" / "requests.jsonl.gz", [line, other, line, other, line])
    # The ids of the whole file, numbered there: line 1, 3 and 5 are the 1st, 2nd and 3rd of their content.
    whole = derive_ids(read_source(path, REQUESTS, "requests.jsonl.gz"), Kind.REQUESTS).tolist()
    assert whole[2] == f"{whole[0]}-2" and whole[4] == f"{whole[0]}-3" and whole[3] == f"{whole[1]}-2"
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    span = DaySpan(START, TODAY, "UTC")
    for day in (date(2026, 11, 21), date(2026, 11, 20), date(2026, 11, 20), date(2026, 11, 21)):
        run_day(store, tmp_path / "landing", day, span)
    requests = store.read("requests").sort_values("source_line")
    assert requests["request_id"].tolist() == whole
    assert requests["day"].tolist() == ["2026-11-20", "2026-11-21", "2026-11-20", "2026-11-21", "2026-11-20"]
