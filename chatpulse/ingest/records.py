"""Records inside documents: whole-JSON files, Server-Sent Events streams, paths to a record list, OTLP/JSON.

`chatpulse.layout` says what a source writes (`layout:`, `records:`); this module reads it. A file
is split into documents (a JSON line, the file's one JSON value or its array's items, a stream's
events grouped per response), each document's records are taken from `records.path` with the
fields around them, OTLP/JSON values are decoded and `records.where` keeps the wanted ones. The
result is a `RawFile` like any other file's, so mapping and quarantine work as for JSON lines:

- rows: a record's line is its document's line; its raw text is that line.
- document: a record's line is its number in the file (from 1); its raw text is the record as JSON.
- sse: a response's line is the line of its first event; its raw text is the merged response as JSON.

A stream's events are merged into one response: later values win, null never replaces a value,
objects merge key by key, and lists item by item (items carrying a whole-number `index`, as
OpenAI's choices and Gemini's candidates do, with the item of the same index; others by position).
Sources: the SSE format is WHATWG HTML's "Server-sent events" (fields `data:`, `event:`, `id:`,
`retry:`; `:` a comment; a blank line ends an event); OTLP/JSON is the OTLP specification's JSON
Protobuf Encoding (64-bit integers as decimal text, AnyValue as `{stringValue|intValue|...}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd

from chatpulse.ingest.text import json_line
from chatpulse.layout import Records
from chatpulse.mapping import split_path, value_key

DONE = "[DONE]"  # the data of the event that ends an OpenAI-style stream
NOT_OBJECT = "malformed JSON: not a JSON object"
SSE_FIELD = re.compile(rb"^\s*(?:data|event|id|retry)?:")
LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def is_sse(data: bytes) -> bool:
    """Whether a file's first non-blank line is a Server-Sent Events field or comment (not a JSON line)."""
    for line in LINE_BREAK.split(data, maxsplit=64):
        if line.strip():
            return bool(SSE_FIELD.match(line))
    return False


def _step(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return None


def value_at(record: Any, keys: tuple[str, ...]) -> Any:
    """The value at a path's keys in a record (None where it reaches nothing)."""
    for key in keys:
        record = _step(record, key)
        if record is None:
            return None
    return record


def _expanded(value: Any, keys: tuple[str, ...], around: dict[str, Any]) -> tuple[bool, list[Any]]:
    """The records at `keys` below `value`, each an object with the fields `around` it beside its own;
    lists on the way are stepped through. Also whether the path reached anything at all."""
    if isinstance(value, list):
        reached, found = False, []
        for item in value:
            item_reached, item_found = _expanded(item, keys, around)
            reached |= item_reached
            found += item_found
        return reached or not keys, found
    if not keys:
        return True, [{**around, **value} if isinstance(value, dict) else value]
    if not isinstance(value, dict) or value.get(keys[0]) is None:
        return False, []
    outside = {**around, **{key: item for key, item in value.items() if key != keys[0]}}
    return _expanded(value[keys[0]], keys[1:], outside)


def records_of(document: Any, records: Records | None) -> list[Any]:
    """A document's records: decoded (`decode`), taken from `path` (the document itself where the
    path reaches nothing) and kept by `where`. Items that are not objects are returned as they are,
    for the caller to call malformed."""
    if records is None:
        return [document]
    if records.decode == "otlp":
        document = decode_otlp(document)
    found = [document]
    if records.path is not None:
        reached, taken = _expanded(document, split_path(records.path), {})
        found = taken if reached else [document]
    return [record for record in found if not isinstance(record, dict) or kept(record, records)]


def kept(record: dict[str, Any], records: Records) -> bool:
    """Whether a record passes `where` (its value at each path is one of those listed, by its text; None
    in the list lets a missing value pass) and `having` (it holds a value at one of those paths)."""
    for path, allowed in records.where.items():
        value = value_at(record, split_path(path))
        if (None if value is None else value_key(value)) not in allowed:
            return False
    return not records.having or any(value_at(record, split_path(path)) is not None for path in records.having)


def _any_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a plain value: text, a whole number (64-bit ints come as decimal text),
    a float, a boolean, a list, an object; bytes stay base64 text; an empty AnyValue is None."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        number = value["doubleValue"]
        return float(number) if isinstance(number, int | float | str) and number not in ("NaN",) else number
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [_any_value(item) for item in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _key_values((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _key_values(pairs: list[Any]) -> dict[str, Any]:
    return {pair["key"]: _any_value(pair.get("value")) for pair in pairs if isinstance(pair, dict) and "key" in pair}


def decode_otlp(value: Any) -> Any:
    """OTLP/JSON with every `attributes` list of KeyValues as an object keyed by attribute name
    (`{"gen_ai.usage.input_tokens": 52}`), at any depth (resource, scope, span, event)."""
    if isinstance(value, list):
        return [decode_otlp(item) for item in value]
    if not isinstance(value, dict):
        return value
    decoded = {}
    for key, item in value.items():
        if key == "attributes" and isinstance(item, list):
            decoded[key] = _key_values(item)
        else:
            decoded[key] = decode_otlp(item)
    return decoded


def merge(earlier: Any, later: Any) -> Any:
    """Two stream events as one: later values win, null never replaces a value, objects merge key by key,
    lists item by item (by `index` where every item carries a whole-number one, else by position)."""
    if later is None:
        return earlier
    if isinstance(earlier, dict) and isinstance(later, dict):
        merged = dict(earlier)
        for key, value in later.items():
            merged[key] = merge(earlier.get(key), value)
        return merged
    if isinstance(earlier, list) and isinstance(later, list):
        return _merge_lists(earlier, later)
    return later


def _index(item: Any) -> int | None:
    number = item.get("index") if isinstance(item, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def _merge_lists(earlier: list[Any], later: list[Any]) -> list[Any]:
    if earlier and later and all(_index(item) is not None for item in [*earlier, *later]):
        by_index = {_index(item): item for item in earlier}
        for item in later:
            by_index[_index(item)] = merge(by_index.get(_index(item)), item)
        return [by_index[number] for number in sorted(by_index)]
    merged = [merge(a, b) for a, b in zip(earlier, later, strict=False)]
    return merged + earlier[len(later) :] + later[len(earlier) :]


def sse_events(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Each event's data (its `data:` lines joined by newlines) with the line its data starts on."""
    buffer: list[bytes] = []
    start = 0
    for number, line in enumerate(LINE_BREAK.split(data), start=1):
        if not line.strip():
            if buffer:
                yield start, b"\n".join(buffer)
            buffer = []
            continue
        name, colon, value = line.partition(b":")
        if not colon or name != b"data":  # event:, id:, retry:, a comment, or a line without a field
            continue
        if not buffer:
            start = number
        buffer.append(value[1:] if value.startswith(b" ") else value)
    if buffer:  # a log may end without the blank line that ends the last event
        yield start, b"\n".join(buffer)


def _key(document: Any, keys: tuple[str, ...]) -> Any:
    """A document's group_by value; none for blank text (Azure OpenAI's first chunk has the id "")."""
    value = value_at(document, keys) if keys and isinstance(document, dict) else None
    return None if isinstance(value, str) and not value.strip() else value


def responses(
    data: bytes, group_by: str | None
) -> tuple[list[tuple[int, list[Any]]], list[tuple[int, str]], dict[int, bytes]]:
    """A stream's events grouped per response (first line, events), the events that are not JSON objects
    (line, reason) and their data by line.

    A response ends at `data: [DONE]`, and where an event's `group_by` value differs from the
    response's (its first event holding one); an event without it belongs to the response before.
    """
    keys = split_path(group_by) if group_by else ()
    grouped: list[tuple[int, list[Any]]] = []
    malformed: list[tuple[int, str]] = []
    payloads: dict[int, bytes] = {}
    current: list[Any] | None = None
    key: Any = None
    for line, payload in sse_events(data):
        if payload.strip() == DONE.encode():
            current = None
            continue
        try:
            event, _ = json_line(payload)
        except ValueError as exc:
            malformed.append((line, str(exc)))
            payloads[line] = payload
            continue
        if not isinstance(event, dict):
            malformed.append((line, NOT_OBJECT))
            payloads[line] = payload
            continue
        value = _key(event, keys)
        if current is None or (value is not None and key is not None and value != key):
            current, key = [], value
            grouped.append((line, current))
        elif key is None:
            key = value
        current.append(event)
    return grouped, malformed, payloads


def runs(documents: list[tuple[int, Any]], group_by: str | None) -> list[tuple[int, Any]]:
    """Documents next to each other that hold the same `group_by` value merged into one, on the first's
    line (a stream's chunks logged one per line or as an array); a document without it stands alone."""
    if not group_by:
        return documents
    keys = split_path(group_by)
    out: list[tuple[int, Any]] = []
    last: Any = None
    for line, document in documents:
        key = _key(document, keys)
        if key is not None and out and key == last:
            out[-1] = (out[-1][0], merge(out[-1][1], document))
        else:
            out.append((line, document))
        last = key
    return out


def merged(events: list[Any]) -> Any:
    """A response's events merged into one record (see merge)."""
    record: Any = {}
    for event in events:
        record = merge(record, event)
    return record


def frame_of(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records as the line reader builds them: a row per record even when none has a key."""
    return pd.DataFrame.from_records(records, index=pd.RangeIndex(len(records)))


def json_text(records: list[Any], lines: list[int], others: dict[int, bytes] | None = None) -> bytes:
    """Text whose line n holds the record of line n as JSON, or `others`' text of line n (blank elsewhere):
    what a quarantined row's raw text is taken from (RawFile.original_lines). One line per record."""
    texts = {line: orjson.dumps(record, default=str) for line, record in zip(lines, records, strict=True)}
    texts |= {line: text.replace(b"\n", b" ") for line, text in (others or {}).items()}
    if not texts:
        return b""
    return b"\n".join(texts.get(line, b"") for line in range(1, max(texts) + 1))


def numbered(count: int, first: int = 1) -> np.ndarray:
    """Line numbers first, first + 1, ... (int64)."""
    return np.arange(first, first + count, dtype="int64")
