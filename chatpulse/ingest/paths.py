"""Read a source's columns out of one file's records: paths into nested JSON, and derived values.

The syntax is `chatpulse.mapping`'s. A path is resolved one key at a time over a whole column of
records (dicts as the reader built them, lists, or JSON text, parsed once per file and key),
so a file pays for its nested paths only, and a flat column is handed over as it was read.
Every value ends as a value, as none (the path does not reach it in that row) or as a problem
for its row: text a path had to read as JSON and could not, a time or a number that cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from chatpulse.config import SourceConfig
from chatpulse.ingest.times import parse_timestamps
from chatpulse.mapping import QUOTE, Derived, Duration, ValueMap, split_path, value_key

MISSING = object()  # a path does not reach this row (a key or list item is not there)
NOT_JSON = "not valid JSON"


def path_text(keys: Iterable[str]) -> str:
    """Keys written back as a path, a key holding a dot in quotes."""
    return ".".join(f"{QUOTE}{key}{QUOTE}" if "." in key else key for key in keys)


def top_keys(path: str) -> set[str]:
    """The record keys a path may read: itself (a flat key wins) and its first key."""
    return {path, split_path(path)[0]}


def _step(value: object, key: str) -> object:
    """One key further into a value: a mapping's key, a list's item (a whole number from 0), else MISSING."""
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return MISSING


def _absent(value: object) -> bool:
    return value is None or value is MISSING or value is pd.NA or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class Read:
    """What a source holds for one canonical column: `values` on the records' positions (none where
    nothing is there), whether any of its paths reached a row (`found`), the rows with a problem
    (bool array, reason without the column's name) and whether the values are milliseconds already."""

    values: pd.Series
    found: bool
    problems: list[tuple[np.ndarray, str]] = field(default_factory=list)
    milliseconds: bool = False


class Resolver:
    """The values of paths over one file's records; what each level holds is computed once."""

    def __init__(self, records: pd.DataFrame, reached: set[str] | None = None) -> None:
        """Over `records`; `reached`, when these are part of a file's records, the nested paths that reach
        a record of the whole file, which then says whether a path is found (Read.found)."""
        self.records = records
        self.reached = reached
        self.size = len(records)
        self._at: dict[tuple[str, ...], np.ndarray] = {}
        self._inside: dict[tuple[str, ...], np.ndarray] = {}
        self._not_json: dict[tuple[str, ...], np.ndarray] = {}
        self.resolved: set[str] = set()  # the paths read so far that reached at least one row

    def read(self, path: str) -> Read:
        """The values at `path` (see chatpulse.mapping for the syntax); a key of the record spelled
        exactly as the path wins. Rows whose JSON text the path had to enter are problems."""
        columns = self.records.columns
        if path in columns:  # a flat column: handed over as read, so flat sources cost nothing more
            self.resolved.add(path)
            return Read(self.records[path].reset_index(drop=True), True)
        keys = split_path(path)
        if keys[0] not in columns:
            return Read(pd.Series(None, index=pd.RangeIndex(self.size), dtype=object), False)
        if len(keys) == 1:
            self.resolved.add(path)
            return Read(self.records[keys[0]].reset_index(drop=True), True)
        values = self._values_at(keys)
        reached = np.fromiter((value is not MISSING for value in values), dtype=bool, count=self.size)
        if reached.any():
            self.resolved.add(path)
        problems = [
            (self._not_json[keys[:depth]], f"{path_text(keys[:depth])}: {NOT_JSON}")
            for depth in range(1, len(keys))
            if keys[:depth] in self._not_json
        ]
        out = pd.Series(np.where(reached, values, None), index=pd.RangeIndex(self.size), dtype=object)
        found = bool(reached.any()) if self.reached is None else path in self.reached
        return Read(out, found, problems)

    def _values_at(self, keys: tuple[str, ...]) -> np.ndarray:
        """The value at `keys` in each row (object array, MISSING where the path does not reach)."""
        if keys not in self._at:
            if len(keys) == 1:
                self._at[keys] = self.records[keys[0]].to_numpy(dtype=object)
            else:
                key = keys[-1]
                parents = self._containers(keys[:-1])
                self._at[keys] = np.fromiter(
                    (value.get(key, MISSING) if type(value) is dict else _step(value, key) for value in parents),
                    dtype=object,
                    count=self.size,
                )
        return self._at[keys]

    def _containers(self, keys: tuple[str, ...]) -> np.ndarray:
        """The values at `keys` with JSON text read as JSON, to go further into; rows whose text is
        not JSON are noted in _not_json and reach nothing."""
        if keys not in self._inside:
            values = self._values_at(keys)
            texts = [position for position, value in enumerate(values) if isinstance(value, str)]
            if texts:
                values = values.copy()
                bad = np.zeros(self.size, dtype=bool)
                for position in texts:
                    text = values[position]
                    if not text.strip():
                        values[position] = MISSING
                        continue
                    try:
                        values[position] = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        values[position], bad[position] = MISSING, True
                if bad.any():
                    self._not_json[keys] = bad
            self._inside[keys] = values
        return self._inside[keys]


def read_column(resolver: Resolver, source: SourceConfig, name: str) -> Read:
    """What `source` holds for the canonical column `name`: a path's values or a derived value. A field
    the source drops is not read under its own name (only a mapping in `columns` reads it)."""
    if name in source.drop and name not in source.columns:
        return Read(pd.Series(None, index=pd.RangeIndex(resolver.size), dtype=object), False)
    return _read(resolver, source, source.column(name))


def _read(resolver: Resolver, source: SourceConfig, column: str | Derived) -> Read:
    if isinstance(column, str):
        return resolver.read(column)
    if column.duration is not None:
        return _duration(resolver, column.duration, source)
    if column.sum is not None:
        return _sum(resolver, column.sum)
    if column.first is not None:
        return _first(resolver, source, column.first)
    assert column.map is not None  # a Derived holds exactly one
    return _mapped(resolver, column.map)


def _held(values: pd.Series) -> np.ndarray:
    """Where values are there: not missing, and not blank text."""
    held = values.notna().to_numpy(dtype=bool)
    text = np.fromiter((isinstance(v, str) and not v.strip() for v in values.tolist()), dtype=bool, count=len(values))
    return held & ~text


def _first(resolver: Resolver, source: SourceConfig, choices: tuple[str | Derived, ...]) -> Read:
    """Per row, the value of the first choice that holds one (blank text holds none).

    The choices' values are combined as they are read (a duration's in ms); a problem of a choice
    counts only where no earlier choice gave the row its value.
    """
    values = pd.Series(None, index=pd.RangeIndex(resolver.size), dtype=object)
    taken = np.zeros(resolver.size, dtype=bool)
    problems: list[tuple[np.ndarray, str]] = []
    found, milliseconds = False, True
    for choice in choices:
        read = _read(resolver, source, choice)
        found |= read.found
        milliseconds &= read.milliseconds or not read.found
        problems += [(rows & ~taken, reason) for rows, reason in read.problems]
        fresh = ~taken & _held(read.values)
        values[fresh] = read.values[fresh].astype(object)
        taken |= fresh
    return Read(values, found, problems, milliseconds=milliseconds and found)


def _times(read: Read, path: str, source: SourceConfig) -> tuple[pd.Series, list[tuple[np.ndarray, str]]]:
    times = parse_timestamps(read.values, source)
    problems = [*read.problems]
    for reason in times.problems.dropna().unique():
        problems.append(((times.problems == reason).to_numpy(), f"{path}: {reason}"))
    return times.utc, problems


def _duration(resolver: Resolver, duration: Duration, source: SourceConfig) -> Read:
    """Milliseconds from start to end; none where either is missing, or where end equals null_if_end_equals."""
    start, end = resolver.read(duration.start), resolver.read(duration.end)
    start_utc, problems = _times(start, duration.start, source)
    end_utc, end_problems = _times(end, duration.end, source)
    milliseconds = (end_utc - start_utc) / pd.Timedelta(milliseconds=1)
    if duration.null_if_end_equals is not None:
        same = resolver.read(duration.null_if_end_equals)
        same_utc, same_problems = _times(same, duration.null_if_end_equals, source)
        milliseconds = milliseconds.mask((end_utc == same_utc).fillna(False).astype(bool))
        end_problems += same_problems
    return Read(milliseconds.astype("float64"), start.found and end.found, problems + end_problems, milliseconds=True)


def _sum(resolver: Resolver, paths: tuple[str, ...]) -> Read:
    """The sum of the numbers at `paths`: a missing term counts 0, a row with none at all has none."""
    terms, problems, found = [], [], False
    for path in paths:
        read = resolver.read(path)
        found |= read.found
        problems += read.problems
        numbers = pd.to_numeric(read.values.astype(object), errors="coerce").astype("float64")
        unreadable = numbers.isna() & read.values.notna()
        if unreadable.any():  # blank text is no value, not a bad number
            unreadable[unreadable] = read.values[unreadable].astype(str).str.strip() != ""
            problems.append((unreadable.to_numpy(dtype=bool), f"{path}: not a number"))
        terms.append(numbers)
    total = pd.concat(terms, axis=1).sum(axis=1, min_count=1) if terms else pd.Series(dtype="float64")
    return Read(total.reset_index(drop=True), found, problems)


def _mapped(resolver: Resolver, table: ValueMap) -> Read:
    """The table's value for the text of each value at `from`; `default` for one not listed, `missing` for none."""
    read = resolver.read(table.source)
    values = [
        table.missing if _absent(value) else table.values.get(value_key(value), table.default)
        for value in read.values.tolist()
    ]
    return Read(pd.Series(values, index=read.values.index, dtype=object), read.found, read.problems)
