"""Privacy: mask personal data before content is stored, and drop stored content after the retention period.

Masking runs on the extracted frame, before the Parquet hand-off, the quarantine or the
messages table can hold the text, so nothing downstream (tables, logs, reports) sees it.
The patterns run through Arrow's RE2 engine: one combined pass finds the few texts that
need masking, and only those get the per-pattern replacements.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from chatpulse.ingest.extract import RAW

# (replacement, RE2 pattern), applied in order: keys and ID numbers before the looser phone patterns.
MASKS: tuple[tuple[str, str], ...] = (
    (
        "[API_KEY]",
        r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
        r"|AIza[0-9A-Za-z_-]{35})",
    ),
    ("[EMAIL]", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    # Mainland China resident ID: 6-digit region, birth date 18xx-20xx, 3 digits, check digit or X.
    ("[ID_NUMBER]", r"\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b"),
    # Mainland China mobile, optionally +86 / 0086 / 86 and spaced or dashed 3-4-4.
    ("[PHONE]", r"(?:(?:\+|\b00)86[ -]?|\b86[ -]?|\b)1[3-9]\d(?:[ -]?\d{4}){2}\b"),
    # Mainland China landline with area code: 010-12345678, (0755) 1234567.
    ("[PHONE]", r"(?:\b0\d{2,3}-|\(0\d{2,3}\)\s?)\d{7,8}\b"),
    # International (+44 20 7946 0958) and North American ((415) 555-0100, 415.555.0100) numbers.
    ("[PHONE]", r"\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b"),
    ("[PHONE]", r"(?:\(\d{3}\)\s?|\b\d{3}[.-])\d{3}[.-]\d{4}\b"),
)
_ANY = "|".join(f"(?:{pattern})" for _, pattern in MASKS)
# Text columns that may hold what a person wrote, per record kind.
CONTENT_COLUMNS = {"messages": ("content",), "feedback": ("comment",)}
# Parquet hand-offs (asset name) holding those columns.
CONTENT_ASSETS = {
    "raw_messages": "content",
    "clean_messages": "content",
    "raw_feedback": "comment",
    "clean_feedback": "comment",
}


def mask(texts: pd.Series) -> pd.Series:
    """texts with e-mails, phone numbers, API keys and ID card numbers replaced by [EMAIL], [PHONE] and so on."""
    array = pa.array(texts, pa.string())
    hits = np.flatnonzero(pc.fill_null(pc.match_substring_regex(array, _ANY), False).to_numpy(zero_copy_only=False))
    if not len(hits):
        return texts
    masked = array.take(hits)
    for replacement, pattern in MASKS:
        masked = pc.replace_substring_regex(masked, pattern, replacement)
    out = texts.copy()
    out.iloc[hits] = masked.to_pylist()
    return out


def content_columns(kind: str) -> tuple[str, ...]:
    """Columns of an extracted frame of a record kind that may hold what a person wrote, the original line included."""
    return (*CONTENT_COLUMNS[kind], RAW) if kind in CONTENT_COLUMNS else ()


def mask_frame(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The frame with the given text columns (those present) masked, for any record kind."""
    for column in columns:
        if column in frame.columns:
            frame[column] = mask(frame[column])
    return frame


def retention_cutoff(today: dt.date, days: int) -> dt.date:
    """The first day whose content is still kept: content of earlier days is deleted."""
    return today - dt.timedelta(days=days)


def drop_content(engine: sa.Engine, tables: dict[str, sa.Table], cutoff: dt.date) -> dict[str, int]:
    """Set stored text to NULL for days before cutoff; rows, labels and metrics stay.

    messages.content, feedback.comment and the quarantine's raw records of messages and
    feedback are cleared. Returns the rows changed per table (portable SQL UPDATEs).
    """
    day = cutoff.isoformat()
    messages, feedback, quarantine = tables["messages"], tables["feedback"], tables["quarantine"]
    statements = {
        "messages": messages.update()
        .where((messages.c.day < day) & messages.c.content.is_not(None))
        .values(content=None),
        "feedback": feedback.update()
        .where((feedback.c.day < day) & feedback.c.comment.is_not(None))
        .values(comment=None),
        "quarantine": quarantine.update()
        .where((quarantine.c.day < day) & quarantine.c.kind.in_(list(CONTENT_COLUMNS)) & quarantine.c.raw.is_not(None))
        .values(raw=None),
    }
    with engine.begin() as conn:
        return {name: conn.execute(statement).rowcount for name, statement in statements.items()}


def drop_stored_content(storage: Path, cutoff: dt.date) -> list[Path]:
    """Null the text column of the content hand-off Parquet files of days before cutoff; returns the files rewritten.

    Files are rewritten rather than deleted so a downstream asset of an old day can still
    be re-materialized; a file already without text is left alone.
    """
    rewritten = []
    for asset, column in CONTENT_ASSETS.items():
        for path in sorted((storage / asset).glob("*.parquet")):
            try:
                day = dt.date.fromisoformat(path.stem)
            except ValueError:
                continue
            if day >= cutoff:
                continue
            table = pq.read_table(path)
            text = [
                name for name in (column, RAW) if name in table.column_names and table[name].null_count < len(table)
            ]
            for name in text:
                table = table.set_column(table.column_names.index(name), name, pa.nulls(len(table), table[name].type))
            if text:
                pq.write_table(table, path)
                rewritten.append(path)
    return rewritten
