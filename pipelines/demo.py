"""What `chatpulse demo` adds around generating and running sample days: it says which rows are broken on
purpose, it spares the throwaway sample's SQLite files the disk syncs that dominate a busy machine, and the UI
after it runs on its configuration."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatpulse.config import CONFIG_ENV, DEFAULT_CONFIG_FILE

# With the incident on the newest day, the fewest days that still give its latency_p95_spike rule the five
# earlier days its baseline needs (alert_rules.yaml: min_days 5).
DEMO_DAYS = 6


def own_config(config_file: str | None) -> bool:
    """Whether a configuration of the user's own is named or found (--config, $CHATPULSE_CONFIG, ./chatpulse.yaml)."""
    return bool(config_file or os.environ.get(CONFIG_ENV) or Path(DEFAULT_CONFIG_FILE).is_file())


def ui_config(config_file: str | None, data_home: Path) -> str | None:
    """The configuration `chatpulse ui` runs on: the user's own, else the demo's once `chatpulse demo` wrote it
    (<data_home>/demo.yaml: a day run from the UI keeps the demo's teams, budgets and bill), else the defaults."""
    demo = data_home / "demo.yaml"
    return str(demo) if not own_config(config_file) and demo.is_file() else config_file


def planted_rows(counts: Mapping[str, int]) -> str:
    """The line announcing the sample's deliberately broken lines, from write_sample's counts.

    Names how many are malformed, invalid and repeated, and where they end up, so the run's
    "quarantined N rows" warnings that follow read as the demo's point, not as a fault.
    """
    broken = counts["malformed"] + counts["invalid"]
    return (
        f"the sample has {broken} deliberately broken lines ({counts['malformed']} malformed, {counts['invalid']} "
        f"invalid) and {counts['duplicates']} repeated ones, to show the quarantine: the runs below set them aside "
        "with a 'quarantined ... rows' warning each day; see each report's Data quality section and the "
        "quarantine table"
    )


@contextmanager
def unsynced_sqlite() -> Iterator[None]:
    """While open, every SQLite connection SQLAlchemy opens in this process skips disk syncs.

    For the demo alone: its warehouse and Dagster home hold generated sample data, which a power cut may
    lose without harm. Dagster's SQLite event log opens a connection per event and syncs the disk at each
    commit and close, a few hundred times a run; on a busy machine those waits were a third of each day's
    run (30 s down to 20 s a day, measured on a shared 2-core machine). Real runs (`chatpulse run`, the
    UI) keep SQLite's default, durable setting.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def unsynced(connection: Any, record: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", unsynced)
    try:
        yield
    finally:
        event.remove(Engine, "connect", unsynced)
