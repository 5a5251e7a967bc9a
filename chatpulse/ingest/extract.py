"""Map landing files onto the canonical schema and gather a day's rows from every file.

A row whose values cannot be read keeps its reasons in ERRORS (and its original line in
RAW) so clean can quarantine it; nothing is dropped here. A row whose text had to be
repaired to be read (NUL, lone surrogates) names the repairs in REPAIRED, for clean to count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from chatpulse.config import LATENCY_UNITS, SourceConfig
from chatpulse.days import DaySpan, local_days
from chatpulse.ingest.daycache import DayCache
from chatpulse.ingest.files import ExtractError, RawFile, read_file
from chatpulse.ingest.paths import Resolver, read_column, top_keys
from chatpulse.ingest.text import NUL_REMOVED, longer_than, without_nul
from chatpulse.ingest.times import parse_timestamps
from chatpulse.mapping import split_path
from chatpulse.schema import COLUMNS, SOURCE_FILE, SOURCE_LINE, Kind
from chatpulse.tokens import to_canonical
from chatpulse.warehouse import FileStamp

ERRORS = "_errors"
RAW = "_raw"  # the original line, kept only for rows extract already found faulty
REPAIRED = "_repaired"  # the names of the repairs a row's text took to be read
FILE_TIME = "timestamp: its file's modification time"  # the repair of a time the record does not hold
DAY = "_day"  # the day an outside-the-range row is filed under (Extract.outside)
NAMED_DAY = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")


class _Problems:
    """Collects (row, reason) pairs and folds them into one list per row (problems or repairs)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: list[np.ndarray] = []
        self.reasons: list[str] = []

    def add(self, mask: pd.Series | np.ndarray, reason: str) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if positions.size:
            self.rows.append(positions)
            self.reasons.append(reason)

    def column(self) -> np.ndarray:
        folded = np.full(self.size, None, dtype=object)
        for positions, reason in zip(self.rows, self.reasons, strict=True):
            for position in positions:
                if folded[position] is None:
                    folded[position] = []
                folded[position].append(reason)
        return folded


def _unreadable(values: pd.Series, converted: pd.Series) -> pd.Series:
    """Rows that held a value (not blank) which the conversion could not read."""
    lost = converted.isna() & values.notna()
    if lost.any() and not pd.api.types.is_numeric_dtype(values):
        lost[lost] = values[lost].astype(str).str.strip() != ""
    return lost


def _to_string(values: pd.Series) -> pd.Series:
    """Text values, missing ones kept missing (numbers such as user ids become text)."""
    return values if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object else values.astype("str")


def _to_number(values: pd.Series, name: str, problems: _Problems, integer: bool) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
    else:
        numbers = pd.to_numeric(values.astype(object), errors="coerce")
    problems.add(_unreadable(values, numbers), f"{name}: not a number")
    numbers = numbers.astype("float64")
    if not integer:
        return numbers
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    problems.add(fractional, f"{name}: not an integer")
    too_big = numbers.abs() >= 2.0**63  # past a 64-bit integer: a garbled value, quarantined, not a crash
    problems.add(too_big, f"{name}: out of range")
    return numbers.where(~fractional & ~too_big).astype("Int64")


def json_value(value: Any) -> Any:
    """A value JSON has no type for, as JSON holds it: what a database gives besides text, numbers and mappings
    (a NUMERIC as a number, a time as ISO 8601 text, bytes as hex, anything else as its text). For orjson's default."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _to_json(values: pd.Series) -> pd.Series:
    """JSON text of each value; a mapping's null keys are left out, as if absent."""

    def dumps(value: Any) -> str:
        if value is None or isinstance(value, str):
            return value
        mapping = {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
        return orjson.dumps(mapping, default=json_value).decode()

    # Rows often share one parsed object (files._flat_objects): each object is written once. The ids
    # stay unique while `held` keeps every value alive.
    held = values.to_numpy(dtype=object, na_value=None)
    done: dict[int, str] = {}
    texts = []
    for value in held:
        text = done.get(id(value))
        if text is None:
            text = done[id(value)] = dumps(value)
        texts.append(text)
    return pd.Series(texts, index=values.index, dtype="str")


def _extras_json(extras: pd.DataFrame, own: pd.Series | None) -> pd.Series:
    """Unmapped source columns kept in the request's metadata beside its own keys, absent values left out.

    A record's own `metadata` wins over an unmapped column of the same name; one that is not
    a mapping is kept under "metadata".
    """
    rows = extras.astype(object).where(extras.notna(), None).to_dict("records")
    if own is not None:
        rows = [_merged(row, value) for row, value in zip(rows, own.astype(object), strict=True)]
    metadata = _to_json(pd.Series(rows, dtype=object))
    return metadata.mask(metadata == "{}")


def _merged(extras: dict[str, Any], own: Any) -> dict[str, Any]:
    if own is None or (isinstance(own, float) and np.isnan(own)):
        return extras
    return {**extras, **own} if isinstance(own, dict) else {**extras, "metadata": own}


def _apply_failure_rule(frame: pd.DataFrame, source: SourceConfig) -> None:
    """Derive status and error type where the log has no status column (in place)."""
    rule = source.failure
    if rule is None:
        return
    failed = (frame[rule.column] == rule.equals).fillna(False).astype(bool)
    unknown = frame["status_code"].isna()
    frame["status_code"] = frame["status_code"].mask(unknown & failed, rule.status_code).mask(unknown & ~failed, 200)
    frame["error_type"] = frame["error_type"].mask(frame["error_type"].isna() & failed, rule.error_type)


@dataclass(frozen=True)
class Mapped:
    """One file's records mapped (`frame`, see map_records) and the paths its source reads that
    reached no record of the file (`unresolved`, in the order the canonical columns name them)."""

    frame: pd.DataFrame
    unresolved: tuple[str, ...]


def map_records(raw: RawFile, source: SourceConfig, label: str) -> pd.DataFrame:
    """Rename, convert and type one file's records; problems go to ERRORS, repairs to REPAIRED."""
    return mapped_records(raw, source, label).frame


def mapped_records(raw: RawFile, source: SourceConfig, label: str) -> Mapped:
    """map_records, with the paths that reached no record (chatpulse.ingest.paths reads every column)."""
    kind_columns = COLUMNS[source.kind]
    records = raw.records
    size = len(records)
    problems, repairs = _Problems(size), _Problems(size)
    resolver = Resolver(records)
    source_names = {key for name in kind_columns for path in source.inputs(name) for key in top_keys(path)}
    frame = pd.DataFrame(index=pd.RangeIndex(size))
    for name, value_kind in kind_columns.items():
        read = read_column(resolver, source, name)
        for rows, reason in read.problems:
            problems.add(rows, f"{name}: {reason}")
        values = read.values  # where no path reaches a record: none, or what a derived value gives for none
        if not read.found and name in source.defaults:
            values = pd.Series(source.defaults[name], index=frame.index, dtype=object)
        if value_kind == "datetime":
            times = parse_timestamps(values, source)
            for reason in times.problems.dropna().unique():
                problems.add(times.problems == reason, f"{name}: {reason}")
            frame[name], dated = _file_time(times.utc, times.problems, source, raw)
            repairs.add(dated, FILE_TIME)
        elif value_kind in ("int", "float"):
            numbers = _to_number(values, name, problems, integer=value_kind == "int")
            if name in ("latency_ms", "ttft_ms") and not read.milliseconds:
                numbers = numbers * LATENCY_UNITS[source.latency_unit]
            frame[name] = numbers
        elif value_kind == "json":
            frame[name] = _to_json(values)
        else:
            frame[name] = _to_string(values)
    if source.kind == Kind.REQUESTS:
        _apply_failure_rule(frame, source)
        to_canonical(frame, source.token_convention)
        extras = [c for c in records.columns if c not in source_names and c not in source.drop]
        if extras and "metadata" not in source.columns:
            own = None if "metadata" in source.drop else records.get("metadata")
            frame["metadata"] = _extras_json(records[extras], own)
    texts = [name for name, value_kind in kind_columns.items() if value_kind in ("string", "json")]
    held_nul = _check_texts(frame, texts, raw, source.field_limit, problems)
    for repair, rows in _line_repairs(raw, {NUL_REMOVED: held_nul}).items():
        repairs.add(rows, repair)
    frame[SOURCE_FILE] = label
    frame[SOURCE_LINE] = raw.lines
    frame[ERRORS] = problems.column()
    frame[REPAIRED] = repairs.column()
    troubled = frame[ERRORS].notna().to_numpy()
    texts = raw.original_lines([*raw.lines[troubled], *(line for line, _ in raw.malformed)], source.field_limit)
    frame[RAW] = pd.Series([texts.get(int(n)) for n in raw.lines[troubled]], index=frame.index[troubled], dtype=object)
    if raw.malformed:
        frame = pd.concat([frame, _malformed_rows(raw.malformed, texts, source.kind, label)], ignore_index=True)
    inputs = dict.fromkeys(path for name in kind_columns for path in source.inputs(name))
    return Mapped(frame, tuple(path for path in inputs if path not in resolver.resolved))


def _file_time(utc: pd.Series, problems: pd.Series, source: SourceConfig, raw: RawFile) -> tuple[pd.Series, np.ndarray]:
    """Times, with the file's modification time where a record holds none and the source's
    `timestamp.fallback` has file_time (its format holds no time), and which rows got it (a repair,
    so the data quality says how many); an unreadable time stays a problem."""
    if "file_time" not in source.timestamp.fallback or raw.modified is None:
        return utc, np.zeros(len(utc), dtype=bool)
    missing = (utc.isna() & problems.isna()).to_numpy(dtype=bool)
    return utc.mask(missing, pd.Timestamp(raw.modified, unit="s", tz="UTC")), missing


def _check_texts(frame: pd.DataFrame, names: list[str], raw: RawFile, limit: int, problems: _Problems) -> np.ndarray:
    """Remove NUL from text columns and note values over `limit` bytes as problems (in place).

    Returns the rows that held a NUL (bool array). Both look at the file's bytes first, so a
    file without NUL and no longer than the limit costs nothing.
    """
    nul, long = raw.may_hold_nul(), raw.byte_size() > limit
    held_nul = np.zeros(len(frame), dtype=bool)
    for name in names if nul or long else ():
        if nul:
            frame[name], held = without_nul(frame[name])
            held_nul |= held
        if long:
            problems.add(longer_than(frame[name], limit), f"{name}: longer than max_field_bytes ({limit})")
    return held_nul


def _line_repairs(raw: RawFile, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`fixed` (repair name -> rows) with the repairs reading made to whole lines added to their records.

    A NUL byte removed from a line and a NUL escape removed from a value are one repair of one row.
    """
    lines: dict[str, list[int]] = {}
    for line, repair in raw.repaired:
        lines.setdefault(repair, []).append(line)
    for repair, numbers in lines.items():
        rows = np.isin(raw.lines, numbers)
        fixed[repair] = fixed[repair] | rows if repair in fixed else rows
    return fixed


def _malformed_rows(malformed: list[tuple[int, str]], texts: dict[int, str], kind: Kind, label: str) -> pd.DataFrame:
    """Rows for lines that held no record: all values missing, typed like real rows."""
    rows = empty_frame(kind).reindex(pd.RangeIndex(len(malformed)))
    rows[SOURCE_FILE] = label
    rows[SOURCE_LINE] = [line for line, _ in malformed]
    rows[ERRORS] = [[f"line: {reason}"] for _, reason in malformed]
    rows[RAW] = [texts.get(line) for line, _ in malformed]
    return rows


def text_columns(source: SourceConfig) -> tuple[str, ...]:
    """The record keys read as text whatever they look like: a top-level ISO timestamp, so that it is
    parsed here and only here (a nested one comes as the line path reads it, text)."""
    keys = split_path(source.source_column("timestamp"))
    return keys if source.timestamp_format == "iso" and len(keys) == 1 else ()


def read_source(path: Path, source: SourceConfig, label: str) -> pd.DataFrame:
    """One landing file read and mapped onto its kind's canonical columns."""
    return read_mapped(path, source, label).frame


def read_mapped(path: Path, source: SourceConfig, label: str) -> Mapped:
    """read_source, with the paths that reached no record of the file (Mapped)."""
    return mapped_records(read_file(path, source.layout, text_columns(source), source.records), source, label)


def filed_days(frame: pd.DataFrame, tz: str, path: Path) -> pd.Series:
    """The local day each row is filed under, as a naive midnight (chatpulse.days.local_days).

    A row's own timestamp decides; a row without one goes to its file's busiest day, else (no
    row of the file is dated) to the day of the file's modification time, so it is counted once.
    """
    days = local_days(frame["timestamp"], tz)
    undated = days.isna()
    if not undated.any():
        return days
    counts = days[~undated].value_counts()
    if len(counts):
        home = counts[counts == counts.max()].index.min()
    else:
        home = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC").tz_convert(tz).tz_localize(None).normalize()
    return days.where(~undated, home)


def _day_names(days: pd.Series) -> pd.Series:
    """Naive midnights as YYYY-MM-DD (isoformat pads years before 1000, which strftime may not)."""
    return days.map({day: day.date().isoformat() for day in days.unique()})


def touched_days(frame: pd.DataFrame, tz: str, path: Path) -> set[str]:
    """The local days (YYYY-MM-DD) a file's rows are filed under, runnable or not."""
    return set(_day_names(filed_days(frame, tz, path).drop_duplicates()))


def _named_days(name: str) -> list[date]:
    """The calendar days written in a file name (2026-11-20, 2026_11_20 or 20261120)."""
    days = []
    for match in NAMED_DAY.finditer(name):
        try:
            days.append(date(*(int(part) for part in match.groups())))
        except ValueError:  # eight digits that are no date
            continue
    return days


def could_hold(path: Path, day: date, tz: str, stamp: FileStamp | None) -> bool:
    """Whether a file that cannot be read might hold rows of `day`, so that day cannot be run without it.

    Yes for the days it held when last read (its stamp); else, when its name holds days, for those
    and the day either side (a name may be written in UTC or another zone); else for every day up
    to the local day of its modification time, as a log holds nothing written after it last changed.
    """
    if stamp is not None and day.isoformat() in stamp.days:
        return True
    named = _named_days(path.name)
    if named:
        return min(named) - timedelta(days=1) <= day <= max(named) + timedelta(days=1)
    try:
        modified = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC").tz_convert(tz).date()
    except OSError:  # gone: nothing tells which days it held
        return True
    return day <= modified


def landing_files(landing_dir: Path, sources: Iterable[SourceConfig], kind: Kind) -> list[tuple[Path, SourceConfig]]:
    """The files of a kind in the landing folder, each with the first source it matches."""
    matched: dict[Path, SourceConfig] = {}
    for source in sources:
        if source.kind != kind or source.pattern is None:  # a SQL source reads no file
            continue
        for path in sorted(landing_dir.glob(source.pattern)):
            if path.is_file():
                matched.setdefault(path, source)
    return sorted(matched.items())


@dataclass(frozen=True)
class Extract:
    """The rows of one kind that belong to one local day, and what was read to find them.

    `outside` holds the rows of the files read that are filed on a day that cannot be run, with
    that day (YYYY-MM-DD) in the DAY column; `unreadable` the files that could not be read but
    cannot hold the day either (file name: error), skipped; `unresolved` the paths of each file
    read whose source reads them and no record of the file holds (file name: paths, see Mapped).
    `stamps` names the files parsed; `cached` those whose rows of the day came from a DayCache instead.
    """

    frame: pd.DataFrame
    stamps: dict[str, FileStamp]
    outside: pd.DataFrame
    unreadable: dict[str, str]
    unresolved: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cached: tuple[str, ...] = ()


def extract_day(
    landing_dir: Path,
    sources: Iterable[SourceConfig],
    kind: Kind,
    day: date,
    tz: str,
    known: Mapping[str, FileStamp] | None = None,
    span: DaySpan | None = None,
    cache: DayCache | None = None,
) -> Extract:
    """Every row of `kind` filed on `day` (see filed_days), from whichever file it came.

    Files whose stamp in `known` is unchanged and does not list the day are skipped,
    so a daily run reads only what can matter while a late file is still picked up.
    The rows of the files read that fall outside `span` (when given) are gathered in
    `outside`, whatever day is run. A file that cannot be read raises ExtractError
    (naming the file) only when it could hold the day (could_hold); else it is skipped.
    A landing folder that does not exist raises ExtractError when a source of `kind` reads
    files: an unmounted or mistyped folder must fail the run, not replace the day's rows with none.

    With a `cache`, every row returned (frame and outside) has gone through `cache.protect`, and a file
    whose stamp is unchanged gives its rows of the day from the cache when it holds them; a file parsed
    for the first time (stamp unknown or changed) leaves there, when `span` is given, its rows of every
    other day that can be run, so a run over many days parses each file once.
    """
    sources = tuple(sources)
    if any(s.kind == kind and s.pattern is not None for s in sources) and not landing_dir.is_dir():
        raise ExtractError(f"landing folder {landing_dir.resolve()} does not exist (see landing_dir)")
    known = known or {}
    day_key = day.isoformat()
    parts: list[pd.DataFrame] = []
    outside: list[pd.DataFrame] = []
    stamps: dict[str, FileStamp] = {}
    unreadable: dict[str, str] = {}
    unresolved: dict[str, tuple[str, ...]] = {}
    cached: list[str] = []
    files = [
        (path.relative_to(landing_dir).as_posix(), path, source)
        for path, source in landing_files(landing_dir, sources, kind)
    ]
    if cache is not None and span is not None:
        cache.keep_only(label for label, _, _ in files)
    for label, path, source in files:
        stamp = known.get(label)
        held = stamp is not None and stamp.unchanged(path)
        if held and day_key not in stamp.days:
            continue
        hit = cache.read(label, stamp, day_key) if held and cache is not None else None
        if hit is not None:
            parts.append(hit.frame)
            unresolved[label] = hit.unresolved
            cached.append(label)
            continue
        stat = path.stat()
        try:
            mapped = read_mapped(path, source, label)
        except ExtractError as exc:
            if could_hold(path, day, tz, stamp):
                raise
            unreadable[label] = str(exc)
            continue
        frame, unresolved[label] = mapped.frame, mapped.unresolved
        days = filed_days(frame, tz, path)
        stamps[label] = FileStamp(stat.st_size, stat.st_mtime_ns, frozenset(_day_names(days.drop_duplicates())))
        if cache is not None:
            cache.protect(frame)
            if span is not None and not held:
                others = days.drop_duplicates()[lambda d: (d != pd.Timestamp(day)) & ~span.outside(d)]
                rows = ((d.date().isoformat(), frame[(days == d).to_numpy()]) for d in others)
                cache.write(label, stamps[label], rows, mapped.unresolved)
        parts.append(frame[(days == pd.Timestamp(day)).to_numpy()])
        if span is not None:
            beyond = span.outside(days).to_numpy()
            outside.append(frame[beyond].assign(**{DAY: _day_names(days[beyond]).to_numpy()}))
    empty = empty_frame(kind)
    return Extract(
        pd.concat(parts, ignore_index=True) if parts else empty,
        stamps,
        pd.concat(outside, ignore_index=True) if outside else empty.assign(**{DAY: pd.Series(dtype=object)}),
        unreadable,
        unresolved,
        tuple(cached),
    )


def extract_repairs(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The repairs extract made to a frame's rows: repair name -> bool Series on the frame's index.

    A frame from before REPAIRED existed (or built by hand) has none.
    """
    if REPAIRED not in frame.columns:
        return {}
    named: dict[str, list[int]] = {}
    done = frame[REPAIRED]
    for position in np.flatnonzero(done.notna().to_numpy()):
        for repair in done.iat[position]:
            named.setdefault(str(repair), []).append(int(position))
    masks = {}
    for repair, positions in named.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[positions] = True
        masks[repair] = pd.Series(mask, index=frame.index)
    return masks


def empty_frame(kind: Kind) -> pd.DataFrame:
    """A zero-row frame with the canonical columns of a kind, correctly typed."""
    dtypes = {"string": "str", "json": "str", "int": "Int64", "float": "float64", "datetime": "datetime64[ns, UTC]"}
    columns = {name: pd.Series(dtype=dtypes[value_kind]) for name, value_kind in COLUMNS[kind].items()}
    columns[SOURCE_FILE] = pd.Series(dtype=object)
    columns[SOURCE_LINE] = pd.Series(dtype="int64")
    columns[ERRORS] = pd.Series(dtype=object)
    columns[REPAIRED] = pd.Series(dtype=object)
    columns[RAW] = pd.Series(dtype=object)
    return pd.DataFrame(columns)
