"""The warehouse: SQL tables anyone can query, written one day at a time.

Plain SQLAlchemy Core with portable SQL, so the same code serves the default SQLite file
and PostgreSQL; only the bulk load differs (ADBC's Arrow ingest on SQLite, COPY on
PostgreSQL). Every write replaces its partition (delete the day, insert the day) inside
one transaction: a rerun or a backfill never doubles a row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from chatpulse.daystate import TABLE as DAY_STEPS
from chatpulse.daystate import StepRun
from chatpulse.schema import Kind
from chatpulse.sqlconfig import hidden, shown
from chatpulse.tables import LANDING_FILES, TABLES, metadata
from chatpulse.threads import in_order


class WarehouseError(RuntimeError):
    """The warehouse could not be opened; the message names its URL without the password."""


def _opening_error(url: str, exc: Exception) -> WarehouseError:
    """`exc` (one line, any secret of the URL it quotes hidden) as a WarehouseError naming the redacted URL."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # what the parser says may quote the URL, password and all
        return WarehouseError(
            "cannot open the warehouse: its URL is not a SQLAlchemy URL (dialect+driver://user@host:port/database)"
        )
    said = hidden(" ".join(str(getattr(exc, "orig", None) or exc).split()), parsed)
    return WarehouseError(f"cannot open the warehouse {shown(parsed)}: {said}")


@dataclass(frozen=True)
class FileStamp:
    """What a landing file looked like when read, and which local days it touched."""

    size: int
    mtime_ns: int
    days: frozenset[str]

    def unchanged(self, path: Path) -> bool:
        stat = path.stat()
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


# File names per IN list of a statement: far below any database's limit on bound values.
IN_LIST = 500


def _placeholder(dialect: sa.Dialect) -> str:
    return {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]


def _timestamp_text(series: pd.Series, dialect: sa.Dialect) -> pa.Array:
    """UTC timestamps as text (Arrow casts, in C): SQLAlchemy's SQLite layout, with an offset elsewhere."""
    stamps = pa.array(pd.to_datetime(series, utc=True)).cast(pa.timestamp("us", "UTC"), safe=False)
    text = stamps.cast(pa.timestamp("us")).cast(pa.string())  # "2026-11-20 10:00:00.123456"
    return text if dialect.name == "sqlite" else pc.binary_join_element_wise(text, "+00:00", "")


def _python_values(series: pd.Series, column: sa.Column, dialect: sa.Dialect) -> list[object]:
    """One column as DB-API values: None for missing, UTC text for timestamps."""
    if isinstance(column.type, sa.DateTime):
        return _timestamp_text(series, dialect).to_pylist()
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _arrow_type(column: sa.Column) -> pa.DataType:
    if isinstance(column.type, sa.Boolean):
        return pa.bool_()
    if isinstance(column.type, sa.Integer):
        return pa.int64()
    if isinstance(column.type, sa.Float):
        return pa.float64()
    return pa.string()


def _arrow_table(table: sa.Table, frame: pd.DataFrame, dialect: sa.Dialect) -> pa.Table:
    """The frame's columns of `table`, typed as the table declares them."""
    arrays = {}
    for column in table.columns:
        if column.name in frame.columns:
            values = frame[column.name]
            if isinstance(column.type, sa.DateTime):
                arrays[column.name] = _timestamp_text(values, dialect)
            else:
                arrays[column.name] = _arrow_values(values, _arrow_type(column))
    return pa.table(arrays)


def _arrow_values(values: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    """A column as Arrow values of `arrow_type`: a categorical of text as text has its categories converted once
    and taken by code, where pa.array converts it row by row (a coded column of a million rows: 0.2-0.3 s against
    0.02). Other categoricals go row by row, so a category no row uses cannot fail the conversion."""
    if (
        isinstance(values.dtype, pd.CategoricalDtype)
        and arrow_type == pa.string()
        and values.cat.categories.inferred_type in ("string", "empty")
    ):
        codes = values.cat.codes.to_numpy()
        categories = pa.array(values.cat.categories, type=arrow_type, from_pandas=True)
        return categories.take(pa.array(codes, mask=codes < 0))
    return pa.array(values, type=arrow_type, from_pandas=True)


# Rows per Arrow table handed to SQLite's ingest (about 40 MB of requests).
INGEST_BATCH = 100_000
# Rows per CSV chunk handed to COPY (about 17 MB of requests): a day's whole text is never held at once.
COPY_BATCH = 50_000
# PostgreSQL's CSV reading matches Arrow's writing with every value quoted: an empty unquoted
# field is NULL, "" an empty string, and tabs, newlines, backslashes and quotes inside quotes are data.
_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")


def _copy(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Bulk load into PostgreSQL with COPY FROM STDIN, inside the connection's transaction.

    The frame's columns of `table` go as Arrow-written CSV (types as `_arrow_table` gives them:
    timestamps as UTC text with their offset, missing values as NULL), parsed by the server in C.
    executemany, which bound each row's values in Python, took six times as long (200,000
    requests: 26 s against 4 s, in the same run).
    Raises the driver's error (psycopg.Error) on a value the column refuses; the caller rolls back.
    """
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns if c.name in frame.columns)
    # Arrow writes UTF-8 whatever the session's client_encoding says.
    sql = f"COPY {quote(table.name)} ({columns}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
        # In slices, as SQLite's ingest: only one slice at a time is held as Arrow and as text.
        for start in range(0, len(frame), COPY_BATCH):
            text = pa.BufferOutputStream()
            pa_csv.write_csv(_arrow_table(table, frame.iloc[start : start + COPY_BATCH], conn.dialect), text, _CSV)
            copy.write(text.getvalue())


def _insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Bulk insert: COPY on PostgreSQL through psycopg (3), the driver's executemany elsewhere."""
    if frame.empty:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, frame)
        return
    columns = [c for c in table.columns if c.name in frame.columns]
    quote = conn.dialect.identifier_preparer.quote
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table.name),
        ", ".join(quote(c.name) for c in columns),
        ", ".join([_placeholder(conn.dialect)] * len(columns)),
    )
    values = [_python_values(frame[c.name], c, conn.dialect) for c in columns]
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


def _add_missing_columns(engine: sa.Engine) -> None:
    """Give tables made by an earlier version the columns this one declares (all nullable).

    create_all only makes missing tables; without this an upgraded warehouse would
    fail on its first write of a new column.
    """
    inspector = sa.inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            existing = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in existing:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}")


def _delete_day(table: sa.Table, day: str, kind: str | None) -> sa.Delete:
    condition = table.c.day == day
    if kind is not None:
        condition &= table.c.kind == kind
    return table.delete().where(condition)


@dataclass(frozen=True)
class Write:
    """One table's rows for a partition, optionally limited to one record kind."""

    table: str
    frame: pd.DataFrame
    kind: str | None = None


def _replacements(
    day: str, writes: tuple[Write, ...], done: StepRun | None
) -> list[tuple[sa.Table, sa.Delete, pd.DataFrame]]:
    """What replacing ``day`` means, table by table: the rows to delete and the rows to insert.

    The step's record replaces its own row of the day, so it commits or rolls back with the tables it describes.
    """
    replacements = [(TABLES[w.table], _delete_day(TABLES[w.table], day, w.kind), w.frame) for w in writes]
    if done is not None:
        steps = TABLES[DAY_STEPS]
        mine = (steps.c.day == day) & (steps.c.step == done.step)
        replacements.append((steps, steps.delete().where(mine), done.frame(day)))
    return replacements


# Bytes per page of a new SQLite warehouse (SQLite's default: 4,096). A million rows appended go into
# a quarter as many pages: 1M clean requests ingested in 3.1-3.25 s against 3.6-3.8, messages 2.4-2.7 against 3.0.
SQLITE_PAGE_BYTES = 16384


def _sqlite_page_size(connection: sqlite3.Connection, _record: sa.pool.ConnectionPoolEntry) -> None:
    """Ask for SQLITE_PAGE_BYTES pages: SQLite applies it where the file holds nothing yet, else ignores it."""
    connection.execute(f"PRAGMA page_size = {SQLITE_PAGE_BYTES}")


class Warehouse:
    """Partitioned reads and writes over one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        """Open (and create or upgrade) the warehouse at SQLAlchemy `url`.

        Raises WarehouseError, naming the URL with its password hidden, when the URL cannot be read,
        its driver is not installed or the database cannot be reached.
        """
        try:
            self.engine = sa.create_engine(url)
            database = self.engine.url.database if self.engine.url.get_backend_name() == "sqlite" else None
            self._sqlite_file = database if database and database != ":memory:" else None
            if self._sqlite_file:
                Path(self._sqlite_file).parent.mkdir(parents=True, exist_ok=True)
                sa.event.listen(self.engine, "connect", _sqlite_page_size)
            metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
        except (sa.exc.SQLAlchemyError, ImportError, OSError, ValueError) as exc:  # ValueError: port not a number
            # from None: the chained error and its traceback would be printed (and stored by Dagster) too.
            raise _opening_error(url, exc) from None

    def replace_day(self, day: str, *writes: Write, done: StepRun | None = None) -> None:
        """Replace `day` in every written table in one transaction; with `done`, record in that same
        transaction that the step finished the day (`day_steps`), so the record never outlives or
        precedes the rows it vouches for."""
        replacements = _replacements(day, writes, done)
        self._replace(
            [delete for _, delete, _ in replacements],
            [(table, frame.assign(day=day)) for table, _, frame in replacements],
            day=day,
        )

    def _replace(
        self,
        deletes: list[sa.Delete],
        inserts: list[tuple[sa.Table, pd.DataFrame]],
        lock: sa.Table | None = None,
        day: str | None = None,
    ) -> None:
        """Run the deletes, then the inserts, in one transaction.

        With `lock`, two such transactions never overlap: on PostgreSQL the table is locked first
        (SQLite lets one writer at a time anyway). With `day`, two that replace the same day never
        overlap (a transaction-scoped advisory lock on the day; other days' writes go on meanwhile).
        Without either, two runs replacing the same rows at once would each delete what the other had
        not committed yet, and both insert.
        """
        if self._sqlite_file:
            self._replace_arrow(deletes, inserts)
            return
        with self.engine.begin() as conn:
            if lock is not None and conn.dialect.name == "postgresql":
                quote = conn.dialect.identifier_preparer.quote
                conn.exec_driver_sql(f"LOCK TABLE {quote(lock.name)} IN SHARE ROW EXCLUSIVE MODE")
            if day is not None and conn.dialect.name == "postgresql":
                key = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
                conn.execute(key, {"key": f"chatpulse day {day}"})
            for delete in deletes:
                conn.execute(delete)
            for table, frame in inserts:
                _insert(conn, table, frame)

    def _replace_arrow(self, deletes: list[sa.Delete], inserts: list[tuple[sa.Table, pd.DataFrame]]) -> None:
        """The same transaction through ADBC, which ingests Arrow columns in C.

        For a SQLite file this writes a million rows several times faster than
        executemany; the DELETEs are the portable statements compiled for SQLite.
        Each slice is ingested in a second thread while the next one is made Arrow: ADBC's ingest runs
        without the GIL, so the two overlap (1M clean requests: 3.3 -> 2.6 s, the same rows).
        """
        with adbc_sqlite.connect(self._sqlite_file) as conn, conn.cursor() as cursor:
            # Wait for another writer (a concurrent run, a reader's lock) as pysqlite does,
            # rather than failing at once with "database is locked".
            cursor.execute("PRAGMA busy_timeout = 30000")  # ms
            try:
                for delete in deletes:
                    cursor.execute(
                        str(delete.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
                    )
                # In slices, so at most two slices are held twice (as pandas and as Arrow); one thread ingests
                # them one at a time, in order, while the next is made (threads.in_order).
                slices = (
                    (table.name, _arrow_table(table, frame.iloc[start : start + INGEST_BATCH], self.engine.dialect))
                    for table, frame in inserts
                    for start in range(0, len(frame), INGEST_BATCH)
                )
                for _ in in_order(lambda named: cursor.adbc_ingest(*named, mode="append"), slices, threads=1):
                    pass
                conn.commit()
            except BaseException:
                # in_order waited for a slice still being ingested, so nothing runs on the connection.
                conn.rollback()
                raise

    def append(self, table_name: str, frame: pd.DataFrame) -> None:
        """Add rows without replacing any: for logs such as the record of sent mail."""
        table = TABLES[table_name]
        with self.engine.begin() as conn:
            _insert(conn, table, frame)

    def read(self, table_name: str, day: str | None = None, kind: str | None = None) -> pd.DataFrame:
        """A table's rows, for one day and kind when given; timestamps come back as UTC."""
        return self.read_days(table_name, day, day, kind)

    def read_days(self, table_name: str, first: str | None, last: str | None, kind: str | None = None) -> pd.DataFrame:
        """A table's rows from day `first` to day `last`, both included (None: unbounded)."""
        table = TABLES[table_name]
        query = sa.select(table)
        if first is not None:
            query = query.where(table.c.day >= first)
        if last is not None:
            query = query.where(table.c.day <= last)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        return self._read(table, query)

    def read_where(self, table_name: str, condition: sa.ColumnElement[bool]) -> pd.DataFrame:
        """A table's rows meeting `condition` (a SQLAlchemy expression on its columns); timestamps as UTC."""
        table = TABLES[table_name]
        return self._read(table, sa.select(table).where(condition))

    def _read(self, table: sa.Table, query: sa.Select) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        for column in table.columns:
            if isinstance(column.type, sa.DateTime):
                frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
        return frame

    def first_days(self, table_name: str, column: str) -> pd.Series:
        """The earliest day each value of `column` appears in a table (index: value), in one GROUP BY."""
        table = TABLES[table_name]
        query = sa.select(table.c[column], sa.func.min(table.c.day).label("day")).group_by(table.c[column])
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        return frame.set_index(column)["day"]

    def file_stamps(self, kind: Kind) -> dict[str, FileStamp]:
        """What each landing file of a kind looked like when it was last read."""
        query = sa.select(LANDING_FILES).where(LANDING_FILES.c.kind == kind.value)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {row.path: FileStamp(row.size, row.mtime_ns, frozenset(json.loads(row.days))) for row in rows}

    def save_stamps(
        self,
        kind: Kind,
        stamps: Mapping[str, FileStamp],
        outside: pd.DataFrame | None = None,
        span: tuple[str, str] | None = None,
    ) -> None:
        """Record the files just read, replacing what earlier reads of them recorded, in one transaction.

        Their stamps, and, with `outside` (quarantine rows, each with its own `day`) and `span`
        (the first and last day that can be run), their rows outside that range: the quarantine
        rows of these files on days outside the range are replaced, so a file read by many runs
        is recorded once, even by runs of several days at the same time. Rows on days that can be
        run are left to the runs of those days.
        """
        if not stamps:
            return
        paths = sorted(stamps)
        chunks = [paths[n : n + IN_LIST] for n in range(0, len(paths), IN_LIST)]
        ours = LANDING_FILES.c.kind == kind.value
        deletes = [LANDING_FILES.delete().where(ours & LANDING_FILES.c.path.in_(chunk)) for chunk in chunks]
        rows = [(kind.value, path, s.size, s.mtime_ns, json.dumps(sorted(s.days))) for path, s in stamps.items()]
        inserts = [(LANDING_FILES, pd.DataFrame(rows, columns=["kind", "path", "size", "mtime_ns", "days"]))]
        if outside is not None and span is not None:
            quarantine = TABLES["quarantine"]
            beyond = (quarantine.c.kind == kind.value) & ((quarantine.c.day < span[0]) | (quarantine.c.day > span[1]))
            deletes += [quarantine.delete().where(beyond & quarantine.c.source_file.in_(chunk)) for chunk in chunks]
            inserts.append((quarantine, outside))
        self._replace(deletes, inserts, lock=LANDING_FILES)

    def outside_counts(self, first: str, last: str) -> pd.DataFrame:
        """Quarantined rows on days before `first` or after `last`, per kind: `kind`, `rows`, `files`."""
        quarantine = TABLES["quarantine"]
        query = (
            sa.select(
                quarantine.c.kind,
                sa.func.count().label("rows"),
                sa.func.count(sa.distinct(quarantine.c.source_file)).label("files"),
            )
            .where((quarantine.c.day < first) | (quarantine.c.day > last))
            .group_by(quarantine.c.kind)
            .order_by(quarantine.c.kind)
        )
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)
