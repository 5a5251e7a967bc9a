"""Read landing files and map them onto the canonical schema.

Reading is tolerant per line and strict per file: a malformed line becomes a
row with a reason (so it can be quarantined and nothing is lost), while a file
that cannot be read at all raises `ExtractError` naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pa_json

from chatpulse.config import LATENCY_UNITS, SourceConfig
from chatpulse.days import in_day, local_days
from chatpulse.schema import COLUMNS, SOURCE_FILE, SOURCE_LINE, Kind
from chatpulse.warehouse import FileStamp

ERRORS = "_errors"
RAW = "_raw"  # the original line, kept only for rows extract already found faulty
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TURN_KEYS = ("turns", "messages")
JSON_CHUNK_BYTES = 8 << 20
NEWLINE, CARRIAGE_RETURN, OPEN_BRACE, CLOSE_BRACE = b"\n\r{}"
# Arrow column types whose pandas columns equal what the line path builds from the same values
# (not null: the line path makes an all-null column float where a key is absent, else object).
FLAT_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean)


class ExtractError(RuntimeError):
    """A landing file cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class RawFile:
    """The records of one file as read, before any mapping."""

    records: pd.DataFrame
    lines: np.ndarray
    malformed: list[tuple[int, str]]
    text: bytes = b""

    def original_lines(self, numbers: Iterable[int]) -> dict[int, str]:
        """The file's own text of some lines, for the quarantine."""
        wanted = set(numbers)
        if not wanted:
            return {}
        lines = self.text.split(b"\n")
        return {n: lines[n - 1].decode("utf-8", errors="replace") for n in wanted if 0 < n <= len(lines)}


def _file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(JSON_SUFFIXES):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    raise ExtractError(f"{path}: unknown file type (expected .jsonl, .ndjson, .json or .csv, optionally .gz)")


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.name.lower().endswith(".gz") else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ExtractError(f"{path}: cannot read file: {exc}") from exc


def _expand_sessions(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One session per line with a list of turns -> one record per turn."""
    turns_key = next((key for key in TURN_KEYS if isinstance(record.get(key), list)), None)
    if turns_key is None:
        raise ValueError("session line has no 'turns' list")
    shared = {key: value for key, value in record.items() if key != turns_key}
    expanded = []
    for position, turn in enumerate(record[turns_key]):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {position} is not an object")
        expanded.append({**shared, **turn})
    return expanded


def _parse_lines(numbered: list[tuple[int, bytes]], layout: str) -> RawFile:
    """Line by line: slow, but it pins every malformed line to its number."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    for number, line in numbered:
        try:
            record = orjson.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            batch = _expand_sessions(record) if layout == "sessions" else [record]
        except (orjson.JSONDecodeError, ValueError) as exc:
            malformed.append((number, f"malformed JSON: {str(exc).split(':')[0]}"))
            continue
        records.extend(batch)
        lines.extend([number] * len(batch))
    # The index keeps a row for each record even when none has a key (lines of '{}').
    frame = pd.DataFrame.from_records(records, index=pd.RangeIndex(len(records)))
    return RawFile(frame, np.asarray(lines, dtype="int64"), malformed)


def _one_object_per_line(chunk: np.ndarray) -> bool:
    """Every line starts with '{' and ends with '}' (before an optional CR).

    Then no line is blank and no object spans two lines, so Arrow yields one row per
    line exactly when no line holds two objects: its row count proves the line numbers.
    Counting alone would pass '{"a":1}{"b":2}' followed by a blank line.
    """
    if chunk.size == 0 or chunk[-1] == NEWLINE:
        return False
    breaks = np.flatnonzero(chunk == NEWLINE)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [chunk.size])) - 1
    ends -= chunk[ends] == CARRIAGE_RETURN
    return bool((chunk[starts] == OPEN_BRACE).all() and (chunk[ends] == CLOSE_BRACE).all())


def _read_arrow(chunk: bytes, text_columns: Sequence[str]) -> pa.Table | None:
    """The chunk as an Arrow table with the given columns read as text, None if Arrow rejects it."""
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in text_columns]), unexpected_field_behavior="infer"
    )
    try:
        table = pa_json.read_json(pa.BufferReader(chunk), parse_options=options)
        table.validate(full=True)  # Arrow reads invalid UTF-8 that orjson rejects
    except pa.ArrowInvalid:
        return None
    return table


def _arrow_records(chunk: bytes, text_columns: Sequence[str]) -> pd.DataFrame | None:
    """A chunk's records through Arrow, exactly as the line path would give them, else None.

    Arrow builds columns several times faster than parsing line by line, but a record
    must not depend on the path it took: its metadata, hence its derived id, would then
    depend on its neighbours. So only flat columns come from Arrow, and `text_columns`
    (the ISO timestamps) are read as text rather than left for Arrow to take for times.
    """
    if not _one_object_per_line(np.frombuffer(chunk, dtype=np.uint8)):
        return None
    table = _read_arrow(chunk, text_columns)
    if table is None or table.num_rows != chunk.count(b"\n") + 1:
        return None
    if any(table.column(name).null_count == table.num_rows for name in text_columns):
        return None  # absent or all null: only the line path tells these apart
    for field in table.schema:
        # Past int64 Arrow reads an integer as a float, where orjson keeps it whole.
        if pa.types.is_floating(field.type) and (pc.max(pc.abs(table.column(field.name))).as_py() or 0) >= 2.0**63:
            return None
    nested = [field.name for field in table.schema if not any(flat(field.type) for flat in FLAT_TYPES)]
    records = table.drop_columns(nested).to_pandas()
    if nested:
        # Arrow's lists, objects, times and all-null columns differ from the line path's
        # (absent keys become null, ints floats, lists arrays, keys take the chunk's order,
        # ISO text turns naive UTC), so these columns are built as the line path does.
        try:
            parsed = [orjson.loads(line) for line in chunk.split(b"\n")]
        except orjson.JSONDecodeError:
            return None
        records = records.join(pd.DataFrame.from_records(parsed, columns=nested))[table.column_names]
    return records


def _parse_chunk(
    data: bytes, start: int, end: int, first_line: int, layout: str, text_columns: Sequence[str]
) -> RawFile:
    """The whole lines data[start:end] through Arrow's columnar JSON reader, else line by line.

    Only a chunk Arrow cannot read exactly as the line path would (a bad or blank line,
    nested sessions) is parsed line by line, so only that chunk pays the slow path.
    """
    end -= data.endswith(b"\n", start, end)
    chunk = data[start:end]
    records = _arrow_records(chunk, text_columns) if layout == "rows" else None
    if records is not None:
        return RawFile(records, np.arange(first_line, first_line + len(records), dtype="int64"), [])
    numbered = [(first_line + i, line) for i, line in enumerate(chunk.split(b"\n")) if line.strip()]
    return _parse_lines(numbered, layout)


def _read_jsonl(data: bytes, layout: str, text_columns: Sequence[str]) -> RawFile:
    blocks: list[RawFile] = []
    start, first_line = 0, 1
    while start < len(data):
        end = data.find(b"\n", start + JSON_CHUNK_BYTES)
        end = len(data) if end == -1 else end + 1
        blocks.append(_parse_chunk(data, start, end, first_line, layout, text_columns))
        start, first_line = end, first_line + data.count(b"\n", start, end)
    if not blocks:
        return RawFile(pd.DataFrame(), np.empty(0, dtype="int64"), [])
    return RawFile(
        pd.concat([block.records for block in blocks], ignore_index=True),
        np.concatenate([block.lines for block in blocks]),
        [entry for block in blocks for entry in block.malformed],
    )


def _read_csv(path: Path, data: bytes) -> RawFile:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractError(f"{path}: not UTF-8 text: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return RawFile(pd.DataFrame(), np.empty(0, dtype="int64"), [])
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    start = reader.line_num + 1
    try:
        for row in reader:
            if len(row) == len(header):
                rows.append(row)
                lines.append(start)
            elif any(row):  # a blank line is no record; a short or long one is malformed
                malformed.append((start, f"expected {len(header)} fields, got {len(row)}"))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ExtractError(f"{path}: line {reader.line_num}: {exc}") from exc
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)
    return RawFile(frame, np.asarray(lines, dtype="int64"), malformed)


def read_file(path: Path, layout: str = "rows", text_columns: Sequence[str] = ()) -> RawFile:
    """Read one landing file; malformed lines are reported, not raised.

    `text_columns` are kept as text in JSON files, not read as Arrow infers them.
    """
    fmt = _file_format(path)
    data = _read_bytes(path)
    raw = _read_csv(path, data) if fmt == "csv" else _read_jsonl(data, layout, text_columns)
    return replace(raw, text=data)


class _Problems:
    """Collects (row, reason) pairs and folds them into one list per row."""

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


def _to_json(values: pd.Series) -> pd.Series:
    """JSON text of each value; a mapping's null keys are left out, as if absent."""
    dumps = orjson.dumps
    return pd.Series(
        [
            value
            if value is None or isinstance(value, str)
            else dumps({k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value).decode()
            for value in values.to_numpy(dtype=object, na_value=None)
        ],
        index=values.index,
        dtype="str",
    )


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


def parse_timestamps(values: pd.Series, source: SourceConfig) -> pd.Series:
    """Parse a source's timestamps into UTC; unparseable values become NaT."""
    fmt = source.timestamp_format
    if fmt in ("epoch_s", "epoch_ms", "seconds_since"):
        numbers = pd.to_numeric(values, errors="coerce")
        if fmt == "seconds_since":
            origin = pd.Timestamp(source.timestamp_origin)
            if origin.tzinfo is None:
                origin = origin.tz_localize(source.naive_timezone)
            parsed = (origin + pd.to_timedelta(numbers, unit="s")).dt.tz_convert("UTC")
        else:
            parsed = pd.to_datetime(numbers, unit="s" if fmt == "epoch_s" else "ms", utc=True)
        return parsed.astype("datetime64[ns, UTC]")
    text = _to_string(values)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    if source.naive_timezone != "UTC":
        naive = text.notna() & ~text.astype(str).str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        if naive.any():
            local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
            parsed[naive] = local.dt.tz_localize(
                source.naive_timezone, ambiguous="NaT", nonexistent="NaT"
            ).dt.tz_convert("UTC")
    return parsed.astype("datetime64[ns, UTC]")


def _apply_failure_rule(frame: pd.DataFrame, source: SourceConfig) -> None:
    """Derive status and error type where the log has no status column (in place)."""
    rule = source.failure
    if rule is None:
        return
    failed = (frame[rule.column] == rule.equals).fillna(False).astype(bool)
    unknown = frame["status_code"].isna()
    frame["status_code"] = frame["status_code"].mask(unknown & failed, rule.status_code).mask(unknown & ~failed, 200)
    frame["error_type"] = frame["error_type"].mask(frame["error_type"].isna() & failed, rule.error_type)


def map_records(raw: RawFile, source: SourceConfig, label: str) -> pd.DataFrame:
    """Rename, convert and type one file's records; problems go to the errors column."""
    kind_columns = COLUMNS[source.kind]
    records = raw.records
    size = len(records)
    problems = _Problems(size)
    source_names = {source.source_column(name) for name in kind_columns}
    frame = pd.DataFrame(index=pd.RangeIndex(size))
    for name, value_kind in kind_columns.items():
        column = source.source_column(name)
        if column in records.columns:
            values = records[column].reset_index(drop=True)
        else:
            values = pd.Series(source.defaults.get(name), index=frame.index, dtype=object)
        if value_kind == "datetime":
            parsed = parse_timestamps(values, source)
            problems.add(_unreadable(values, parsed), f"{name}: unrecognised time format")
            frame[name] = parsed
        elif value_kind in ("int", "float"):
            numbers = _to_number(values, name, problems, integer=value_kind == "int")
            if name in ("latency_ms", "ttft_ms"):
                numbers = numbers * LATENCY_UNITS[source.latency_unit]
            frame[name] = numbers
        elif value_kind == "json":
            frame[name] = _to_json(values)
        else:
            frame[name] = _to_string(values)
    if source.kind == Kind.REQUESTS:
        _apply_failure_rule(frame, source)
        extras = [c for c in records.columns if c not in source_names]
        if extras and "metadata" not in source.columns:
            frame["metadata"] = _extras_json(records[extras], records.get("metadata"))
    frame[SOURCE_FILE] = label
    frame[SOURCE_LINE] = raw.lines
    frame[ERRORS] = problems.column()
    troubled = frame[ERRORS].notna().to_numpy()
    texts = raw.original_lines([*raw.lines[troubled], *(line for line, _ in raw.malformed)])
    frame[RAW] = pd.Series([texts.get(int(n)) for n in raw.lines[troubled]], index=frame.index[troubled], dtype=object)
    if raw.malformed:
        frame = pd.concat([frame, _malformed_rows(raw.malformed, texts, source.kind, label)], ignore_index=True)
    return frame


def _malformed_rows(malformed: list[tuple[int, str]], texts: dict[int, str], kind: Kind, label: str) -> pd.DataFrame:
    """Rows for lines that held no record: all values missing, typed like real rows."""
    rows = empty_frame(kind).reindex(pd.RangeIndex(len(malformed)))
    rows[SOURCE_FILE] = label
    rows[SOURCE_LINE] = [line for line, _ in malformed]
    rows[ERRORS] = [[f"line: {reason}"] for _, reason in malformed]
    rows[RAW] = [texts.get(line) for line, _ in malformed]
    return rows


def read_source(path: Path, source: SourceConfig, label: str) -> pd.DataFrame:
    """One landing file read and mapped onto its kind's canonical columns.

    ISO timestamps are read as text, so that they are parsed here and only here.
    """
    texts = (source.source_column("timestamp"),) if source.timestamp_format == "iso" else ()
    return map_records(read_file(path, source.layout, texts), source, label)


def home_day(frame: pd.DataFrame, tz: str, path: Path) -> date:
    """The day a file's undatable rows are filed under: its busiest day, else its mtime's."""
    days = local_days(frame["timestamp"].dropna(), tz)
    if len(days):
        counts = days.value_counts()
        return counts[counts == counts.max()].index.min().date()
    return pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC").tz_convert(tz).date()


def touched_days(frame: pd.DataFrame, tz: str, path: Path) -> set[str]:
    """The local days a file's rows fall on, its undatable rows counted on its home day."""
    days = {day.date().isoformat() for day in local_days(frame["timestamp"].dropna(), tz).unique()}
    if frame["timestamp"].isna().any():
        days.add(home_day(frame, tz, path).isoformat())
    return days


def landing_files(landing_dir: Path, sources: Iterable[SourceConfig], kind: Kind) -> list[tuple[Path, SourceConfig]]:
    """The files of a kind in the landing folder, each with the first source it matches."""
    matched: dict[Path, SourceConfig] = {}
    for source in sources:
        if source.kind != kind:
            continue
        for path in sorted(landing_dir.glob(source.pattern)):
            if path.is_file():
                matched.setdefault(path, source)
    return sorted(matched.items())


@dataclass(frozen=True)
class Extract:
    """The rows of one kind that belong to one local day, and what was read to find them."""

    frame: pd.DataFrame
    stamps: dict[str, FileStamp]


def extract_day(
    landing_dir: Path,
    sources: Iterable[SourceConfig],
    kind: Kind,
    day: date,
    tz: str,
    known: Mapping[str, FileStamp] | None = None,
) -> Extract:
    """Every row of `kind` whose timestamp falls on `day`, from whichever file it came.

    Files whose stamp in `known` is unchanged and does not list the day are skipped,
    so a daily run reads only what can matter while a late file is still picked up.
    """
    known = known or {}
    day_key = day.isoformat()
    parts: list[pd.DataFrame] = []
    stamps: dict[str, FileStamp] = {}
    for path, source in landing_files(landing_dir, sources, kind):
        label = path.relative_to(landing_dir).as_posix()
        stamp = known.get(label)
        if stamp is not None and stamp.unchanged(path) and day_key not in stamp.days:
            continue
        stat = path.stat()
        frame = read_source(path, source, label)
        stamps[label] = FileStamp(stat.st_size, stat.st_mtime_ns, frozenset(touched_days(frame, tz, path)))
        keep = in_day(frame["timestamp"], day, tz).fillna(False)
        undated = frame["timestamp"].isna()
        if undated.any() and home_day(frame, tz, path) == day:
            keep |= undated
        parts.append(frame[keep.to_numpy(dtype=bool)])
    if not parts:
        return Extract(empty_frame(kind), stamps)
    return Extract(pd.concat(parts, ignore_index=True), stamps)


def empty_frame(kind: Kind) -> pd.DataFrame:
    """A zero-row frame with the canonical columns of a kind, correctly typed."""
    dtypes = {"string": "str", "json": "str", "int": "Int64", "float": "float64", "datetime": "datetime64[ns, UTC]"}
    columns = {name: pd.Series(dtype=dtypes[value_kind]) for name, value_kind in COLUMNS[kind].items()}
    columns[SOURCE_FILE] = pd.Series(dtype=object)
    columns[SOURCE_LINE] = pd.Series(dtype="int64")
    columns[ERRORS] = pd.Series(dtype=object)
    columns[RAW] = pd.Series(dtype=object)
    return pd.DataFrame(columns)
