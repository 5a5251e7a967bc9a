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


def test_a_busy_incident_keeps_a_weekdays_traffic_at_a_weekend(tmp_path: Path) -> None:
    from datetime import date

    from chatpulse.sample.generate import write_sample

    saturday = date(2026, 11, 21)
    plain = write_sample(tmp_path / "plain", [saturday])["requests"]
    busy = write_sample(tmp_path / "busy", [saturday], busy_incident=True)["requests"]
    # The same day's draw, without the weekend's factor of 0.4 (traffic.day_size).
    assert abs(busy - plain / 0.4) <= 2 and busy > 2500
