"""Privacy: what a day's rows go through before anything stores them, and stored text after the retention period.

`protect` runs on the extracted frame, before the Parquet hand-off, the quarantine or any
table can hold it: with `pseudonymize_storage` user ids become pseudonyms (chatpulse.pseudonyms),
in the `user_id` column and in the original line kept for a faulty row; request metadata is cut
to `metadata_keys` and masked; message content, comments and original lines are masked
(chatpulse.ingest.masking). Nothing downstream (tables, logs, reports) sees the raw values.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from chatpulse.config import Settings
from chatpulse.ingest.daycache import CACHE_DIR, DayCache
from chatpulse.ingest.extract import RAW
from chatpulse.ingest.masking import mask, mask_metadata
from chatpulse.ingest.paths import top_keys
from chatpulse.mapping import split_path
from chatpulse.pseudonyms import Pseudonyms
from chatpulse.schema import COLUMNS, SOURCE_FILE, Kind

# Text columns that may hold what a person wrote, per record kind (besides the original line, RAW).
CONTENT_COLUMNS = {"messages": ("content",), "feedback": ("comment",)}
METADATA = "metadata"
# Parquet hand-offs (asset name) holding text the retention period applies to, and its columns.
CONTENT_ASSETS = {
    "raw_messages": ("content",),
    "clean_messages": ("content",),
    "raw_feedback": ("comment",),
    "clean_feedback": ("comment",),
    "raw_requests": (METADATA,),
    "clean_requests": (METADATA,),
    "neighbour_messages": ("content",),
    "neighbour_requests": (METADATA,),
}
# A CSV line too malformed to tell its fields apart cannot have its user id replaced: it is not kept.
WITHHELD = "[line withheld: a malformed CSV line, so its user id cannot be replaced]"
UNREADABLE_USER = '"[USER_ID]"'  # the user id of a JSON line cut off inside it


def content_columns(kind: str) -> tuple[str, ...]:
    """Columns of an extracted frame of a record kind that may hold what a person wrote, the original line included."""
    return (*CONTENT_COLUMNS.get(kind, ()), RAW)


def mask_frame(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The frame with the given text columns (those present) masked, for any record kind."""
    for column in columns:
        if column in frame.columns:
            frame[column] = mask(frame[column])
    return frame


def user_keys(settings: Settings, kind: Kind) -> tuple[str, ...]:
    """The fields of a kind's landing files that hold the user id (the paths each source reads user_id from).

    A nested user id (`metadata.user_api_key_user_id`) is named by its own key, which is where a line holds it.
    """
    paths = {path for source in settings.sources if source.kind == kind for path in source.inputs("user_id")}
    return tuple(sorted({key for path in paths for key in (path, split_path(path)[-1])}))


def _is_csv(label: str) -> bool:
    return label.lower().removesuffix(".gz").endswith(".csv")


def _json_value(value: str, pseudonyms: Pseudonyms) -> str:
    """A user id as written in a JSON line (a string, possibly cut off, or a number) as its pseudonym, in JSON."""
    if value.startswith('"'):
        try:
            value = json.loads(value)
        except ValueError:
            return UNREADABLE_USER
    return json.dumps(pseudonyms.user(value))


def pseudonymized_line(line: str, user: str | None, label: str, pseudonyms: Pseudonyms, keys: re.Pattern[str]) -> str:
    """An original line with its user id replaced by the pseudonym.

    A JSON line (even a malformed one) has the value of every user-id key (`keys`, from
    `user_key_pattern`) replaced; a CSV line has every field equal to the row's user id
    (`user`, as read) replaced, and a CSV line that could not be read (no `user`) is withheld.
    """
    if not _is_csv(label):
        return keys.sub(lambda m: m[1] + _json_value(m[2], pseudonyms), line)
    if user is None:
        return WITHHELD
    fields = [pseudonyms.user(field) if field == user else field for field in next(csv.reader([line]))]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def user_key_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    """The JSON `"key": value` of any of `keys`: group 1 the key and colon, group 2 the value (a string, possibly
    cut off at the end of the line, or a number)."""
    names = "|".join(re.escape(json.dumps(key)[1:-1]) for key in keys)
    return re.compile(rf'("(?:{names})"\s*:\s*)("(?:[^"\\]|\\.)*"?|-?[0-9][0-9.eE+-]*)')


def pseudonymize_frame(frame: pd.DataFrame, pseudonyms: Pseudonyms, keys: tuple[str, ...]) -> pd.DataFrame:
    """The frame with `user_id` and the user ids in the original lines (RAW) replaced by pseudonyms (in place).

    `keys` are the landing files' user-id fields (`user_keys`). Each distinct id is hashed once;
    only the few faulty rows that kept their line are rewritten one by one.
    """
    if "user_id" not in frame.columns:
        return frame
    read = frame["user_id"]
    frame["user_id"] = pseudonyms.users(read)
    if RAW not in frame.columns:
        return frame
    rows = np.flatnonzero(frame[RAW].notna().to_numpy())
    pattern = user_key_pattern(keys)
    users = read.astype(object).where(read.notna(), None).to_numpy()
    lines = frame[RAW].to_numpy(dtype=object, copy=True)
    labels = frame[SOURCE_FILE].to_numpy(dtype=object)
    for row in rows:
        lines[row] = pseudonymized_line(lines[row], users[row], labels[row], pseudonyms, pattern)
    frame[RAW] = pd.Series(lines, index=frame.index, dtype=object)
    return frame


def trimmed_line(line: str, allowed: frozenset[str], keep: frozenset[str], metadata: frozenset[str]) -> str:
    """A JSON object line with only the `allowed` top-level keys, and its own `metadata` mappings (fields named
    in `metadata`) cut to the `keep` keys; any other line as it is (it cannot be cut)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    kept = {
        key: {k: v for k, v in value.items() if k in keep} if key in metadata and isinstance(value, dict) else value
        for key, value in record.items()
        if key in allowed
    }
    return json.dumps(kept, ensure_ascii=False)


def trim_lines(frame: pd.DataFrame, settings: Settings, keep: frozenset[str]) -> pd.DataFrame:
    """The original lines (RAW) of faulty requests cut to their mapped fields and the `keep` metadata keys,
    as their metadata is (in place)."""
    if RAW not in frame.columns:
        return frame
    sources = [source for source in settings.sources if source.kind == Kind.REQUESTS]
    mapped = {
        key
        for source in sources
        for name in COLUMNS[Kind.REQUESTS]
        for path in source.inputs(name)
        for key in top_keys(path)
    }
    metadata = frozenset(source.source_column(METADATA) for source in sources)
    allowed = frozenset(mapped | keep)
    rows = np.flatnonzero(frame[RAW].notna().to_numpy())
    lines = frame[RAW].to_numpy(dtype=object, copy=True)
    for row in rows:
        lines[row] = trimmed_line(lines[row], allowed, keep, metadata)
    frame[RAW] = pd.Series(lines, index=frame.index, dtype=object)
    return frame


def protect(frame: pd.DataFrame, kind: Kind, settings: Settings) -> pd.DataFrame:
    """Everything done to a freshly extracted frame of `kind` before it is stored (in place; returns it):
    user ids pseudonymised (`pseudonymize_storage`), request metadata cut to `metadata_keys` and masked
    (and the original lines of faulty requests cut to their mapped fields and those keys), content,
    comments and original lines masked."""
    pseudonyms = settings.storage_pseudonyms
    if pseudonyms is not None:
        pseudonymize_frame(frame, pseudonyms, user_keys(settings, kind))
    if kind == Kind.REQUESTS and METADATA in frame.columns:
        keep = None if settings.metadata_keys is None else frozenset(settings.metadata_keys)
        frame[METADATA] = mask_metadata(frame[METADATA], keep)
        if keep is not None:  # an original line would otherwise keep every field the metadata lost
            trim_lines(frame, settings, keep)
    return mask_frame(frame, content_columns(kind.value))


def day_cache(settings: Settings, kind: Kind) -> DayCache:
    """The extract cache of `kind` (chatpulse.ingest.daycache) under the storage folder, its rows protected as
    `protect` does; with `extract_cache: false` none is kept (every day parses its files), rows still protected.

    Its fingerprint covers what shapes a file's rows: the kind's sources, the time zone and the privacy
    settings (the pseudonym key only as part of a hash), so changing any of them leaves old entries unread.
    """
    shaping = (
        [source for source in settings.sources if source.kind == kind],
        settings.timezone,
        settings.pseudonymize_storage,
        settings.pseudonym_key if settings.pseudonymize_storage else None,
        settings.metadata_keys,
    )
    folder = settings.storage_dir / CACHE_DIR / kind.value if settings.extract_cache else None
    fingerprint = hashlib.sha256(repr(shaping).encode()).hexdigest()

    def protected(frame: pd.DataFrame) -> pd.DataFrame:
        return protect(frame, kind, settings)

    return DayCache(folder, protected, fingerprint)


def retention_cutoff(today: dt.date, days: int) -> dt.date:
    """The first day whose content is still kept: content of earlier days is deleted."""
    return today - dt.timedelta(days=days)


def drop_content(
    engine: sa.Engine, tables: dict[str, sa.Table], cutoff: dt.date, keep_metadata: bool = False
) -> dict[str, int]:
    """Set stored text to NULL for days before cutoff; rows, labels and metrics stay.

    messages.content, feedback.comment, requests.metadata (unless `keep_metadata`: it holds only
    the configured `metadata_keys`) and the quarantine's raw records of every kind are cleared.
    Returns the rows changed per table (portable SQL UPDATEs).
    """
    day = cutoff.isoformat()
    cleared = {"messages": "content", "feedback": "comment", "quarantine": "raw"}
    if not keep_metadata:
        cleared["requests"] = METADATA
    statements = {}
    for name, column in cleared.items():
        table = tables[name]
        statements[name] = (
            table.update().where((table.c.day < day) & table.c[column].is_not(None)).values({column: None})
        )
    with engine.begin() as conn:
        return {name: conn.execute(statement).rowcount for name, statement in statements.items()}


def drop_stored_content(storage: Path, cutoff: dt.date, keep_metadata: bool = False) -> list[Path]:
    """Null the text columns of the content hand-off Parquet files of days before cutoff; returns the files rewritten.

    Files are rewritten rather than deleted so a downstream asset of an old day can still
    be re-materialized; a file already without text is left alone. Request metadata is kept
    with `keep_metadata`, as in `drop_content`.
    """
    rewritten = []
    for asset, columns in CONTENT_ASSETS.items():
        cleared = [c for c in columns if not (keep_metadata and c == METADATA)]
        for path in sorted((storage / asset).glob("*.parquet")):
            try:
                day = dt.date.fromisoformat(path.stem)
            except ValueError:
                continue
            if day < cutoff and _clear_columns(path, (*cleared, RAW)):
                rewritten.append(path)
    return rewritten


def _clear_columns(path: Path, names: tuple[str, ...]) -> bool:
    """Null the columns `names` of a Parquet file that hold a value, a row group at a time; False when none does.

    Row group by row group, and without decoding the columns cleared, so catching up on an old day of
    ten million requests holds one group (a million rows) of the other columns, not the whole day.
    """
    with pq.ParquetFile(path) as file:
        schema = file.schema_arrow
        text = {name for name in names if name in schema.names and _holds_values(file, name)}
        if not text:
            return False
        kept = [name for name in schema.names if name not in text]
        scratch = path.with_name(f".{path.name}.clearing")
        with pq.ParquetWriter(scratch, schema) as writer:
            for group in range(file.num_row_groups):
                rows = file.read_row_group(group, columns=kept)
                columns = [
                    pa.nulls(rows.num_rows, field.type) if field.name in text else rows[field.name] for field in schema
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    scratch.replace(path)
    return True


def _holds_values(file: pq.ParquetFile, name: str) -> bool:
    """Whether a top-level column of the file holds a non-null value: from each row group's statistics,
    reading the column only where a writer kept none."""
    for group in range(file.num_row_groups):
        meta = file.metadata.row_group(group)
        chunk = next((meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == name), None)
        stats = chunk.statistics if chunk is not None else None
        if stats is not None and stats.has_null_count:
            nulls = stats.null_count
        else:
            nulls = file.read_row_group(group, columns=[name])[name].null_count
        if nulls < meta.num_rows:
            return True
    return False
