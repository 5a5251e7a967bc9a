"""The warehouse: SQL tables anyone can query, written one day at a time.

Plain SQLAlchemy Core with portable SQL only, so the same code serves the default
SQLite file and PostgreSQL. Every write replaces its partition (delete the day,
insert the day) inside one transaction: a rerun or a backfill never doubles a row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc_sqlite
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from chatpulse.extract import FileStamp
from chatpulse.schema import COLUMNS, SOURCE_FILE, SOURCE_LINE, Kind

TYPES: dict[str, sa.types.TypeEngine] = {
    "string": sa.Text(),
    "datetime": sa.DateTime(timezone=True),
    "int": sa.BigInteger(),
    "float": sa.Float(),
    "json": sa.Text(),
}

metadata = sa.MetaData()


def _table(name: str, *columns: sa.Column, day_index: bool = True) -> sa.Table:
    table = sa.Table(name, metadata, sa.Column("day", sa.String(10), nullable=False), *columns)
    if day_index:
        sa.Index(f"ix_{name}_day", table.c.day)
    return table


def _canonical(kind: Kind) -> list[sa.Column]:
    columns = [sa.Column(name, TYPES[value_kind]) for name, value_kind in COLUMNS[kind].items()]
    return [*columns, sa.Column(SOURCE_FILE, sa.Text()), sa.Column(SOURCE_LINE, sa.BigInteger())]


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Float()) for name in names]


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger()) for name in names]


LATENCY = ("latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")

TABLES: dict[str, sa.Table] = {
    "requests": _table("requests", *_canonical(Kind.REQUESTS)),
    "messages": _table("messages", *_canonical(Kind.MESSAGES)),
    "feedback": _table("feedback", *_canonical(Kind.FEEDBACK)),
    "quarantine": _table(
        "quarantine",
        sa.Column("kind", sa.String(16)),
        sa.Column(SOURCE_FILE, sa.Text()),
        sa.Column(SOURCE_LINE, sa.BigInteger()),
        sa.Column("record_id", sa.Text()),
        sa.Column("reasons", sa.Text()),
        sa.Column("raw", sa.Text()),
    ),
    "data_quality": _table(
        "data_quality",
        sa.Column("kind", sa.String(16)),
        *_counts("rows_in", "clean", "quarantined", "duplicates", "repaired"),
        sa.Column("reasons", sa.Text()),
        sa.Column("repairs", sa.Text()),
    ),
    "hourly_metrics": _table(
        "hourly_metrics",
        sa.Column("hour", sa.Integer()),
        *_counts("requests", "errors"),
        *_floats("error_rate"),
        *_counts("peak_rpm"),
        *_floats(*LATENCY),
        *_counts(*TOKENS),
    ),
    "daily_metrics": _table(
        "daily_metrics",
        *_counts("requests", "errors"),
        *_floats("error_rate"),
        *_counts("peak_rpm"),
        sa.Column("peak_minute", sa.Text()),
        *_floats(*LATENCY, "ttft_p50_ms", "ttft_p95_ms"),
        *_counts(*TOKENS),
        *_floats("cost_usd"),
        *_counts("users", "models", "sessions"),
        *_floats("session_duration_p50_s", "session_duration_p95_s", "turns_mean"),
    ),
    "sessions": _table(
        "sessions",
        sa.Column("session_id", sa.Text()),
        sa.Column("user_id", sa.Text()),
        sa.Column("start", sa.DateTime(timezone=True)),
        sa.Column("end", sa.DateTime(timezone=True)),
        *_floats("duration_s"),
        *_counts("turns", "messages", "requests"),
        sa.Column("delimited_by", sa.String(16)),
        sa.Column("scenario", sa.String(64)),
    ),
    "scenario_daily": _table(
        "scenario_daily",
        sa.Column("scenario", sa.String(64)),
        *_counts("sessions", "requests"),
    ),
}

LANDING_FILES = sa.Table(
    "landing_files",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("path", sa.Text(), primary_key=True),
    sa.Column("size", sa.BigInteger()),
    sa.Column("mtime_ns", sa.BigInteger()),
    sa.Column("days", sa.Text()),
)


def _placeholder(dialect: sa.Dialect) -> str:
    return {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]


def _timestamp_text(series: pd.Series, dialect: sa.Dialect) -> pd.Series:
    """UTC timestamps as text: SQLAlchemy's SQLite layout, with an explicit offset elsewhere."""
    stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
    text = pd.Series(np.datetime_as_string(stamps, unit="us"), index=series.index).str.replace("T", " ", regex=False)
    if dialect.name != "sqlite":
        text = text + "+00:00"
    return text.where(series.notna())


def _python_values(series: pd.Series, column: sa.Column, dialect: sa.Dialect) -> list[object]:
    """One column as DB-API values: None for missing, UTC text for timestamps."""
    if isinstance(column.type, sa.DateTime):
        series = _timestamp_text(series, dialect)
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _arrow_type(column: sa.Column) -> pa.DataType:
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
                values = _timestamp_text(values, dialect)
            arrays[column.name] = pa.array(values, type=_arrow_type(column), from_pandas=True)
    return pa.table(arrays)


def _insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Bulk insert through the driver's executemany: the fast path for big days."""
    if frame.empty:
        return
    columns = [c for c in table.columns if c.name in frame.columns]
    quote = conn.dialect.identifier_preparer.quote
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table.name), ", ".join(quote(c.name) for c in columns), ", ".join([_placeholder(conn.dialect)] * len(columns))
    )
    values = [_python_values(frame[c.name], c, conn.dialect) for c in columns]
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


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


class Warehouse:
    """Partitioned reads and writes over one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        database = self.engine.url.database if self.engine.url.get_backend_name() == "sqlite" else None
        self._sqlite_file = database if database and database != ":memory:" else None
        if self._sqlite_file:
            Path(self._sqlite_file).parent.mkdir(parents=True, exist_ok=True)
        metadata.create_all(self.engine)

    def replace_day(self, day: str, *writes: Write) -> None:
        """Replace `day` in every written table in one transaction."""
        if self._sqlite_file:
            self._replace_day_arrow(day, writes)
            return
        with self.engine.begin() as conn:
            for write in writes:
                table = TABLES[write.table]
                conn.execute(_delete_day(table, day, write.kind))
                _insert(conn, table, write.frame.assign(day=day))

    def _replace_day_arrow(self, day: str, writes: tuple[Write, ...]) -> None:
        """The same transaction through ADBC, which ingests Arrow columns in C.

        For a SQLite file this writes a million rows several times faster than
        executemany; the DELETE is the portable statement compiled for SQLite.
        """
        with adbc_sqlite.connect(self._sqlite_file) as conn, conn.cursor() as cursor:
            try:
                for write in writes:
                    table = TABLES[write.table]
                    delete = _delete_day(table, day, write.kind)
                    cursor.execute(str(delete.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})))
                    if not write.frame.empty:
                        rows = _arrow_table(table, write.frame.assign(day=day), self.engine.dialect)
                        cursor.adbc_ingest(table.name, rows, mode="append")
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

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
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        for column in table.columns:
            if isinstance(column.type, sa.DateTime):
                frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
        return frame

    def file_stamps(self, kind: Kind) -> dict[str, FileStamp]:
        """What each landing file of a kind looked like when it was last read."""
        query = sa.select(LANDING_FILES).where(LANDING_FILES.c.kind == kind.value)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {row.path: FileStamp(row.size, row.mtime_ns, frozenset(json.loads(row.days))) for row in rows}

    def save_stamps(self, kind: Kind, stamps: Mapping[str, FileStamp]) -> None:
        """Record the files just read, replacing their previous stamps."""
        if not stamps:
            return
        with self.engine.begin() as conn:
            conn.execute(LANDING_FILES.delete().where(
                (LANDING_FILES.c.kind == kind.value) & LANDING_FILES.c.path.in_(list(stamps))
            ))
            conn.execute(LANDING_FILES.insert(), [
                {"kind": kind.value, "path": path, "size": s.size, "mtime_ns": s.mtime_ns, "days": json.dumps(sorted(s.days))}
                for path, s in stamps.items()
            ])
