"""The demo's SQLite files skip disk syncs while it runs, and only then."""

from pathlib import Path

import sqlalchemy as sa

from chatpulse.pipelines.demo import unsynced_sqlite


def _synchronous(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA synchronous").scalar_one()


def test_sqlite_connections_skip_syncs_only_inside_the_demo(tmp_path: Path) -> None:
    # A connection per use, as Dagster's SQLite event log opens them.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=sa.pool.NullPool)
    default = _synchronous(engine)
    with unsynced_sqlite():
        assert _synchronous(engine) == 0  # OFF
        assert _synchronous(sa.create_engine(f"sqlite:///{tmp_path / 'y.db'}", poolclass=sa.pool.NullPool)) == 0
    assert default != 0 and _synchronous(engine) == default
