"""Shared builders for the tests: where things are, landing-file writers, a free port, an SMTP inbox, the CLI.

Test modules import these from here (never from each other or from conftest); conftest turns some into fixtures.
"""

from __future__ import annotations

import email
import gzip
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pandas as pd
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
