"""Dagster resources: the only way assets reach files, the warehouse and settings."""

import ctypes
import ctypes.util
import gc
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, ConfigurableResource, InitResourceContext, InputContext, OutputContext
from pydantic import PrivateAttr

from chatpulse.config import Settings, load_settings
from chatpulse.schema import CODED
from chatpulse.warehouse import Warehouse


class ChatPulseSettings(ConfigurableResource):
    """Where the YAML configuration lives (None: $CHATPULSE_CONFIG, ./chatpulse.yaml, defaults).

    Dagster sets up a fresh copy of the resource for each run, so the file is parsed once
    per run: every asset of the run sees the same settings, and the next run sees an edit.
    """

    config_file: str | None = None
    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Parse the configuration as the run starts; a ConfigError fails the run before any asset."""
        self._settings = load_settings(self.config_file)

    @property
    def settings(self) -> Settings:
        """The parsed settings; outside a run (no setup), parsed on first use."""
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings


class WarehouseResource(ChatPulseSettings):
    """The SQL warehouse of the configuration's `database_url`.

    Configured by the configuration file, like ChatPulseSettings, and never by the URL itself:
    resource config is shown in the UI and stored with every run, and a URL may carry a password.
    """

    @property
    def warehouse(self) -> Warehouse:
        """The warehouse of the settings' `database_url`, one per URL per process (an engine and one schema check)."""
        return _open_warehouse(self.settings.database_url)


@cache
def _open_warehouse(url: str) -> Warehouse:
    return Warehouse(url)


# glibc's mallopt parameters (malloc.h): heap tops over 64 KiB go back to the OS, and blocks of
# 64 KiB or more (column buffers) are mapped apart so that freeing one returns it at once.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, FREED_MEMORY_BYTES = -1, -3, 64 << 10


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim), else None (macOS, musl)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def return_freed_memory(tune: bool = False) -> None:
    """Give the memory freed since the last call back to the OS: glibc's free heap pages and Arrow's pool.

    A run's steps share one process, and glibc and Arrow's allocator keep what a step freed for reuse,
    so each step would start from the peak of the one before (a day of a million requests: 1.2 GB held
    between steps where the frames need 0.5). With `tune` (once a run), glibc also returns memory as it
    is freed (mallopt), and what the process holds so far (modules, definitions) is left out of every
    later collection. glibc's part does nothing where the C library is not glibc.
    """
    if tune:  # the run's some 400,000 objects at its start: a collection then takes ms, not 0.25 s (or more)
        gc.freeze()
    # Frames caught in reference cycles (a step's context, a traceback) wait for the cyclic collector
    # (4M requests: 0.2 to 0.75 GB of an earlier step's frames at the start of a step).
    gc.collect()
    libc = _libc()
    if libc is not None:
        if tune:
            libc.mallopt(M_TRIM_THRESHOLD, FREED_MEMORY_BYTES)
            libc.mallopt(M_MMAP_THRESHOLD, FREED_MEMORY_BYTES)
        libc.malloc_trim(0)
    pa.default_memory_pool().release_unused()


class ParquetIOManager(ConfigurableIOManager):
    """Hands partition DataFrames between assets as Parquet files, one per asset and day.

    Parquet keeps types (tz-aware timestamps, nullable integers) and reads a
    million rows in a fraction of a second, where pickle would not. Freed memory goes back to the OS
    as each frame is written and before each is read (return_freed_memory), so the run's peak is its
    biggest step's, not the sum of what every step left in the allocators.
    """

    base_dir: str

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Tune the allocator for the run (return_freed_memory)."""
        return_freed_memory(tune=True)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """What the run's start froze goes back to the collector: a process may go on to other runs (tests,
        `chatpulse run` over several days), and what it froze would never be collected."""
        gc.unfreeze()

    def _path(self, context: InputContext | OutputContext) -> Path:
        key = "/".join(context.asset_key.path)
        return Path(self.base_dir) / key / f"{context.asset_partition_key}.parquet"

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        obj.to_parquet(path, index=False)
        return_freed_memory()

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The stored frame; an input's `columns` metadata reads only those (Parquet is columnar).

        Read a row group at a time, as written, so each text column is one Arrow chunk per million rows:
        pd.read_parquet gives eight per million rows, and every row selection (take) on such a column first
        joins its chunks into a copy (at 1M requests, clean's peak +116 MB). Types as pd.read_parquet
        gives them (the file's pandas metadata), but CODED text columns are categoricals, as extract makes them.
        """
        return_freed_memory()
        columns = (context.definition_metadata or {}).get("columns")
        path = self._path(context)
        coded = [name for name in pq.read_schema(path).names if name in CODED and (columns is None or name in columns)]
        with pq.ParquetFile(path, read_dictionary=coded) as file:
            # A row group at a time, the reader's buffers given back to Arrow's pool after each: reading a whole
            # file holds its decompressed pages beside the columns (4M messages: +0.5 GB at the read, against +0.15).
            if file.num_row_groups < 2:
                table = file.read(columns=columns)
            else:
                parts = []
                for group in range(file.num_row_groups):
                    parts.append(file.read_row_group(group, columns=columns))
                    pa.default_memory_pool().release_unused()
                table = pa.concat_tables(parts)
                del parts
        # Each column's Arrow memory is freed as it becomes pandas (2M requests' clean frame: -0.16 GB at its peak).
        return table.to_pandas(split_blocks=True, self_destruct=True)
