"""Dagster's SQLite event log with one SQLAlchemy engine per database file, not one per event.

Dagster's `SqliteEventLogStorage` builds a new engine for every event it writes or query it reads (a run's
step starts, outputs, check evaluations ...: about 280 a run of ChatPulse's job, those of assets and checks
written twice, in the run's file and in the index). Each new engine initialises its dialect on its first
connection and compiles every statement afresh, since SQLAlchemy caches compiled statements per engine (280
log lines stored: 0.75 s of CPU, 0.4 s with the engine kept).

`SqliteEventLog` keeps the engine of each database file it used last (ENGINES_KEPT of them, so a webserver
reading thousands of runs holds no more) and does everything else as Dagster does: the same files and
tables, a new connection per event with its own commit and close (so the run's file changes with each
event, which the UI's live run log watches for, and each event is on disk before the run goes on).

`chatpulse.pipelines.instance` names it in the `dagster.yaml` it writes for SQLite storage, on the folder
Dagster's own default uses: a Dagster home's existing run logs stay readable, and Dagster reads ours.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

ENGINES_KEPT = 8  # a run uses two files (its own and the index); a webserver reads many runs in turn


class SqliteEventLog(SqliteEventLogStorage):
    """`SqliteEventLogStorage` over the same files, reusing the engine of each file (module docstring)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> SqliteEventLog:
        """The storage `dagster.yaml` configures: ``config_value`` holds `base_dir`, the folder of the files."""
        return cls(inst_data=inst_data, **config_value)

    def kept_engines(self) -> list[str]:
        """The shards (run ids, "index") whose engines are kept, least recently used first."""
        return list(self._engines)

    def _engine(self, shard: str) -> Engine:
        """The engine of ``shard``'s file, made on first use; the least recently used beyond ENGINES_KEPT goes."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
        self._engines[shard] = engine
        while len(self._engines) > ENGINES_KEPT:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As SqliteEventLogStorage._connect, but with the kept engine: one lock for the threads of a process
        # (the UI's), the file's tables made on its first use, one transaction per use.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection
