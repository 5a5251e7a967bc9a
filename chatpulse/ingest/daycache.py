"""The rows a landing file holds for other days than the one being run, kept so the file is parsed once.

A first run over a folder of many days reads every file on its first day (to learn which days each
holds). Without this, each later day parses its files again. With it, the day that parses a new (or
changed) file writes the file's rows of every other day that can be run as Parquet, one file per
landing file and day, after `protect` (masking, pseudonyms: nothing unmasked is stored), and a later
day's extract reads those rows instead of the file while its stamp holds.

Layout: `<folder>/<YYYY-MM-DD>/<key>-<size>-<mtime_ns>.parquet`, where `key` is a hash of the file's
label and of the settings that shape its rows (`fingerprint`), and size and mtime_ns are the file's
FileStamp when parsed. So an entry serves only the same file, unchanged, mapped and protected the same
way. Entries go when their day has been extracted from them (`drop_day`), when their file changes or
is gone (`drop_stale`, `keep_only`) and, unread, after the content retention period
(`drop_cached_older`). Every write is atomic (a temporary file renamed), and an entry that cannot be
read is a miss: the file is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chatpulse.warehouse import FileStamp

CACHE_DIR = "extract_cache"  # under the storage folder, beside the assets' Parquet hand-offs
UNRESOLVED = b"chatpulse.unresolved"  # Parquet key-value metadata: the file's unresolved paths (JSON list)


@dataclass(frozen=True)
class CachedPart:
    """One landing file's rows of one day as the cache holds them, protected, and the paths its source reads
    that reached no record of the whole file (extract.Mapped.unresolved)."""

    frame: pd.DataFrame
    unresolved: tuple[str, ...]


@dataclass(frozen=True)
class DayCache:
    """Where a kind's cached rows live (`folder`; None: no cache, every day parses its files) and what a
    file's rows go through before anything stores them (`protect`, in place, returning the frame).

    `fingerprint` names the settings the rows depend on (sources, time zone, privacy): an entry written
    under other settings is never read.
    """

    folder: Path | None
    protect: Callable[[pd.DataFrame], pd.DataFrame]
    fingerprint: str = ""

    def _key(self, label: str) -> str:
        return hashlib.sha256(f"{self.fingerprint}\0{label}".encode()).hexdigest()[:24]

    def _path(self, folder: Path, label: str, stamp: FileStamp, day: str) -> Path:
        return folder / day / f"{self._key(label)}-{stamp.size}-{stamp.mtime_ns}.parquet"

    def read(self, label: str, stamp: FileStamp, day: str) -> CachedPart | None:
        """The rows of `day` (YYYY-MM-DD) the file `label` held when it looked like `stamp`; None when the
        cache has none (never written, consumed, or unreadable: the caller parses the file)."""
        if self.folder is None:
            return None
        try:
            table = pq.read_table(self._path(self.folder, label, stamp, day))
        except (OSError, pa.ArrowException):  # absent, or removed or cut short by another run: a miss
            return None
        unresolved = json.loads((table.schema.metadata or {}).get(UNRESOLVED, b"[]"))
        return CachedPart(table.to_pandas(), tuple(unresolved))

    def write(
        self, label: str, stamp: FileStamp, parts: Iterable[tuple[str, pd.DataFrame]], unresolved: tuple[str, ...]
    ) -> None:
        """Store a freshly parsed file's rows of other days (`parts`: day YYYY-MM-DD, protected rows), each
        written and dropped in turn, after removing what the cache held for an earlier version of the file."""
        if self.folder is None:
            return
        self.drop_stale(label, stamp)
        for day, frame in parts:
            path = self._path(self.folder, label, stamp, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            meta = {**(table.schema.metadata or {}), UNRESOLVED: json.dumps(list(unresolved)).encode()}
            part = path.with_name(f".{path.name}.{os.getpid()}.part")
            pq.write_table(table.replace_schema_metadata(meta), part)
            part.replace(path)  # atomic: a reader sees the whole entry or none

    def _entries(self, pattern: str) -> list[Path]:
        return sorted(self.folder.glob(f"*/{pattern}.parquet")) if self.folder is not None else []

    def drop_stale(self, label: str, stamp: FileStamp) -> None:
        """Remove the entries of `label` written for any other version of the file than `stamp`."""
        current = f"{self._key(label)}-{stamp.size}-{stamp.mtime_ns}.parquet"
        for path in self._entries(f"{self._key(label)}-*"):
            if path.name != current:
                path.unlink(missing_ok=True)

    def keep_only(self, labels: Iterable[str]) -> None:
        """Remove the entries of files not among `labels` (the landing files there now): a file gone, or
        written under other settings."""
        keys = {self._key(label) for label in labels}
        for path in self._entries("*"):
            if path.name.split("-", 1)[0] not in keys:
                path.unlink(missing_ok=True)

    def drop_day(self, day: date) -> None:
        """Remove every entry of `day`: once a day has been extracted from them they are not needed (a rerun
        of the day parses its files again, and a neighbouring day's sessions read its clean rows)."""
        if self.folder is not None:
            shutil.rmtree(self.folder / day.isoformat(), ignore_errors=True)


def drop_cached_older(storage: Path, age: timedelta, now: datetime | None = None) -> list[Path]:
    """Remove the cached rows (every kind) written more than `age` before `now` (default: the current time);
    returns the entries removed.

    By when an entry was written, not by its day: a first run over old logs (days the content retention
    has already passed) still reads each file once, while no entry outlives the retention period.
    """
    oldest = ((now or datetime.now(UTC)) - age).timestamp()
    removed = []
    for entry in sorted((storage / CACHE_DIR).glob("*/*/*.parquet")):
        try:
            if entry.stat().st_mtime < oldest:
                entry.unlink()
                removed.append(entry)
        except FileNotFoundError:  # consumed by a run meanwhile
            continue
    return removed
