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
from pathlib import Path

import numpy as np
import pandas as pd

from chatpulse.config import LATENCY_UNITS, SourceConfig
from chatpulse.days import DaySpan, local_days
from chatpulse.ingest import blocks
from chatpulse.ingest.convert import Problems, extras_json, to_json, to_number, to_string
from chatpulse.ingest.daycache import DayCache
from chatpulse.ingest.files import ExtractError, RawFile, read_file
from chatpulse.ingest.paths import Resolver, read_column, top_keys
from chatpulse.ingest.text import NUL_REMOVED, longer_than, without_nul
from chatpulse.ingest.times import parse_timestamps
from chatpulse.mapping import split_path
from chatpulse.schema import COLUMNS, FREE_TEXT, SOURCE_FILE, SOURCE_LINE, Kind, coded, stacked
from chatpulse.tokens import to_canonical
from chatpulse.warehouse import FileStamp

ERRORS = "_errors"
RAW = "_raw"  # the original line, kept only for rows extract already found faulty
REPAIRED = "_repaired"  # the names of the repairs a row's text took to be read
FILE_TIME = "timestamp: its file's modification time"  # the repair of a time the record does not hold
DAY = "_day"  # the day an outside-the-range row is filed under (Extract.outside)
# Starts the reason of a line that held no record: its row has no fields for an expectation to judge.
UNREADABLE = "line: "
NAMED_DAY = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")


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


def mapped_records(raw: RawFile, source: SourceConfig, label: str, parts: list[pd.DataFrame] | None = None) -> Mapped:
    """map_records, with the paths that reached no record (chatpulse.ingest.paths reads every column).

    `parts`: the file's records in the blocks they were read in (files.read_file), in place of
    `raw.records`. They are mapped a group of blocks at a time and taken from the list (emptied) as they
    are, so a file's records and its mapped rows are never both held whole; each row maps as in the file's
    records concatenated (chatpulse.ingest.blocks), a source default applying where a path reaches no
    record of the whole file.
    """
    parts = [raw.records] if parts is None else parts
    like = blocks.template(parts)
    reached = _reached(parts, source, like.columns) if len(parts) > 1 else None
    frames: list[pd.DataFrame] = []
    resolved: set[str] = set()
    start = 0
    for records in blocks.groups(parts, like):
        frame, found = _map_block(records, raw, raw.lines[start : start + len(records)], source, label, reached)
        frames.append(frame)
        start += len(records)
        resolved |= found
    if raw.malformed:  # joined with the records a column at a time, not copied whole with them (pd.concat)
        frames.append(_malformed_rows(raw.malformed, source.kind, label)[list(frames[0].columns)])
    frame = blocks.joined(frames)
    # A malformed line's row holds its reason in ERRORS, so every row whose original line is kept is troubled.
    troubled = frame[ERRORS].notna().to_numpy()
    lines = frame[SOURCE_LINE].to_numpy()[troubled]
    texts = raw.original_lines(lines, source.field_limit)
    frame[RAW] = pd.Series([texts.get(int(n)) for n in lines], index=frame.index[troubled], dtype=object)
    inputs = dict.fromkeys(path for name in COLUMNS[source.kind] for path in source.inputs(name))
    return Mapped(frame, tuple(path for path in inputs if path not in resolved))


def _reached(parts: list[pd.DataFrame], source: SourceConfig, columns: pd.Index) -> set[str]:
    """The nested paths the source reads that reach a record of any of the parts (of `columns`)."""
    paths = {
        path
        for name in COLUMNS[source.kind]
        for path in source.inputs(name)
        if path not in columns and len(split_path(path)) > 1 and split_path(path)[0] in columns
    }
    reached: set[str] = set()
    for records in parts:
        resolver = Resolver(records)
        reached |= {path for path in paths - reached if resolver.read(path).found}
    return reached


def _map_block(
    records: pd.DataFrame, raw: RawFile, lines: np.ndarray, source: SourceConfig, label: str, reached: set[str] | None
) -> tuple[pd.DataFrame, set[str]]:
    """Some of a file's records (on `lines`) mapped, without RAW, and the paths that reached one of them.
    `reached`: the nested paths that reach a record of the file, when these are not all its records."""
    kind_columns = COLUMNS[source.kind]
    size = len(records)
    problems, repairs = Problems(size), Problems(size)
    resolver = Resolver(records, reached)
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
            numbers = to_number(values, name, problems, integer=value_kind == "int")
            if name in ("latency_ms", "ttft_ms") and not read.milliseconds:
                numbers = numbers * LATENCY_UNITS[source.latency_unit]
            frame[name] = numbers
        elif value_kind == "json":
            frame[name] = to_json(values, problems, name)
        else:
            frame[name] = to_string(values, blank_is_missing=name not in FREE_TEXT)
    if source.kind == Kind.REQUESTS:
        _apply_failure_rule(frame, source)
        to_canonical(frame, source.token_convention)
        extras = [c for c in records.columns if c not in source_names and c not in source.drop]
        if extras and "metadata" not in source.columns:
            own = None if "metadata" in source.drop else records.get("metadata")
            frame["metadata"] = extras_json(records[extras], own, problems)
    texts = [name for name, value_kind in kind_columns.items() if value_kind in ("string", "json")]
    held_nul = _check_texts(frame, texts, raw, source.field_limit, problems)
    for repair, rows in _line_repairs(raw, lines, {NUL_REMOVED: held_nul}).items():
        repairs.add(rows, repair)
    frame[SOURCE_FILE] = label
    frame[SOURCE_LINE] = lines
    frame[ERRORS] = problems.column()
    frame[REPAIRED] = repairs.column()
    return frame, resolver.resolved


def _file_time(utc: pd.Series, problems: pd.Series, source: SourceConfig, raw: RawFile) -> tuple[pd.Series, np.ndarray]:
    """Times, with the file's modification time where a record holds none and the source's
    `timestamp.fallback` has file_time (its format holds no time), and which rows got it (a repair,
    so the data quality says how many); an unreadable time stays a problem."""
    if "file_time" not in source.timestamp.fallback or raw.modified is None:
        return utc, np.zeros(len(utc), dtype=bool)
    missing = (utc.isna() & problems.isna()).to_numpy(dtype=bool)
    return utc.mask(missing, pd.Timestamp(raw.modified, unit="s", tz="UTC")), missing


def _check_texts(frame: pd.DataFrame, names: list[str], raw: RawFile, limit: int, problems: Problems) -> np.ndarray:
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


def _line_repairs(raw: RawFile, lines: np.ndarray, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`fixed` (repair name -> rows) with the repairs reading made to whole lines added to the records on `lines`.

    A NUL byte removed from a line and a NUL escape removed from a value are one repair of one row.
    """
    repaired: dict[str, list[int]] = {}
    for line, repair in raw.repaired:
        repaired.setdefault(repair, []).append(line)
    for repair, numbers in repaired.items():
        rows = np.isin(lines, numbers)
        fixed[repair] = fixed[repair] | rows if repair in fixed else rows
    return fixed


def _malformed_rows(malformed: list[tuple[int, str]], kind: Kind, label: str) -> pd.DataFrame:
    """Rows for lines that held no record: all values missing (RAW too), typed like real rows."""
    rows = empty_frame(kind).reindex(pd.RangeIndex(len(malformed)))
    rows[SOURCE_FILE] = label
    rows[SOURCE_LINE] = [line for line, _ in malformed]
    rows[ERRORS] = [[f"{UNREADABLE}{reason}"] for _, reason in malformed]
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
    """read_source, with the paths that reached no record of the file (Mapped); mapped a block at a time."""
    parts: list[pd.DataFrame] = []
    raw = read_file(path, source.layout, text_columns(source), source.records, parts)
    return mapped_records(raw, source, label, parts or None)  # none from a file without a line


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
            parts.append(coded(hit.frame))
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
        if span is not None:
            beyond = span.outside(days).to_numpy()
            outside.append(frame[beyond].assign(**{DAY: _day_names(days[beyond]).to_numpy()}))
        on_day = (days == pd.Timestamp(day)).to_numpy()
        # A file of the day alone is not copied; its labels are coded as it is added, not when all are read.
        parts.append(coded(frame if on_day.all() else frame[on_day]))
        mapped = frame = days = None  # its rows of the day are held in `parts` alone, for stacked to free as it joins
    empty = empty_frame(kind)
    return Extract(
        stacked(parts, consume=True) if parts else empty,
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
