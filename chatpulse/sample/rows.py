"""A sample table held as numbers and shared strings, and the renderers that make its text.

The simulation builds Rows; the writer serialises them block by block, so a million-row
day never holds its ids and timestamps as Python strings all at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def ids(prefix: str, day: date, seed: int, seq: np.ndarray) -> np.ndarray:
    """Random-looking ids that cannot collide: a bijective mix of (day, sequence number).

    Returns prefix + 16 hex digits per non-negative sequence number. The seed and the
    prefix only flip bits, so each (seed, kind) gets its own id space.
    """
    x = (np.uint64(day.toordinal()) << np.uint64(40)) | seq.astype(np.uint64)
    x ^= np.uint64((seed * 0x9E3779B97F4A7C15 + zlib.crc32(prefix.encode()) * 0xC2B2AE3D27D4EB4F) % 2**64)
    with np.errstate(over="ignore"):  # splitmix64's finaliser wraps by design
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    digits = np.empty((len(x), 16), dtype=np.uint8)
    for position in range(16):
        digits[:, 15 - position] = _HEX[(x >> np.uint64(4 * position)) & np.uint64(15)]
    return np.strings.add(prefix, digits.view("S16").ravel().astype("U16"))


def optional_ids(prefix: str, day: date, seed: int, seq: np.ndarray) -> np.ndarray:
    """Ids (an object array) where the sequence number is set; None where it is -1."""
    out = ids(prefix, day, seed, np.maximum(seq, 0)).astype(object)
    out[seq < 0] = None
    return out


def iso(epoch_ms: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC timestamps with milliseconds ("2024-03-08T09:15:02.123+00:00") of epoch ms."""
    stamps = np.floor(epoch_ms).astype(np.int64).astype("datetime64[ms]")
    return np.strings.add(np.datetime_as_string(stamps, unit="ms"), "+00:00")


@dataclass(frozen=True)
class Rows:
    """A table held as numbers and shared strings, serialised block by block.

    Unique text (ids, timestamps) would dominate memory at a million rows, so those columns
    hold their source (a sequence number, epoch milliseconds) and a renderer makes the text
    only for the block being written.
    """

    columns: dict[str, np.ndarray]
    render: dict[str, Callable[[np.ndarray], np.ndarray]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def frame(self, rows: slice | list[int]) -> pd.DataFrame:
        """The selected rows as a DataFrame in column order, with rendered columns as text."""
        data: dict[str, object] = {}
        for name, values in self.columns.items():
            part = self.render[name](values[rows]) if name in self.render else values[rows]
            # Object columns serialise faster than pandas' own string dtype.
            data[name] = pd.Series(part, dtype=object) if part.dtype.kind in "OU" else part
        return pd.DataFrame(data)
