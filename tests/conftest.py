"""Shared fixtures: real-data location, a real SMTP server, a PostgreSQL database (builders live in fixtures.py)."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from fixtures import FIELD_CASES, POSTGRES, REALDATA, Inbox, free_port


def pytest_configure(config: pytest.Config) -> None:
    """terminate() and Ctrl-C stop the processes tests start, however pytest itself was started.

    A shell starts a background job (`make test &`) with SIGINT ignored, and each Dagster run in this process
    copies SIGINT's handler onto SIGTERM as it ends: every process started afterwards then ignored SIGTERM too,
    so a test's terminate() left its server running and the test failed waiting for it.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server (aiosmtpd) on loopback, for the length of a test: its inbox and port."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def _no_outside_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own settings (CHATPULSE_*, DAGSTER_HOME) must not reach the code under test."""
    for name in [name for name in os.environ if name.startswith("CHATPULSE_")] + ["DAGSTER_HOME"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real public data not found at {REALDATA}")
    return REALDATA


@pytest.fixture
def field_case(tmp_path: Path) -> Callable[[str], Path]:
    """A function copying a field case (its folder name) into a writable temporary folder; skips without the cases."""

    def copy(name: str) -> Path:
        source = FIELD_CASES / name
        if not source.is_dir():
            pytest.skip(f"field case {name} not found at {FIELD_CASES}")
        target = Path(shutil.copytree(source, tmp_path / name, copy_function=shutil.copyfile))
        target.chmod(0o755)  # the cases are read-only; a test may add files beside them
        return target

    return copy


@pytest.fixture
def postgres_databases() -> Iterator[Callable[[], str]]:
    """A function creating a fresh database on the local PostgreSQL server and returning its SQLAlchemy URL
    (psycopg); every one is dropped afterwards. Skips when no server answers."""
    admin = sa.create_engine(POSTGRES + "test", isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def create() -> str:
        name = f"chatpulse_{uuid.uuid4().hex[:12]}"
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        except sa.exc.OperationalError as exc:
            pytest.skip(f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc.orig})")
        made.append(name)
        return POSTGRES + name

    try:
        yield create
    finally:
        if made:
            with admin.connect() as conn:
                for name in made:
                    conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    return postgres_databases()
