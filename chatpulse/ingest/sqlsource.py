"""Read a SQL source: the rows a database query gives for a day, mapped as a landing file's records are.

A source with an `sql` section (chatpulse.sqlconfig.SqlQuery) runs its query once per local day, with
the day's bounds (chatpulse.days.day_bounds: aware UTC datetimes) bound as :day_start and :day_end,
and fetches the rows `chunk_rows` at a time (a server-side cursor where the driver has one). Each
chunk becomes a RawFile whose "lines" are its rows as JSON, so `extract.map_records` maps, checks and
keeps faulty rows exactly as it does a JSON-lines file's: same columns, presets, time parsing and
quarantine. The rows' lineage is `source_file` = `sql:<source name>` and `source_line` = the row's
place among the day's rows ordered by the source's key column (`sql_key`), so a rerun numbers them
alike; a quarantined row keeps the row itself, key included, as its raw record.

A row is filed on the day whose query returned it. One whose own time falls on another local day
(a query bounded on another column, or naive times read in another zone) is quarantined with
NOT_ON_DAY, so no row is lost or counted twice. On PostgreSQL the session's time zone is the source's
`timestamp.timezone`, so a `timestamp without time zone` column is compared with the bounds in the
zone its values are read in, and the transaction is read-only. The URL's password never appears in
an error: messages name the database by `SqlQuery.shown_url`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from chatpulse.config import SourceConfig
from chatpulse.days import DaySpan, day_bounds, local_days
from chatpulse.ingest.convert import json_value
from chatpulse.ingest.daycache import DayCache
from chatpulse.ingest.extract import ERRORS, RAW, Extract, extract_day, map_records
from chatpulse.ingest.files import ExtractError, RawFile
from chatpulse.schema import SOURCE_LINE, Kind, coded, stacked
from chatpulse.sqlconfig import BOUNDS, hidden
from chatpulse.warehouse import FileStamp

NOT_ON_DAY = "timestamp: not on the day its query read it for"
LABEL_PREFIX = "sql:"


class SqlSourceError(ExtractError):
    """A SQL source could not be read; the message names the source and its database, never the password."""


def source_label(source: SourceConfig) -> str:
    """What a SQL source's rows carry as `source_file`: `sql:<source name>`."""
    return f"{LABEL_PREFIX}{source.name}"


def _environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _failure(source: SourceConfig, env: Mapping[str, str], doing: str, exc: Exception) -> SqlSourceError:
    """`exc` in one line, any password it quotes hidden, naming the source and its database."""
    said = " ".join(str(getattr(exc, "orig", None) or exc).split())
    with contextlib.suppress(ValueError):  # a variable not set: nothing of it can be quoted
        said = hidden(said, source.sql.connect_url(env))
    return SqlSourceError(f"source '{source.name}': cannot {doing} {source.sql.shown_url(env)}: {said}")


@dataclass(frozen=True)
class DayQuery:
    """A day's query, running: the result's column names and its rows, a RawFile per chunk."""

    columns: tuple[str, ...]
    chunks: Iterator[RawFile]


def raw_rows(rows: Sequence[Sequence[object]], columns: tuple[str, ...]) -> RawFile:
    """Rows (value tuples in `columns` order) as records numbered from 1, with their JSON lines as the RawFile's
    text, which map_records looks in for NUL and oversized values and keeps a faulty row's raw record from."""
    values = [tuple(row) for row in rows]
    records = pd.DataFrame.from_records(values, columns=list(columns), index=pd.RangeIndex(len(values)))
    text = b"\n".join(orjson.dumps(dict(zip(columns, row, strict=True)), default=json_value) for row in values)
    return RawFile(records, np.arange(1, len(values) + 1, dtype="int64"), [], text=text)


def _statement(source: SourceConfig, day: date, tz: str, dialect: sa.Dialect) -> sa.TextClause:
    """The source's query with the day's bounds bound: aware UTC datetimes, or for SQLite (no time type) UTC
    text 'YYYY-MM-DD HH:MM:SS', the layout of its datetime(), so `datetime(column) >= :day_start` compares
    times in any layout SQLite reads (text compared as it is orders right only in that same layout)."""
    bounds = dict(zip(BOUNDS, day_bounds(day, tz), strict=True))
    if dialect.name == "sqlite":
        values = {name: bound.strftime("%Y-%m-%d %H:%M:%S") for name, bound in bounds.items()}
        kind: sa.types.TypeEngine = sa.String()
    else:
        values, kind = {name: bound.to_pydatetime() for name, bound in bounds.items()}, sa.DateTime(timezone=True)
    bound = [sa.bindparam(name, value, type_=kind) for name, value in values.items()]
    return sa.text(source.sql.query).bindparams(*bound)


@contextmanager
def _connection(source: SourceConfig, env: Mapping[str, str], doing: str) -> Iterator[sa.Connection]:
    """A read-only connection to the source's database; any database error as SqlSourceError (not chained)."""
    error, connected = None, False
    try:
        engine = sa.create_engine(source.sql.connect_url(env), poolclass=sa.pool.NullPool)
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise _failure(source, env, "connect to", exc) from None
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(postgresql_readonly=True)
                conn.execute(sa.text("SELECT set_config('TimeZone', :zone, false)"), {"zone": source.naive_timezone})
            connected = True
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        error = _failure(source, env, doing if connected else "connect to", exc)
    finally:
        engine.dispose()
    if error is not None:  # the driver's error is neither its cause nor shown as its context (it may quote the URL)
        raise error from None


@contextmanager
def query_day(
    source: SourceConfig, day: date, tz: str, env: Mapping[str, str] | None = None, chunk_rows: int | None = None
) -> Iterator[DayQuery]:
    """Run a SQL source's query for the local day `day` in zone `tz`; chunks of `chunk_rows` (default the
    source's `sql.chunk_rows`). Raises SqlSourceError when the database cannot be reached or the query
    fails, or its result lacks the key column or names a column twice."""
    env = _environment(env)
    size = chunk_rows or source.sql.chunk_rows
    with _connection(source, env, "read from") as conn:
        result = conn.execution_options(yield_per=size).execute(_statement(source, day, tz, conn.dialect))
        columns = tuple(str(name) for name in result.keys())  # noqa: SIM118 - iterating a Result reads its rows
        twice = sorted({name for name in columns if columns.count(name) > 1})
        if twice:
            raise SqlSourceError(f"source '{source.name}': its query gives the column '{twice[0]}' twice")
        if source.sql_key not in columns:
            raise SqlSourceError(
                f"source '{source.name}': sql.key '{source.sql_key}' is not a column of its query's result"
                f" ({', '.join(columns)})"
            )
        yield DayQuery(columns, (raw_rows(rows, columns) for rows in result.partitions(size)))


def count_day(source: SourceConfig, day: date, tz: str, env: Mapping[str, str] | None = None) -> int:
    """How many rows a SQL source's query gives for `day` (SqlSourceError as query_day)."""
    env = _environment(env)
    inner = source.sql.query.strip().rstrip(";")
    counting = replace(source, sql=replace(source.sql, query=f"SELECT count(*) FROM ({inner}) AS day_rows"))
    with _connection(source, env, "count rows in") as conn:
        return int(conn.execute(_statement(counting, day, tz, conn.dialect)).scalar_one())


def map_chunk(raw: RawFile, source: SourceConfig, day: date, tz: str) -> pd.DataFrame:
    """One chunk mapped (extract.map_records); a row whose own time is on another local day than `day` gets
    NOT_ON_DAY among its problems, and its row as raw record."""
    frame = map_records(raw, source, source_label(source))
    stamps = frame["timestamp"]
    away = (stamps.notna() & (local_days(stamps, tz) != pd.Timestamp(day))).to_numpy()
    if away.any():
        problems = frame[ERRORS].to_numpy(dtype=object, copy=True)
        for position in np.flatnonzero(away):
            problems[position] = [*(problems[position] or []), NOT_ON_DAY]
        frame[ERRORS] = pd.Series(problems, index=frame.index, dtype=object)
        unkept = away & frame[RAW].isna().to_numpy()
        texts = raw.original_lines(raw.lines[unkept], source.field_limit)
        raws = frame[RAW].to_numpy(dtype=object, copy=True)
        raws[unkept] = [texts.get(int(line)) for line in raw.lines[unkept]]
        frame[RAW] = pd.Series(raws, index=frame.index, dtype=object)
    return frame


@dataclass(frozen=True)
class SqlDay:
    """A SQL source's rows of one day, mapped (SOURCE_LINE in key order), and its query's column names."""

    frame: pd.DataFrame
    columns: tuple[str, ...]


def read_day(source: SourceConfig, day: date, tz: str, env: Mapping[str, str] | None = None) -> SqlDay:
    """Every row a SQL source's query gives for `day`, mapped chunk by chunk onto the canonical columns.

    Rows are ordered by the key column (missing keys last) and numbered from 1 in that order.
    Raises SqlSourceError (see query_day).
    """
    frames, keys = [], []
    with query_day(source, day, tz, env) as query:
        for raw in query.chunks:
            frames.append(map_chunk(raw, source, day, tz))
            keys.append(raw.records[source.sql_key])
    if not frames:
        return SqlDay(map_records(raw_rows([], query.columns), source, source_label(source)), query.columns)
    frame = pd.concat(frames, ignore_index=True)
    order = pd.concat(keys, ignore_index=True).sort_values(kind="stable", na_position="last").index
    frame = frame.iloc[order.to_numpy()].reset_index(drop=True)
    frame[SOURCE_LINE] = np.arange(1, len(frame) + 1, dtype="int64")
    return SqlDay(frame, query.columns)


@dataclass(frozen=True)
class SourcesDay:
    """A day's rows of one kind from the landing files and the SQL sources: the files' Extract with the SQL
    rows added to its frame, and each SQL source's query columns (by source name)."""

    extract: Extract
    columns: dict[str, tuple[str, ...]]


def extract_sources(
    landing_dir: Path,
    sources: Sequence[SourceConfig],
    kind: Kind,
    day: date,
    tz: str,
    known: Mapping[str, FileStamp] | None = None,
    span: DaySpan | None = None,
    env: Mapping[str, str] | None = None,
    cache: DayCache | None = None,
) -> SourcesDay:
    """`extract.extract_day` over the file sources, plus every SQL source of `kind` read for `day` (read_day).

    SQL rows are never outside `span`: a query is only run for a day that can be run. With a `cache`
    (see extract_day) the SQL rows go through its `protect` too, so every row returned has. Raises
    ExtractError (SqlSourceError for a database) as extract_day and read_day do.
    """
    files = extract_day(landing_dir, sources, kind, day, tz, known, span, cache)
    parts, columns = [files.frame], {}
    for source in sources:
        if source.kind == kind and source.sql is not None:
            read = read_day(source, day, tz, env)
            parts.append(read.frame if cache is None else cache.protect(read.frame))
            # Two SQL sources of one name (both left to their kind's name) share it: their columns count together.
            columns[source.name] = tuple(dict.fromkeys((*columns.get(source.name, ()), *read.columns)))
    filled = [frame for frame in parts if len(frame)]
    frame = stacked(filled) if len(filled) > 1 else coded(filled[0]) if filled else files.frame
    return SourcesDay(replace(files, frame=frame), columns)
