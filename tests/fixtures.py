"""Shared builders for the tests: where things are, landing-file writers, a free port, an SMTP inbox, the CLI.

Test modules import these from here (never from each other or from conftest); conftest turns some into fixtures.
"""

from __future__ import annotations

import datetime as dt
import email
import gzip
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pandas as pd
from aiosmtpd.smtp import Envelope
from dagster import DagsterInstance, Definitions, build_sensor_context

from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.schema import MESSAGE_COLUMNS, REQUEST_COLUMNS

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


METRIC_DAY = dt.date(2026, 11, 20)
_DTYPES = {"string": "str", "int": "Int64", "float": "float64", "json": "object"}


def clean_frame(columns: Mapping[str, str], rows: Iterable[dict]) -> pd.DataFrame:
    """A clean frame as the input contract describes it (schema columns and dtypes), from partial row dicts."""
    out = pd.DataFrame(list(rows), columns=list(columns))
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, format="ISO8601").dt.as_unit("ns")
    return out.astype({name: _DTYPES[kind] for name, kind in columns.items() if kind != "datetime"})


def clean_requests(*rows: dict) -> pd.DataFrame:
    """Clean requests from partial row dicts."""
    return clean_frame(REQUEST_COLUMNS, rows)


def clean_messages(*rows: dict) -> pd.DataFrame:
    """Clean messages from partial row dicts."""
    return clean_frame(MESSAGE_COLUMNS, rows)


def no_messages() -> pd.DataFrame:
    """An empty clean message frame."""
    return clean_messages()


# One day of requests through the whole pipeline: a duplicate, a bad value, a row of the next day.
PIPELINE_DAY = "2026-11-20"


def pipeline_request(rid: str | None, ts: str, **fields: object) -> dict:
    """A raw request line of PIPELINE_DAY at UTC clock time ts."""
    return {"request_id": rid, "timestamp": f"2026-11-20T{ts}+00:00", "model": "gpt-4o", "status_code": 200, **fields}


PIPELINE_REQUESTS = [
    pipeline_request(
        "r1", "10:00:05", user_id="u1", session_id="s1", latency_ms=100, prompt_tokens=10, completion_tokens=20
    ),
    pipeline_request(
        "r2", "10:00:35", user_id="u1", session_id="s1", latency_ms=300, prompt_tokens=5, completion_tokens=5
    ),
    pipeline_request(
        "r3", "10:00:50", user_id="u2", model="gpt-4o-mini", status_code=429, error_type="rate_limit", latency_ms=50
    ),
    pipeline_request(
        "r4", "11:30:00", user_id="u2", model="gpt-4o-mini", latency_ms=200, prompt_tokens=1, completion_tokens=1
    ),
    pipeline_request("r5", "23:59:59", user_id="u3", session_id="s3", latency_ms=1000),
    pipeline_request(
        "r1", "10:00:05", user_id="u1", session_id="s1", latency_ms=100, prompt_tokens=10, completion_tokens=20
    ),
    pipeline_request("bad", "10:01:00", user_id="u1", latency_ms="quick"),
    {"request_id": "tomorrow", "timestamp": "2026-11-21T00:00:00+00:00"},
]


# Every asset of the daily job.
ASSET_NAMES = {
    "raw_requests",
    "raw_messages",
    "raw_feedback",
    "clean_requests",
    "clean_messages",
    "clean_feedback",
    "sessions",
    "scenario_spotlight",
    "content_retention",
    "hourly_metrics",
    "daily_metrics",
    "daily_report",
    "request_metrics",
    "session_metrics",
    "user_metrics",
    "daily_trends",
    "report_email",
    "alerts",
}


def sensor_tick(defs: Definitions, instance: DagsterInstance, cursor: str | None) -> Any:
    """One evaluation of the landing sensor, as the daemon would run it (Dagster's tick data: run requests, cursor)."""
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)
    return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
