"""JSON lines chunks read by Arrow's columnar reader exactly as the line path (files) would read them, or not at all.

A record must not depend on the path it took: its metadata, hence its derived id, would then depend on its
neighbours. So a chunk is taken from Arrow only where every line is one object and every column comes out as
the line path builds it; arrow_records says None otherwise, and the chunk is read line by line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pa_json

from chatpulse.ingest.text import holds_escape

NEWLINE, CARRIAGE_RETURN, OPEN_BRACE, CLOSE_BRACE = b"\n\r{}"
# Arrow column types whose pandas columns equal what the line path builds from the same values
# (not null: the line path makes an all-null column float where a key is absent, else object).
FLAT_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean)
# A JSON object whose values hold no object or array (its strings may hold anything escaped).
FLAT_OBJECT = r'\{(?:[^{}\[\]"]|"(?:[^"\\]|\\.)*")*\}'
# A key name starting as JSON may go on after a string (":{},", say) can also be found where a string before it
# ends ("k":{},":{},":...), so a column under such a name is left to the line path.
AFTER_A_STRING = re.compile(r"[\s:,}\]]")


def _one_object_per_line(chunk: np.ndarray, breaks: np.ndarray) -> bool:
    """Every line of the chunk's bytes, which end where `breaks` (the newlines' positions) say, starts with '{'
    and ends with '}' (before an optional CR).

    Then no line is blank and no object spans two lines, so Arrow yields one row per
    line exactly when no line holds two objects: its row count proves the line numbers.
    Counting alone would pass '{"a":1}{"b":2}' followed by a blank line.
    """
    if chunk.size == 0 or chunk[-1] == NEWLINE:
        return False
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


def arrow_records(chunk: bytes, text_columns: Sequence[str]) -> pd.DataFrame | None:
    """A chunk's records through Arrow, exactly as the line path would give them, else None.

    Arrow builds columns several times faster than parsing line by line, but a record
    must not depend on the path it took: its metadata, hence its derived id, would then
    depend on its neighbours. So only flat columns come from Arrow, and `text_columns`
    (the ISO timestamps) are read as text rather than left for Arrow to take for times.
    """
    # The newlines are found once, for the checks here and the lines of _flat_objects.
    bytes_ = np.frombuffer(chunk, dtype=np.uint8)
    breaks = np.flatnonzero(bytes_ == NEWLINE)
    if not _one_object_per_line(bytes_, breaks):
        return None
    table = _read_arrow(chunk, text_columns)
    if table is None or table.num_rows != len(breaks) + 1:
        return None
    if any(table.column(name).null_count == table.num_rows for name in text_columns):
        return None  # absent or all null: only the line path tells these apart
    for field in table.schema:
        # Past int64 Arrow reads an integer as a float, where orjson keeps it whole.
        if pa.types.is_floating(field.type) and (pc.max(pc.abs(table.column(field.name))).as_py() or 0) >= 2.0**63:
            return None
    nested = [field.name for field in table.schema if not any(flat(field.type) for flat in FLAT_TYPES)]
    records = table.drop_columns(nested).to_pandas()
    objects = _flat_objects(chunk, breaks, table, nested)
    if objects is not None:
        records = records.join(pd.DataFrame(objects))[table.column_names]
    elif nested:
        # Arrow's lists, objects, times and all-null columns differ from the line path's
        # (absent keys become null, ints floats, lists arrays, keys take the chunk's order,
        # ISO text turns naive UTC), so these columns are built as the line path does.
        try:
            parsed = [orjson.loads(line) for line in chunk.split(b"\n")]
        except orjson.JSONDecodeError:
            return None
        records = records.join(pd.DataFrame.from_records(parsed, columns=nested))[table.column_names]
    return records


def _flat_objects(chunk: bytes, breaks: np.ndarray, table: pa.Table, nested: list[str]) -> dict[str, np.ndarray] | None:
    """The nested columns of a chunk (its newlines at `breaks`) as the line path builds them, without parsing
    every line: else None.

    Only where each is an object of flat values on every line (a struct of flat Arrow types, no nulls),
    each line writes its key once and plainly (no escape in the chunk, so the literal "key" is that key),
    and each line's object matches FLAT_OBJECT. Each distinct object text is then parsed by orjson, as
    the line path parses it; rows with the same text share the dict.
    """
    if not nested or holds_escape(chunk, b"\\u"):
        return None
    # Each line as one binary value (its newline included), without copying the chunk: arrow_records has
    # checked that the table holds a row per line, as from_buffers needs.
    offsets = np.concatenate(([0], breaks + 1, [len(chunk)])).astype(np.int32)
    lines = pa.Array.from_buffers(pa.binary(), table.num_rows, [None, pa.py_buffer(offsets), pa.py_buffer(chunk)])
    columns: dict[str, np.ndarray] = {}
    for name in nested:
        column = table.column(name)
        if (
            not pa.types.is_struct(column.type)
            or column.null_count
            or not all(any(flat(field.type) for flat in FLAT_TYPES) for field in column.type)
        ):
            return None
        if AFTER_A_STRING.match(name):
            return None
        key = orjson.dumps(name).decode()
        found = pc.extract_regex(lines, re.escape(key) + r"\s*:\s*(?P<value>" + FLAT_OBJECT + ")")
        # Every line holds the key (no null), so as many keys in the chunk as lines means one on each line:
        # counted over the chunk at once, several times faster than line by line.
        if found.null_count or chunk.count(key.encode()) != table.num_rows:
            return None
        texts = found.field("value").dictionary_encode()
        parsed = np.empty(len(texts.dictionary), dtype=object)
        parsed[:] = [orjson.loads(text) for text in texts.dictionary.to_pylist()]
        columns[name] = parsed[texts.indices.to_numpy()]
    return columns
