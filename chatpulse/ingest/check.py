"""Check a configuration against its landing folder: what each source reads, and the mapping mistakes.

A mapping mistake does not fail a run: a column name with a typo reads as an empty column, a
pattern that matches nothing reads as a quiet day, and the report shows zeros that look real.
So they are found here and said out loud, by `chatpulse check` before a run and by the
raw_<kind> assets during one. Files are read through the pipeline's own reader and mapping
(`read_file`, `read_source`), but only their first rows (`DEFAULT_ROWS`), so a check of a big
folder stays quick. No value of a column that may hold what a person wrote is ever shown; other
values are masked (`privacy.mask`) and shortened.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import json
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path
from typing import IO

import pandas as pd

from chatpulse.byteorder import WIDE_BOMS, as_utf8
from chatpulse.config import DEFAULT_SOURCES, SourceConfig
from chatpulse.days import local_days
from chatpulse.formatting import plural
from chatpulse.ingest.extract import ERRORS, landing_files, map_records, read_source, text_columns
from chatpulse.ingest.files import JSON_SUFFIXES, ExtractError, RawFile, gzipped, read_file
from chatpulse.ingest.paths import Resolver, read_column, top_keys
from chatpulse.ingest.privacy import content_columns, mask
from chatpulse.ingest.sqlsource import count_day, query_day, raw_rows, source_label
from chatpulse.mapping import split_path
from chatpulse.schema import COLUMNS, SOURCE_LINE, Kind, is_error

# Rows read from the start of each file. 1,000 puts a fill rate within about 3 points of the
# whole file's (a binomial 95% interval is at most +-3.1 points at this size), shows an example of
# a column filled in one row of 200 with 99% odds, and costs little: a file takes about 0.1 s,
# mostly fixed costs (100 rows take 0.07 s), so a folder of a few hundred files checks in under a minute.
DEFAULT_ROWS = 1000
SHOWN_LINES = 5  # line numbers `check` names per file for malformed lines and rows without a time
SHOWN_FILES = 3  # file names a finding about a missing column names
FILE_SUFFIXES = (*JSON_SUFFIXES, ".csv")
EXAMPLE_CHARS = 40
LATENCY_COLUMNS = ("latency_ms", "ttft_ms")
FAILURE_COLUMNS = ("status_code", "error_type")  # what a source's failure rule fills in
# A JSON document or a stream's response cannot be cut at a line: such files are sampled whole.
WHOLE_FILE_LAYOUTS = ("document", "sse")
# A time of day followed by a UTC offset: Z, z, +08, +0800 or +08:00 (a date alone has none).
OFFSET = re.compile(r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")
# What reading a file can raise: a check names each bad file and goes on, where a run would stop
# (pandas raises ValueError, OverflowError or TypeError on values it cannot convert).
SAMPLE_ERRORS = (ExtractError, OSError, EOFError, zlib.error, ValueError, OverflowError, TypeError)


@dataclass(frozen=True)
class Finding:
    """One mapping mistake, worded for a person; `source` is None when it is about the landing folder."""

    text: str
    source: str | None = None
    kind: Kind | None = None

    def __str__(self) -> str:
        return self.text if self.source is None else f"source '{self.source}': {self.text}"


@dataclass(frozen=True)
class ColumnSample:
    """One canonical column in one file's sample: is its source column there (a path that reaches a
    record; for a derived value, any of its paths), how many rows hold a value, how many of those
    could not be read and the first one's reason (`not a number (timestamp.format is epoch_ms)`, never
    a value) and line, the first parsed value (masked; None where never shown), and the paths it reads
    that reach no record (`missing`)."""

    found: bool
    filled: int = 0
    unreadable: int = 0
    example: str | None = None
    missing: tuple[str, ...] = ()
    reason: str | None = None
    unreadable_line: int | None = None  # of the first unreadable value in its file


@dataclass(frozen=True)
class FileSample:
    """What the first rows of one landing file hold, mapped as the pipeline maps them.

    `rows` counts records (a session line counts once per turn), `days` rows per local day,
    `undated` rows without a readable time (malformed lines aside), `offsets` the time texts
    that carry a UTC offset; `error` says why the file could not be read, if it could not.
    `malformed_lines` and `undated_lines` are the first SHOWN_LINES line numbers of each, to look at.
    """

    label: str
    rows: int = 0
    more: bool = False  # the file goes on past the sample
    malformed: int = 0
    columns: Mapping[str, ColumnSample] = field(default_factory=dict)
    unmapped: tuple[str, ...] = ()  # source columns no canonical column reads
    days: Mapping[date, int] = field(default_factory=dict)
    undated: int = 0
    offsets: int = 0
    error: str | None = None
    malformed_lines: tuple[int, ...] = ()
    undated_lines: tuple[int, ...] = ()
    failed_only: bool = False  # every sampled record is a failed request (an error body holds no usage, model, ...)


def _readable_name(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith(FILE_SUFFIXES)


def _csv_head(stream: IO[bytes], rows: int) -> list[bytes]:
    """The physical lines of the header and the first `rows` records: a quoted field may span lines."""
    taken: list[bytes] = []

    def lines() -> Iterator[str]:
        for line in stream:
            taken.append(line)
            yield line.decode("utf-8", errors="replace")

    try:
        for _ in islice(csv.reader(lines()), rows + 1):
            pass
    except csv.Error:
        pass  # the reader that follows names the line and the fault
    return taken


def _head(path: Path, rows: int) -> tuple[bytes, bool]:
    """The file's first `rows` records (JSON lines, or CSV records after the header), uncompressed,
    and whether the file goes on."""
    opener = gzip.open if gzipped(path) else open
    with opener(path, "rb") as stream:
        if any(stream.peek(4)[:4].startswith(bom) for bom, _ in WIDE_BOMS):
            # UTF-16 or 32: a newline byte is half a character, so read whole as UTF-8 first, as the run reads it
            stream = io.BytesIO(as_utf8(stream.read()))
        if path.name.lower().removesuffix(".gz").endswith(".csv"):
            taken = _csv_head(stream, rows)
        else:
            taken = list(islice(stream, rows))
        return b"".join(taken), bool(stream.readline())


def _filled(values: pd.Series) -> pd.Series:
    """Rows holding a value: not missing and not blank text."""
    present = values.notna()
    if not pd.api.types.is_numeric_dtype(values) and present.any():
        present[present] = values[present].astype(str).str.strip() != ""
    return present


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def example(values: pd.Series, name: str, kind: Kind, tz: str) -> str | None:
    """The first parsed value of a mapped column, as shown to a person; None for a column never shown.

    Times are shown in the zone `tz`, latencies in ms (after `latency_unit`), text masked and cut
    to EXAMPLE_CHARS characters, quoted and escaped (JSON) so a control character cannot hide.
    Content (message text, comments) and metadata (which may hold any unmapped field) are never shown.
    """
    value_kind = COLUMNS[kind][name]
    present = values.dropna()
    if value_kind == "json" or name in content_columns(kind.value) or present.empty:
        return None
    value = present.iloc[0]
    if value_kind == "datetime":
        return value.tz_convert(tz).isoformat(sep=" ")
    if value_kind in ("int", "float"):
        return _number(value) + (" ms" if name in LATENCY_COLUMNS else "")
    text = mask(pd.Series([str(value)], dtype=object)).iloc[0]
    if len(text) > EXAMPLE_CHARS:
        text = text[: EXAMPLE_CHARS - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def _unreadable(errors: pd.Series, lines: pd.Series, name: str) -> tuple[int, str | None, int | None]:
    """Rows whose extract reasons name the column ('latency_ms: not a number'), and the first such reason
    without the column's name, with its line."""
    prefix = f"{name}:"
    named = [
        (line, [r for r in reasons if r.startswith(prefix)])
        for reasons, line in zip(errors, lines, strict=True)
        if isinstance(reasons, list)
    ]
    named = [(line, found) for line, found in named if found]
    if not named:
        return 0, None, None
    line, found = named[0]
    return len(named), found[0][len(prefix) :].strip(), int(line)


def _summarise(raw: RawFile, frame: pd.DataFrame, source: SourceConfig, tz: str, label: str, more: bool) -> FileSample:
    records, errors = raw.records, frame[ERRORS]
    resolver = Resolver(records)
    columns: dict[str, ColumnSample] = {}
    for name in COLUMNS[source.kind]:
        read = read_column(resolver, source, name)
        missing = unmet(source, name, lambda path: path in resolver.resolved)
        # A path's fill counts what the log holds; a derived value's, the rows it gives a value (a map's
        # `missing:` fills rows even where its path reaches no record: the column is not absent then).
        path = isinstance(source.column(name), str)
        filled = _filled(read.values if path else frame[name].iloc[: len(records)])
        if not (read.found or (not path and filled.any())):
            columns[name] = ColumnSample(found=False, missing=missing)
            continue
        shown = example(frame[name], name, source.kind, tz)
        unreadable, reason, line = _unreadable(errors, frame[SOURCE_LINE], name)
        columns[name] = ColumnSample(True, int(filled.sum()), unreadable, shown, missing, reason, line)
    read = {key for name in COLUMNS[source.kind] for path in source.inputs(name) for key in top_keys(path)}
    stamps = frame["timestamp"].dropna()
    days = Counter(day.date() for day in local_days(stamps, tz))
    malformed = {line for line, _ in raw.malformed}
    undated = frame["timestamp"].isna() & ~frame[SOURCE_LINE].isin(malformed)
    offsets = 0
    times = resolver.read(source.source_column("timestamp"))
    if source.timestamp_format == "iso" and times.found:
        texts = times.values[_filled(times.values)].astype(str).str.strip()
        offsets = int(texts.str.contains(OFFSET).sum())
    return FileSample(
        label,
        rows=len(records),
        more=more,
        malformed=len(raw.malformed),
        columns=columns,
        unmapped=tuple(str(c) for c in records.columns if c not in read and c not in source.drop),
        days=dict(sorted(days.items())),
        undated=len(frame) - len(stamps) - len(raw.malformed),
        offsets=offsets,
        malformed_lines=tuple(sorted(line for line, _ in raw.malformed)[:SHOWN_LINES]),
        undated_lines=tuple(sorted(int(line) for line in frame.loc[undated, SOURCE_LINE])[:SHOWN_LINES]),
        failed_only=source.kind is Kind.REQUESTS and len(frame) > 0 and bool(is_error(frame).all()),
    )


def sample_file(path: Path, label: str, source: SourceConfig, tz: str, rows: int = DEFAULT_ROWS) -> FileSample:
    """The first `rows` records of a landing file (0: all of them), read and mapped as a run would.

    A file that cannot be read gives a sample with `error` set (the reason, naming the file by
    `label`), never an exception: a check reports every file, not the first bad one.
    """
    try:
        if not rows or source.layout in WHOLE_FILE_LAYOUTS:
            raw = read_file(path, source.layout, text_columns(source), source.records)
            return _summarise(raw, read_source(path, source, label), source, tz, label, more=False)
        with tempfile.TemporaryDirectory(prefix="chatpulse-check-") as folder:
            # The head keeps the file's name (less .gz), so it is read as the same type.
            head = Path(folder) / path.name.removesuffix(".gz").removesuffix(".GZ")
            try:
                data, more = _head(path, rows)
                head.write_bytes(data)
                raw = read_file(head, source.layout, text_columns(source), source.records)
                return _summarise(raw, read_source(head, source, label), source, tz, label, more)
            except SAMPLE_ERRORS as exc:
                return FileSample(label, error=_reason(exc, label, head, path))
    except SAMPLE_ERRORS as exc:
        return FileSample(label, error=_reason(exc, label, path))


def sample_query(
    source: SourceConfig, day: date, tz: str, rows: int = DEFAULT_ROWS, env: Mapping[str, str] | None = None
) -> tuple[FileSample, int]:
    """The first `rows` rows (0: all of them) a SQL source's query gives for `day`, read and mapped as a run
    would, and how many rows it gives in all. A database that cannot be read gives a sample with `error`
    set (naming the database without its password) and a count of 0, never an exception."""
    label = source_label(source)
    try:
        total = count_day(source, day, tz, env)
        with query_day(source, day, tz, env, chunk_rows=rows or max(total, 1)) as query:
            raw = next(query.chunks, None) or raw_rows([], query.columns)
            frame = map_records(raw, source, label)
            return _summarise(raw, frame, source, tz, label, more=total > len(raw.records)), total
    except SAMPLE_ERRORS as exc:
        return FileSample(label, error=str(exc).removeprefix(f"source '{source.name}': ")), 0


def _reason(error: Exception, label: str, *paths: Path) -> str:
    """An error's message without the file's path in front (the finding names the file)."""
    text = str(error)
    for path in paths:
        text = text.replace(str(path), label)
    return text.removeprefix(f"{label}: ")


def unmet(source: SourceConfig, canonical: str, reached: Callable[[str], bool]) -> tuple[str, ...]:
    """The paths of a source's canonical column that are missing, given which paths `reached` a record:
    each path that did not, except one listed in `optional`, and a `first` value's paths only when none
    of them did (any one serves)."""
    column = source.column(canonical)
    groups = ((column,),) if isinstance(column, str) else column.groups
    return tuple(
        path
        for group in groups
        if not any(reached(path) for path in group)
        for path in group
        if path not in source.optional
    )


def relied_on(source: SourceConfig) -> list[str]:
    """The canonical columns a source's configuration expects to find: every mapped one, the time,
    and the failure rule's column (unless it has a default), less those it lists as `optional`."""
    names = [*source.columns, "timestamp"]
    if source.failure is not None and source.failure.column not in source.defaults:
        names.append(source.failure.column)
    return [name for name in dict.fromkeys(names) if name not in source.optional]


def option_findings(source: SourceConfig) -> list[Finding]:
    """`timestamp` options that cannot change a single value, whatever the files hold.

    `origin` counts only for seconds_since; `timezone` (of times written without an offset)
    cannot apply to epoch numbers, which are instants, nor to seconds since an origin that has
    its own offset. A `timezone: UTC` written out is the default and cannot be told apart.
    """
    stamp = source.timestamp
    found = []
    if stamp.origin is not None and stamp.format != "seconds_since":
        found.append(f"timestamp.origin does nothing with format {stamp.format} (it is the start for seconds_since)")
    if stamp.timezone != "UTC" and stamp.format in ("epoch_s", "epoch_ms"):
        found.append(f"timestamp.timezone does nothing with format {stamp.format} (epoch numbers are instants)")
    if stamp.timezone != "UTC" and stamp.format == "seconds_since" and stamp.origin and stamp.origin.tzinfo:
        found.append("timestamp.timezone does nothing: the origin has its own UTC offset")
    return [Finding(text, source.name, source.kind) for text in found]


def column_text(source: SourceConfig, name: str) -> str:
    """What a canonical column is read from, as a person reads it: its path, or its derived value
    (`endTime - startTime`, `a + b`, `map of finish_reason`)."""
    column = source.column(name)
    return column if isinstance(column, str) else column.describe()


def _named(path: str, name: str) -> str:
    """A source column or path as a finding names it: 'usage.prompt_tokens' (prompt_tokens)."""
    return f"'{path}'" if path == name else f"'{path}' ({name})"


def _hint(column: str, samples: Sequence[FileSample]) -> str:
    others = sorted({name for sample in samples for name in sample.unmapped})
    close = difflib.get_close_matches(column, others, n=1, cutoff=0.6)
    close = close or [name for name in others if name.lower() == column.lower()]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _where_missing(source: SourceConfig, lacking: Sequence[FileSample], files: int) -> str:
    """Which of a source's `files` readable files lack a column, as a finding says it: a column in some
    files and not in others is a renamed field as surely as one in none (its rows get no value)."""
    if source.sql is not None:
        return "not among its query's columns"
    more = ", ..." if len(lacking) > SHOWN_FILES else ""
    named = ", ".join(sample.label for sample in lacking[:SHOWN_FILES]) + more
    if len(lacking) == files:
        return f"not in its file {named}" if files == 1 else f"in none of its {files:,} files"
    return f"not in {named} ({len(lacking):,} of its {files:,} files)"


def readable(samples: Sequence[FileSample]) -> list[FileSample]:
    """The samples that tell which columns a file has: read, and holding at least one record."""
    return [sample for sample in samples if sample.error is None and sample.rows]


def sample_findings(source: SourceConfig, samples: Sequence[FileSample]) -> list[Finding]:
    """What a source's file samples show is wrong with its mapping.

    Files that cannot be read; columns it relies on (`relied_on`) that are missing from some of its files
    holding records (of requests, from those holding an answer, where any does: not from a file of errors
    only); columns whose every sampled value is unreadable; a `timestamp.timezone` when every sampled time
    carries its own offset. Only names and counts, never a value.
    """
    texts = [f"{s.label} cannot be read: {s.error}" for s in samples if s.error is not None]
    read = readable(samples)
    # A file of failed requests only (an hour of 429s, a blocked prompt) lacks what answers hold: judged by
    # the files that hold an answer, where there are any.
    answered = [s for s in read if not s.failed_only] or read
    for name in relied_on(source) if read else ():
        for path in source.inputs(name):
            lacking = [s for s in answered if path in s.columns[name].missing]
            if lacking:
                hint = _hint(path, lacking) if len(split_path(path)) == 1 else ""
                where = _where_missing(source, lacking, len(answered))
                texts.append(f"column {_named(path, name)} is {where}{hint}")
        found = [s.columns[name] for s in read if s.columns[name].found]
        filled, unreadable = sum(c.filled for c in found), sum(c.unreadable for c in found)
        if found and filled and unreadable == filled:
            why = next((c.reason for c in found if c.reason), None)
            texts.append(
                f"column {_named(column_text(source, name), name)}: none of its {filled:,} sampled values could be"
                f" read{f': {why}' if why else ''}"
            )
    stamped = sum(s.columns["timestamp"].filled for s in read)
    zoned = source.timestamp_format == "iso" and source.naive_timezone != "UTC"
    if zoned and stamped and sum(s.offsets for s in read) == stamped:
        texts.append(
            f"timestamp.timezone {source.naive_timezone} does nothing: "
            f"all {stamped:,} sampled times carry their own UTC offset"
        )
    return [Finding(text, source.name, source.kind) for text in texts]


@dataclass(frozen=True)
class Landing:
    """Which files each source reads (`owned`, by position in the sources), files its pattern matches
    that an earlier source of its kind reads first (`shadowed`: label -> that source's name), files
    of a readable type that no pattern matches (`strays`), and the findings about them."""

    owned: tuple[tuple[Path, ...], ...]
    shadowed: tuple[dict[str, str], ...]
    strays: tuple[str, ...]
    findings: tuple[Finding, ...]


def match_landing(landing_dir: Path, sources: Sequence[SourceConfig], others: Sequence[str] = ()) -> Landing:
    """Each source's files as `landing_files` assigns them (first matching source of a kind wins).

    A pattern that matches no file is a finding, unless the sources are the built-in ones and
    another of them matches. Strays are looked for in the landing folder itself and in every
    folder a pattern reaches (not below), among names a source could read (.jsonl, .ndjson,
    .json, .csv, optionally .gz), hidden files left out; files the `others` globs match (the
    provider's bills) are read too, so they are no strays.
    """
    if not landing_dir.is_dir():  # a worry only where a source reads files
        missing = [Finding(f"the landing folder {landing_dir} does not exist")]
        return Landing((), (), (), tuple(missing if any(s.pattern is not None for s in sources) else ()))
    findings: list[Finding] = []
    matched: list[set[Path] | None] = []
    for source in sources:
        if source.pattern is None:  # a SQL source reads no file
            matched.append(set())
            continue
        try:
            matched.append({path for path in landing_dir.glob(source.pattern) if path.is_file()})
        except (ValueError, NotImplementedError):
            matched.append(None)
            text = f"pattern '{source.pattern}' is not a glob relative to the landing folder"
            findings.append(Finding(text, source.name, source.kind))
    # The built-in sources are a menu (few folders hold sessions files): an unmatched one is only
    # worth a word when none matches.
    optional = tuple(sources) == DEFAULT_SOURCES and any(matched)
    usable = [source for source, files in zip(sources, matched, strict=True) if files is not None]
    # A file belongs to the first matching source of each kind: a messages source reading a
    # requests source's file (a LiteLLM payload holds both) takes nothing from it.
    owner = {(kind, path): source for kind in Kind for path, source in landing_files(landing_dir, usable, kind)}
    owned, shadowed = [], []
    for source, files in zip(sources, matched, strict=True):
        files = files or set()
        mine = tuple(sorted(path for path in files if owner.get((source.kind, path)) is source))
        others = {
            label_of(p, landing_dir): owner[(source.kind, p)].name
            for p in sorted(files)
            if owner.get((source.kind, p)) is not source
        }
        owned.append(mine)
        shadowed.append(others)
        if source.pattern is None:
            continue
        if not files and not optional:
            findings.append(Finding(f"pattern '{source.pattern}' matches no file", source.name, source.kind))
        elif files and not mine:
            first = ", ".join(sorted(set(others.values())))
            findings.append(
                Finding(f"every file its pattern matches is read by source '{first}' first", source.name, source.kind)
            )
    every = set().union(*(files or set() for files in matched))
    folders = {landing_dir, *(path.parent for path in every)}
    every |= {path for pattern in others for path in landing_dir.glob(pattern)}
    strays = tuple(
        sorted(
            label_of(path, landing_dir)
            for folder in folders
            for path in folder.iterdir()
            if path.is_file() and not path.name.startswith(".") and _readable_name(path.name) and path not in every
        )
    )
    if strays:
        verb = "matches" if len(strays) == 1 else "match"
        text = f"{plural(len(strays), 'file')} in the landing folder {verb} no source: {_few(strays)}"
        findings.append(Finding(text))
    return Landing(tuple(owned), tuple(shadowed), strays, tuple(findings))


def label_of(path: Path, landing_dir: Path) -> str:
    """A landing file's name as runs record it (`source_file`): its path below the landing folder."""
    return path.relative_to(landing_dir).as_posix()


def _few(names: Sequence[str], shown: int = 10) -> str:
    rest = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + rest
