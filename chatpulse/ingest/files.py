"""Read one landing file (JSONL or CSV, gzip or not) into raw records, line by line.

Reading is tolerant per line and strict per file: a malformed line becomes an entry in
`RawFile.malformed` with a reason (so it can be quarantined and nothing is lost), while a
file that cannot be read at all raises `ExtractError` naming the file. How text is taken
(byte order marks, invalid UTF-8, lone surrogates, NUL) is `chatpulse.ingest.text`'s rule.
"""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import gzip
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from isal import igzip
from isal.igzip_lib import IsalError

from chatpulse.byteorder import WIDE_BOMS, as_utf8
from chatpulse.ingest.arrowlines import arrow_records
from chatpulse.ingest.csvrows import CsvLineError, csv_records
from chatpulse.ingest.records import frame_of, is_sse, json_text, merged, numbered, records_of, responses, runs
from chatpulse.ingest.text import json_line, may_hold_nul
from chatpulse.layout import Records
from chatpulse.threads import in_order

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TURN_KEYS = ("turns", "messages")
JSON_CHUNK_BYTES = 8 << 20
# Threads parsing a streamed file's blocks beside the one reading it (_stream_jsonl).
PARSE_THREADS = 2
GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952: every gzip member starts with these two bytes
# What reading a file can raise for the file's own fault: damaged deflate data is zlib.error from the standard
# library, IsalError from ISA-L.
UNREADABLE = (OSError, EOFError, gzip.BadGzipFile, zlib.error, IsalError)


class ExtractError(RuntimeError):
    """A landing file cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class RawFile:
    """The records of one file as read, before any mapping.

    `lines` holds each record's line number; `malformed` the lines that held no record, with
    why; `repaired` the lines whose text was repaired to be read, with the repair's name. The
    file's own text is kept for the quarantine's original lines: as `text`, or, for JSON lines
    read a block at a time, as `blocks` (first line, size, LZ4-compressed bytes of each block),
    a fifth of the memory; `nul` and `size` then say what `text` would.
    """

    records: pd.DataFrame
    lines: np.ndarray
    malformed: list[tuple[int, str]]
    text: bytes = b""
    repaired: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    modified: float | None = None  # the file's modification time (POSIX seconds), where it came from a file
    blocks: tuple[tuple[int, int, bytes], ...] = ()
    nul: bool = False
    size: int = 0

    def may_hold_nul(self) -> bool:
        """Whether any value read from the file can hold a NUL character (text.may_hold_nul)."""
        return self.nul if self.blocks else may_hold_nul(self.text)

    def byte_size(self) -> int:
        """The file's size in bytes as read (UTF-8, without a byte order mark)."""
        return self.size if self.blocks else len(self.text)

    def original_lines(self, numbers: Iterable[int], limit: int | None = None) -> dict[int, str]:
        """The file's own text of some lines, for the quarantine, storable in any database.

        Bytes that are not UTF-8 show as U+FFFD and NUL as U+2400 (PostgreSQL text holds no
        NUL); a line over `limit` bytes keeps its first `limit` bytes and says how long it was.
        """
        wanted = set(numbers)
        if not wanted:
            return {}
        if not self.blocks:
            lines = self.text.split(b"\n")
            return {n: _storable(lines[n - 1].removesuffix(b"\r"), limit) for n in wanted if 0 < n <= len(lines)}
        firsts = [first for first, _, _ in self.blocks]
        found: dict[int, str] = {}
        for index in sorted({bisect.bisect_right(firsts, n) - 1 for n in wanted if n > 0}):
            first, size, packed = self.blocks[index]
            lines = pa.decompress(packed, decompressed_size=size, codec="lz4", asbytes=True).split(b"\n")
            for n in wanted:
                if first <= n < first + len(lines):
                    found[n] = _storable(lines[n - first].removesuffix(b"\r"), limit)
        return found


def _storable(line: bytes, limit: int | None) -> str:
    cut = limit is not None and len(line) > limit
    text = (line[:limit] if cut else line).decode("utf-8", errors="replace").replace("\x00", "\u2400")
    return f"{text} [... cut: the line holds {len(line)} bytes]" if cut else text


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
        if not gzipped(path):
            return data
        _check_gzip_magic(data[:2])
        return igzip.decompress(data)
    except UNREADABLE as exc:
        raise ExtractError(f"{path}: cannot read file: {exc}") from exc


def gzipped(path: Path) -> bool:
    """Whether a file is read as gzip: named `.gz` (one that is not cannot be read: said so), or starting with
    gzip's two bytes whatever its name (a rotated proxy log gzipped under `.jsonl`; text cannot start with them,
    0x8b being no first byte of a UTF-8 character). Raises OSError when the file cannot be read."""
    if path.name.lower().endswith(".gz"):
        return True
    with path.open("rb") as file:
        return file.read(2) == GZIP_MAGIC


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


def _parse_lines(given: list[tuple[int, bytes]], layout: str, records_at: Records | None = None) -> RawFile:
    """Line by line: slow, but it pins every malformed line to its number. With `records_at`, a line's
    records are those its `records:` section names (chatpulse.ingest.records.records_of), and lines in a
    row that hold the same `group_by` value are one response, on its first line (runs)."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    repaired: list[tuple[int, str]] = []
    parsed: list[tuple[int, Any]] = []
    for number, line in given:
        try:
            record, repairs = json_line(line)
        except ValueError as exc:
            malformed.append((number, str(exc)))
            continue
        parsed.append((number, record))
        repaired.extend((number, repair) for repair in repairs)
    if records_at is not None:
        parsed = runs(parsed, records_at.group_by)
    for number, record in parsed:
        try:
            if records_at is not None:
                batch = _objects(records_of(record, records_at))
            elif not isinstance(record, dict):
                raise ValueError("not a JSON object")
            else:
                batch = _expand_sessions(record) if layout == "sessions" else [record]
        except ValueError as exc:
            malformed.append((number, f"malformed JSON: {exc}"))
            continue
        records.extend(batch)
        lines.extend([number] * len(batch))
    # The index keeps a row for each record even when none has a key (lines of '{}').
    frame = pd.DataFrame.from_records(records, index=pd.RangeIndex(len(records)))
    malformed.sort()
    return RawFile(frame, np.asarray(lines, dtype="int64"), malformed, repaired=repaired)


def _objects(found: list[Any]) -> list[dict[str, Any]]:
    """The records that are objects; ValueError when there were records and none of them is one."""
    objects = [record for record in found if isinstance(record, dict)]
    if found and not objects:
        raise ValueError("not a JSON object")
    return objects


def _read_document(data: bytes, records_at: Records | None) -> RawFile | None:
    """A file holding one JSON value: its records (an array's items each a document), numbered from 1,
    each record's raw text itself as JSON; None when the file is not one JSON value (JSON lines)."""
    try:
        value, repairs = json_line(data)
    except ValueError:
        return None
    documents = value if isinstance(value, list) else [value]
    if records_at is not None:  # an array of a stream's chunks (Gemini's streamGenerateContent) is one response
        documents = [document for _, document in runs(list(enumerate(documents)), records_at.group_by)]
    found = [record for document in documents for record in records_of(document, records_at)]
    objects = [record for record in found if isinstance(record, dict)]
    malformed = [(1, "malformed JSON: not a JSON object")] if found and not objects else []
    lines = numbered(len(objects)).tolist()
    repaired = [(line, repair) for line in lines for repair in repairs]
    return RawFile(frame_of(objects), numbered(len(objects)), malformed, json_text(objects, lines), repaired)


def _read_sse(data: bytes, records_at: Records | None) -> RawFile:
    """A Server-Sent Events file: each response's events merged into one record, on its first event's line."""
    grouped, malformed, payloads = responses(data, records_at.group_by if records_at is not None else None)
    found, lines = [], []
    for line, events in grouped:
        taken = [record for record in records_of(merged(events), records_at) if isinstance(record, dict)]
        found += taken
        lines += [line] * len(taken)
    return RawFile(frame_of(found), np.asarray(lines, dtype="int64"), malformed, json_text(found, lines, payloads))


def _parse_chunk(
    data: bytes,
    start: int,
    end: int,
    first_line: int,
    layout: str,
    text_columns: Sequence[str],
    records_at: Records | None = None,
) -> RawFile:
    """The whole lines data[start:end] through Arrow's columnar JSON reader, else line by line.

    Only a chunk Arrow cannot read exactly as the line path would (a bad or blank line,
    nested sessions) is parsed line by line, so only that chunk pays the slow path.
    """
    end -= data.endswith(b"\n", start, end)
    chunk = data[start:end]
    records = arrow_records(chunk, text_columns) if layout == "rows" and records_at is None else None
    if records is not None:
        return RawFile(records, np.arange(first_line, first_line + len(records), dtype="int64"), [])
    lines = [(first_line + i, line) for i, line in enumerate(chunk.split(b"\n")) if line.strip()]
    return _parse_lines(lines, layout, records_at)


def _read_jsonl(data: bytes, layout: str, text_columns: Sequence[str], records_at: Records | None = None) -> RawFile:
    blocks: list[RawFile] = []
    start, first_line = 0, 1
    while start < len(data):
        end = data.find(b"\n", start + JSON_CHUNK_BYTES)
        end = len(data) if end == -1 else end + 1
        blocks.append(_parse_chunk(data, start, end, first_line, layout, text_columns, records_at))
        start, first_line = end, first_line + data.count(b"\n", start, end)
    if not blocks:
        return RawFile(pd.DataFrame(), np.empty(0, dtype="int64"), [])
    return RawFile(
        pd.concat([block.records for block in blocks], ignore_index=True),
        np.concatenate([block.lines for block in blocks]),
        [entry for block in blocks for entry in block.malformed],
        repaired=[entry for block in blocks for entry in block.repaired],
    )


def _blocks(path: Path) -> Iterator[bytes]:
    """A JSON lines file's bytes in blocks of whole lines (about JSON_CHUNK_BYTES each, the last one
    as the file ends), without a UTF-8 byte order mark; nothing when the file starts with a UTF-16 or
    UTF-32 one (read whole, as_utf8). Raises ExtractError when the file cannot be read."""
    try:
        with _open(path) as file:
            first = file.read(JSON_CHUNK_BYTES)
            if any(first.startswith(bom) for bom, _ in WIDE_BOMS):
                return
            more, pending = first.removeprefix(codecs.BOM_UTF8) or file.read(JSON_CHUNK_BYTES), b""
            while more:
                # A block is what was pending and what was read up to its last newline, made in one copy
                # (none where the read ends a line); a line longer than a read stays pending until it ends.
                cut = more.rfind(b"\n") + 1
                if cut:
                    yield more if not pending and cut == len(more) else b"".join((pending, memoryview(more)[:cut]))
                    pending = more[cut:]
                else:
                    pending += more
                more = file.read(JSON_CHUNK_BYTES)
            if pending:
                yield pending
    except UNREADABLE as exc:
        raise ExtractError(f"{path}: cannot read file: {exc}") from exc


def _parse_block(
    numbered: tuple[bytes, int], layout: str, text_columns: Sequence[str]
) -> tuple[RawFile, tuple[int, int, bytes], bool]:
    """One block of a streamed file and its first line's number: the block parsed (_parse_chunk), kept
    LZ4-compressed (first line, size, bytes), and whether it may hold a NUL."""
    block, first_line = numbered
    parsed = _parse_chunk(block, 0, len(block), first_line, layout, text_columns)
    return parsed, (first_line, len(block), pa.compress(block, codec="lz4", asbytes=True)), may_hold_nul(block)


def _numbered_blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """_blocks, each with the number of its first line."""
    first_line = 1
    for block in _blocks(path):
        yield block, first_line
        first_line += block.count(b"\n")


def _stream_jsonl(path: Path, layout: str, text_columns: Sequence[str], parts: list | None) -> RawFile | None:
    """A JSON lines file read a block at a time (_blocks), never whole: each block is parsed (_parse_chunk)
    and kept LZ4-compressed for its original lines (records: see read_file's `parts`). None for UTF-16 or 32.

    Blocks are parsed in PARSE_THREADS threads while the next ones are read (threads.in_order): Arrow's reader
    and compute functions, LZ4 and the decompression run without the GIL.
    """
    parse = partial(_parse_block, layout=layout, text_columns=text_columns)
    blocks, packed, nuls = [], [], []
    for parsed, kept, may_nul in in_order(parse, _numbered_blocks(path), PARSE_THREADS):
        blocks.append(parsed)
        packed.append(kept)
        nuls.append(may_nul)
    size = sum(length for _, length, _ in packed)
    if not packed:
        if path.stat().st_size and _is_wide(path):
            return None
        return RawFile(pd.DataFrame(), np.empty(0, dtype="int64"), [])
    records = [block.records for block in blocks]
    whole = pd.concat(records, ignore_index=True) if parts is None and len(records) > 1 else records[0]
    return RawFile(
        whole if parts is None else (parts.extend(records) or pd.DataFrame()),
        np.concatenate([block.lines for block in blocks]),
        [entry for block in blocks for entry in block.malformed],
        repaired=[entry for block in blocks for entry in block.repaired],
        blocks=tuple(packed),
        nul=any(nuls),
        size=size,
    )


def _open(path: Path) -> IO[bytes]:
    """A landing file opened for reading its bytes, decompressed as they are read when it is gzipped (gzipped).

    Through ISA-L (isal), which reads gzip as the standard library does, three times as fast (a million
    requests' 516 MB of JSON lines: 0.3 s against 1.0 s).
    """
    if not gzipped(path):
        return path.open("rb")
    with path.open("rb") as file:
        _check_gzip_magic(file.read(2))
    return igzip.open(path, "rb")


def _check_gzip_magic(head: bytes) -> None:
    """Raises gzip.BadGzipFile, worded as the standard library words it, when a file read as gzip does not start
    as one (an empty file is an empty gzip file): ISA-L calls one shorter than a gzip header truncated."""
    if head and head != GZIP_MAGIC:
        raise gzip.BadGzipFile(f"Not a gzipped file ({head!r})")


def _is_wide(path: Path) -> bool:
    """Whether a file starts with a UTF-16 or UTF-32 byte order mark (its first four bytes are read, not
    the whole file, which read_file then reads once). Raises ExtractError when it cannot be read."""
    try:
        with _open(path) as file:
            head = file.read(4)
    except UNREADABLE as exc:
        raise ExtractError(f"{path}: cannot read file: {exc}") from exc
    return any(head.startswith(bom) for bom, _ in WIDE_BOMS)


def _read_csv(path: Path, data: bytes) -> RawFile:
    try:
        text, undecodable = data.decode("utf-8"), False
    except UnicodeDecodeError:
        # Bytes that are not UTF-8 become lone surrogates, so the rows holding them can be told apart.
        text, undecodable = data.decode("utf-8", errors="surrogateescape"), True
    try:
        header, rows, lines, malformed = csv_records(text, undecodable)
    except CsvLineError as exc:
        raise ExtractError(f"{path}: {exc}") from exc
    if header is None:
        return RawFile(pd.DataFrame(), np.empty(0, dtype="int64"), [])
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)
    return RawFile(frame, np.asarray(lines, dtype="int64"), malformed)


def read_file(
    path: Path,
    layout: str = "rows",
    text_columns: Sequence[str] = (),
    records_at: Records | None = None,
    parts: list[pd.DataFrame] | None = None,
) -> RawFile:
    """Read one landing file; malformed lines are reported, not raised.

    `text_columns` are kept as text in JSON files, not read as Arrow infers them. `layout` and
    `records_at` (a source's `records:` section) say how the file holds its records
    (chatpulse.layout): with layout sse a file of any name is read as Server-Sent Events, unless it
    holds JSON; with layouts document and sse a JSON file is read as one value (pretty-printed or
    not), or as JSON lines when it holds several. The RawFile's `modified` is the file's
    modification time. Given `parts` (a list), the records are added to it: a streamed JSON lines file's
    as the blocks it was read in, in line order (its RawFile's `records` then empty), another's as one frame.
    """
    fmt = "sse" if layout == "sse" else _file_format(path)
    if fmt == "jsonl" and layout in ("rows", "sessions") and records_at is None:
        streamed = _stream_jsonl(path, layout, text_columns, parts)
        if streamed is not None:
            return replace(streamed, modified=path.stat().st_mtime)
    try:
        data = as_utf8(_read_bytes(path))
    except UnicodeDecodeError as exc:
        raise ExtractError(f"{path}: not UTF-16 or UTF-32 text as its byte order mark says: {exc}") from exc
    if fmt == "csv":
        raw = replace(_read_csv(path, data), text=data)
    elif fmt == "sse" and is_sse(data):
        raw = _read_sse(data, records_at)
    else:
        raw = _read_document(data, records_at) if layout in ("document", "sse") else None
        if raw is None:
            rows = "rows" if layout in ("document", "sse") else layout
            raw = replace(_read_jsonl(data, rows, text_columns, records_at), text=data)
    if parts is not None:
        parts.append(raw.records)
    return replace(raw, modified=path.stat().st_mtime)
