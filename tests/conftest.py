"""Shared fixtures: real-data location, a real SMTP server, a PostgreSQL database, small landing-file writers."""

from __future__ import annotations

import email
import gzip
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/"


def write_jsonl(path: Path, records: Iterable[dict | str]) -> Path:
    """One JSON object per line; a str is written verbatim (for malformed lines)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def event_frame(columns: dict[str, str], rows: list[dict]) -> pd.DataFrame:
    """Rows as a frame of `columns`, ids as strings and timestamps as UTC nanoseconds, as cleaning leaves them."""
    out = pd.DataFrame(rows, columns=list(columns)).astype({"session_id": "str", "user_id": "str"})
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).dt.as_unit("ns")
    return out


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it receives, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


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
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    admin = sa.create_engine(POSTGRES + "test", isolation_level="AUTOCOMMIT")
    name = f"chatpulse_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc.orig})")
    try:
        yield POSTGRES + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `chatpulse` command in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "chatpulse.pipelines.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
