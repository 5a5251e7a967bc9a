"""A file's records as the blocks it was read in, given the columns and types of the whole file.

Extract maps a big JSON lines file a block of records at a time (extract.mapped_records), so that the
file's records and its mapped rows are never both held whole. A record must map as it would in the
file's records concatenated: with their columns, in their order, and their types (pandas' concat takes
a type common to every block's, and an all-missing block's type does not count, so an integer column
becomes float where one block lacks it). `template` finds those without concatenating the records,
`unified` gives a block them, and `joined` puts mapped blocks together a column at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

# Mapped a group of blocks at a time, so that pandas' cost per call is paid per this many rows, not per block.
GROUP_ROWS = 1 << 17


def _sample(records: pd.DataFrame) -> pd.DataFrame:
    """Rows of `records` that keep, for its concatenation with others, what pandas' concat looks at: every
    column's type, and whether it holds any value (its first one that does, else its first row)."""
    if records.empty:
        return records
    held = records.notna().to_numpy()
    firsts = {0} | {int(row) for row in held.argmax(axis=0)}
    return records.iloc[sorted(firsts)]


def template(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """A frame without rows holding the columns and types of the parts concatenated (pd.concat)."""
    if len(parts) == 1:
        return parts[0].iloc[:0]
    return pd.concat([_sample(records) for records in parts], ignore_index=True).iloc[:0]


def unified(records: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """`records` with the columns and types of `like` (template): a missing column missing in every row,
    values converted as concat converts them. The frame itself when it has them already."""
    if list(records.columns) == list(like.columns) and records.dtypes.equals(like.dtypes):
        return records
    columns = {}
    for name, dtype in like.dtypes.items():
        if name in records.columns:
            column = records[name]
            columns[name] = column if column.dtype == dtype else column.astype(dtype)
        else:
            columns[name] = pd.Series(np.nan, index=records.index, dtype=object).astype(dtype)
    return pd.DataFrame(columns, index=records.index, columns=like.columns, copy=False)


def groups(parts: list[pd.DataFrame], like: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The parts unified (like `like`) and joined into groups of about GROUP_ROWS rows, one group at a
    time, each part taken from `parts` as it is (so a part is held once: in the list, or in its group)."""
    pending: list[pd.DataFrame] = []
    rows = 0
    while parts:
        pending.append(unified(parts.pop(0), like))
        rows += len(pending[-1])
        if rows >= GROUP_ROWS or not parts:
            group = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
            pending, rows = [], 0
            yield group


def joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames (same columns and types) one after the other, as pd.concat puts them, each column
    taken from them as it is joined, so the frames and their join are never both held whole; empties `frames`."""
    if len(frames) == 1:
        return frames.pop()
    columns = {}
    for name in frames[0].columns:
        columns[name] = pd.concat([frame[name] for frame in frames], ignore_index=True).array
        for frame in frames:
            del frame[name]
    size = sum(len(frame) for frame in frames)
    frames.clear()
    return pd.DataFrame(columns, index=pd.RangeIndex(size), copy=False)
