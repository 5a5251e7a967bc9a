"""Fuzzed landing files through extract and clean: nothing raises, every non-blank line ends in exactly one place.

hypothesis writes request, message and feedback files (JSONL and CSV, gzip or not) holding garbage lines,
wrong types, huge numbers, NaN and Infinity, odd zones and offsets, byte order marks, CRLF, lone surrogates,
invalid UTF-8, NUL, long values, identical lines and rows on any day (before start_date, on the days that can
be run, after today). Every day the files touch is then extracted and cleaned as the assets raw_<kind> and
clean_<kind> do (assets/ingest.py), and each non-blank line, counted from the bytes written, must be found in
exactly one of: a clean table, the day's quarantine, the day's duplicates, or the rows recorded as outside the
partition range. The examples are derandomised and bounded, so CI sees the same files every run.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatpulse.config import SourceConfig
from chatpulse.days import DaySpan
from chatpulse.ingest.clean import clean_partition, derive_ids, quarantine_outside
from chatpulse.ingest.extract import extract_day
from chatpulse.schema import COLUMNS, ID_COLUMN, SOURCE_FILE, SOURCE_LINE, Kind

# The days that can be run: rows are drawn around them, and far outside.
SPAN_FIRST, SPAN_LAST = date(2026, 11, 1), date(2026, 11, 4)
ZONES = ["UTC", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Chatham", "Europe/London"]
SURROGATE = re.compile("[\ud800-\udfff]")

# ---- values -------------------------------------------------------------------------------------------

NEAR_DAYS = st.dates(min_value=date(2026, 10, 29), max_value=date(2026, 11, 7))
FAR_DAYS = st.sampled_from([date(1, 1, 1), date(1677, 9, 21), date(1970, 1, 1), date(2262, 4, 12), date(9999, 12, 31)])
OFFSETS = ["", "", "Z", "z", "+08", "+0800", "+08:00", "-0930", " UTC", "+14:00", "-12", "+25:00", " GMT", "+5"]


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """ISO-ish text: any day, a time that may be cut short or past midnight, and any zone spelling."""
    day = draw(st.one_of(NEAR_DAYS, NEAR_DAYS, FAR_DAYS))
    hour = draw(st.integers(0, 25))
    clock = draw(st.sampled_from([f"T{hour:02d}:30:00", f" {hour:02d}:59:59.999999999", f"t{hour:02d}", ""]))
    return f"{day.isoformat()}{clock}{draw(st.sampled_from(OFFSETS)) if clock else ''}"


EPOCHS = st.one_of(
    st.integers(1_761_000_000, 1_763_500_000),  # epoch seconds of late 2025: a unit off for epoch_ms
    st.integers(1_792_000_000, 1_793_500_000).map(lambda s: s * 1000),  # milliseconds of the fortnight before the span
    st.integers(-(2**70), 2**70),
)
# Any code point, with lone surrogates (which hypothesis leaves out by default), NUL, BOM and line separators.
TEXT = st.one_of(st.characters(), st.sampled_from(["\ud83d", "\udc00", "\x00", "\ufeff", "\u2028", "\x85", "\x0b"]))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),  # past 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(TEXT, max_size=12),
    st.sampled_from(["", " ", "\x00", "\ud83d", "\ufeff", "$x^2$", "NaN", "-Infinity", "1e309", "0x10", "user "]),
)
VALUES = st.one_of(
    SCALARS,
    iso_times(),
    EPOCHS,
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
LONG = st.sampled_from([40, 200, 5000]).map(lambda n: "é" * n)


def values_for(kind: Kind, name: str) -> st.SearchStrategy:
    """Wild values: odd ones of the column's own kind, or anything at all."""
    own = {
        "datetime": st.one_of(iso_times(), iso_times(), EPOCHS),
        "int": st.one_of(st.integers(0, 5000), st.integers(-(2**70), 2**70)),
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "string": st.one_of(
            st.sampled_from(["u1", "s1", "gpt-4o", "user", "Assistant "]), st.text(TEXT, max_size=8), LONG
        ),
        "json": st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
    }[COLUMNS[kind][name]]
    return st.one_of(own, VALUES)


SPAN_MS = (1_793_491_200_000, 1_793_836_799_999)  # 2026-11-01 to 2026-11-04 UTC, in epoch milliseconds
GOOD_TIMES = st.builds(
    lambda day, hour, zone: f"{day.isoformat()}T{hour:02d}:15:00{zone}",
    st.dates(min_value=SPAN_FIRST, max_value=SPAN_LAST),
    st.integers(0, 23),
    st.sampled_from(["", "Z", "+08:00", "-0500"]),
)
GOOD = {
    "int": st.integers(0, 5000),
    "float": st.floats(0, 5000),
    "string": st.sampled_from(["u1", "u2", "s1", "gpt-4o"]),
    "json": st.dictionaries(st.sampled_from(["k", "j"]), st.integers(0, 3), max_size=2),
}
GOOD_NAMED = {
    "status_code": st.sampled_from([200, 200, 429, 500]),
    "role": st.sampled_from(["user", "assistant", "Assistant "]),
    "rating": st.sampled_from([-1, 1, 5]),
}


def good_value(kind: Kind, name: str, epoch: bool) -> st.SearchStrategy:
    """A value clean keeps: the timestamp on a day that can be run, in the source's format."""
    if name == "timestamp":
        return st.integers(*SPAN_MS) if epoch and kind == Kind.REQUESTS else GOOD_TIMES
    if name == ID_COLUMN[kind]:
        return st.sampled_from([None, "a", "b"])  # shared ids make duplicates
    return GOOD_NAMED.get(name, GOOD.get(COLUMNS[kind][name]))


@st.composite
def records(draw: st.DrawFn, kind: Kind, epoch: bool) -> dict:
    """A record clean would keep, then some columns dropped and a few made wild, maybe an unknown one added."""
    names = list(COLUMNS[kind])
    record = {name: draw(good_value(kind, name, epoch)) for name in names}
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        del record[name]
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=3)):
        record[name] = draw(values_for(kind, name))
    if draw(st.integers(0, 5)) == 0:
        record[draw(st.text(max_size=4))] = draw(SCALARS)
    return record


# A UTF-16 or UTF-32 byte order mark starting a file makes it read as that encoding (chatpulse.ingest.text):
# the whole file then stands or falls with it, so garbage never starts with one.
WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)
GARBAGE = st.one_of(
    st.binary(max_size=30).filter(lambda garbage: not garbage.startswith(WIDE_BOMS)),
    st.sampled_from([b"{", b"[1,2]", b"null", b'"text"', b'{"a":1}{"b":2}', b"\xff{}", b"\x00", b"\xef\xbb\xbf"]),
    st.text(TEXT, max_size=20).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
)

# ---- files -------------------------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    """Text as bytes, lone surrogates written as the invalid UTF-8 a careless writer leaves."""
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def jsonl_lines(draw: st.DrawFn, kind: Kind, epoch: bool) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 9))
        if choice <= 5:
            record = draw(records(kind, epoch))
            # Python writes NaN and Infinity bare, and a lone surrogate escaped or raw.
            ascii_only = draw(st.booleans())
            line = _utf8(json.dumps(record, allow_nan=True, ensure_ascii=ascii_only, default=str))
            if draw(st.integers(0, 6)) == 0:
                line = codecs.BOM_UTF8 + line
        elif choice == 6 and lines:
            line = draw(st.sampled_from(lines))  # an identical line
        elif choice == 7:
            line = draw(st.sampled_from([b"", b"  ", b"\t"]))
        else:
            line = draw(GARBAGE)
        lines.append(line.replace(b"\n", b" ").replace(b"\r", b" "))
    return lines


def _csv_field(value: object) -> str:
    """One value as CSV text on one line: line breaks would join lines into one record (CSV's own rule)."""
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, allow_nan=True, default=str)
    return text.replace("\n", " ").replace("\r", " ")


@st.composite
def csv_lines(draw: st.DrawFn, kind: Kind, epoch: bool) -> list[bytes]:
    """A header of some columns, then rows, identical rows, blank lines and quote-free garbage.

    Garbage keeps its quotes balanced: a stray quote opens a field that runs to the next one, which is
    CSV's rule for a field holding line breaks, so lines after it are one record by design.
    """
    names = list(COLUMNS[kind])
    header = draw(st.lists(st.sampled_from([*names, "extra"]), unique=True, min_size=1, max_size=len(names)))
    lines = [",".join(header).encode()]
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 9))
        if choice <= 5:
            record = draw(records(kind, epoch))
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow([_csv_field(record.get(name)) for name in header])
            line = _utf8(buffer.getvalue())
        elif choice == 6 and len(lines) > 1:
            line = draw(st.sampled_from(lines[1:]))
        elif choice == 7:
            line = b""
        else:
            line = draw(GARBAGE).replace(b'"', b"'")
        lines.append(line.replace(b"\n", b" ").replace(b"\r", b" "))
    return lines


@st.composite
def landing_files(draw: st.DrawFn, epoch: bool) -> dict[str, list[bytes]]:
    """File name -> its lines, 0-2 files per kind in any format, gzipped or not."""
    files = {}
    for kind in Kind:
        for number in range(draw(st.integers(0, 2))):
            fmt = draw(st.sampled_from(["jsonl", "csv"]))
            lines = draw(jsonl_lines(kind, epoch) if fmt == "jsonl" else csv_lines(kind, epoch))
            files[f"{kind.value}-{number}.{fmt}{'.gz' if draw(st.booleans()) else ''}"] = lines
    return files


def write_files(landing: Path, files: dict[str, list[bytes]], bom: bool, crlf: bool) -> None:
    for name, lines in files.items():
        data = (codecs.BOM_UTF8 if bom else b"") + (b"\r\n" if crlf else b"\n").join(lines)
        if lines and lines[-1] != b"" and crlf:  # CRLF files end with a line break, LF files without one
            data += b"\r\n"
        (landing / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)


def non_blank_lines(files: dict[str, list[bytes]], bom: bool) -> set[tuple[str, int]]:
    """(file, line number) of every line that should hold a record, from the lines as written.

    Blank: a JSONL line of whitespace only, a CSV line with nothing on it. A CSV file's first line is its
    header. A byte order mark starting a file is the file's, not its first line's.
    """
    wanted = set()
    for name, lines in files.items():
        csv_file = ".csv" in name
        for number, line in enumerate(lines, start=1):
            if csv_file and number == 1:
                continue
            if number == 1:
                line = ((codecs.BOM_UTF8 if bom else b"") + line).removeprefix(codecs.BOM_UTF8)
            if line.strip() if not csv_file else line:
                wanted.add((name, number))
    return wanted


# ---- the property --------------------------------------------------------------------------------


def _text_cells(frame: pd.DataFrame) -> list[str]:
    return [cell for column in frame.columns for cell in frame[column].tolist() if isinstance(cell, str)]


def _assert_storable(frame: pd.DataFrame, what: str) -> None:
    """Text any database's UTF-8 text column takes: no NUL, no lone surrogate."""
    for cell in _text_cells(frame):
        assert "\x00" not in cell, f"NUL in {what}"
        assert not SURROGATE.search(cell), f"lone surrogate in {what}"


def place_every_line(landing: Path, sources: list[SourceConfig], kind: Kind, span: DaySpan) -> Counter:
    """(file, line) -> how many places it was found in, over every day the files touch, as the assets run them."""
    probe = extract_day(landing, sources, kind, span.first, span.tz, None, span)
    places: Counter = Counter()
    outside = quarantine_outside(probe.outside, kind, span)
    _assert_storable(outside, "outside quarantine")
    assert outside["day"].map(lambda day: span.where(date.fromisoformat(day)) is not None).all()
    places.update(zip(outside[SOURCE_FILE], outside[SOURCE_LINE], strict=True))
    touched = sorted(set().union(*(stamp.days for stamp in probe.stamps.values())))
    for day in (date.fromisoformat(d) for d in touched):
        if span.where(day) is not None:
            continue
        extract = extract_day(landing, sources, kind, day, span.tz, probe.stamps, span)
        frame = extract.frame.reset_index(drop=True)
        cleaned = clean_partition(frame, kind, day.isoformat())
        quality = cleaned.quality
        assert quality["rows_in"] == len(frame) == quality["clean"] + quality["quarantined"] + quality["duplicates"]
        _assert_storable(cleaned.clean, "clean rows")
        _assert_storable(cleaned.quarantine, "quarantine")
        kept = set(zip(cleaned.clean[SOURCE_FILE], cleaned.clean[SOURCE_LINE], strict=True))
        rejected = set(zip(cleaned.quarantine[SOURCE_FILE], cleaned.quarantine[SOURCE_LINE], strict=True))
        # A duplicate is a row in neither, whose id (derived as clean derives it) a kept row has.
        ids = derive_ids(frame, kind)
        lines = list(zip(frame[SOURCE_FILE], frame[SOURCE_LINE], strict=True))
        duplicates = [line for line in lines if line not in kept and line not in rejected]
        assert len(duplicates) == quality["duplicates"]
        kept_ids = set(cleaned.clean[ID_COLUMN[kind]])
        assert all(ids[n] in kept_ids for n, line in enumerate(lines) if line in duplicates)
        places.update([*kept, *rejected, *duplicates])
        assert len(kept) == quality["clean"] and len(rejected) == quality["quarantined"]
    return places


def test_a_csv_line_of_only_separators_with_the_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    """Found by the fuzz test: such a line was taken for a blank one and dropped without a trace."""
    (tmp_path / "feedback-0.csv").write_bytes(b"feedback_id,timestamp,rating\n,,,\n\na,2026-11-02T10:00:00Z,1\n")
    source = SourceConfig(name="feedback", kind=Kind.FEEDBACK, pattern="feedback-*")
    extract = extract_day(tmp_path, [source], Kind.FEEDBACK, date(2026, 11, 2), "UTC")
    cleaned = clean_partition(extract.frame, Kind.FEEDBACK, "2026-11-02")
    assert cleaned.quarantine[SOURCE_LINE].tolist() == [2]
    assert json.loads(cleaned.quarantine["reasons"].iat[0])[0] == "line: expected 3 fields, got 4"
    assert cleaned.clean[SOURCE_LINE].tolist() == [4]  # line 3 is blank: no record


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    epoch_files=st.booleans().flatmap(lambda epoch: st.tuples(st.just(epoch), landing_files(epoch))),
    tz=st.sampled_from(ZONES),
    naive_zone=st.sampled_from(["UTC", "America/New_York", "Australia/Lord_Howe"]),
    field_limit=st.sampled_from([None, 64]),
    bom=st.booleans(),
    crlf=st.booleans(),
)
def test_fuzzed_files_never_raise_and_every_line_lands_once(
    epoch_files: tuple[bool, dict[str, list[bytes]]],
    tz: str,
    naive_zone: str,
    field_limit: int | None,
    bom: bool,
    crlf: bool,
) -> None:
    epoch, files = epoch_files  # requests' timestamps in epoch milliseconds, else ISO text
    span = DaySpan(SPAN_FIRST, SPAN_LAST, tz)
    timestamp = {"format": "epoch_ms"} if epoch else {"format": "iso", "timezone": naive_zone}
    sources = [
        SourceConfig(
            name=kind.value,
            kind=kind,
            pattern=f"{kind.value}-*",
            timestamp=timestamp if kind == Kind.REQUESTS else {"format": "iso", "timezone": naive_zone},
            max_field_bytes=field_limit,
        )
        for kind in Kind
    ]
    with TemporaryDirectory() as folder:
        landing = Path(folder)
        write_files(landing, files, bom, crlf)
        for kind in Kind:
            mine = {name: lines for name, lines in files.items() if name.startswith(f"{kind.value}-")}
            places = place_every_line(landing, sources, kind, span)
            wanted = non_blank_lines(mine, bom)
            assert set(places) == wanted, f"{kind}: lost {wanted - set(places)}, invented {set(places) - wanted}"
            assert all(count == 1 for count in places.values()), f"{kind}: in two places: {places.most_common(3)}"
