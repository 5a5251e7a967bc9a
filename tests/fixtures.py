"""Shared builders for the tests: where things are, landing-file writers, a free port, an SMTP inbox, the CLI.

Test modules import these from here (never from each other or from conftest); conftest turns some into fixtures.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiosmtpd.smtp import Envelope
from click.testing import CliRunner, Result
from dagster import DagsterInstance, Definitions, build_sensor_context

from chatpulse.config import CONFIG_ENV, SourceConfig
from chatpulse.ingest.clean import Cleaned, clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.pipelines.cli import cli
from chatpulse.pipelines.sensors import LANDING_SENSOR
from chatpulse.reports.alerts import alert_summary
from chatpulse.reports.render import render_report
from chatpulse.reports.sections import Section, detail_sections
from chatpulse.schema import MESSAGE_COLUMNS, REQUEST_COLUMNS, Kind

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
# The field cases (a folder per kind of fault) beside the repository, or beside a parent (a worktree).
FIELD_CASES = next(
    (folder / "shared" / "field-cases" for folder in ROOT.parents if (folder / "shared" / "field-cases").is_dir()),
    ROOT.parent / "shared" / "field-cases",
)
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/"
# The model LiteLLM_SpendLogs of LiteLLM's schema.prisma, in the types Prisma gives PostgreSQL.
SPEND_LOGS = """
CREATE SCHEMA litellm;
CREATE TABLE litellm."LiteLLM_SpendLogs" (
    request_id text PRIMARY KEY,
    call_type text NOT NULL,
    api_key text NOT NULL DEFAULT '',
    spend double precision NOT NULL DEFAULT 0.0,
    total_tokens integer NOT NULL DEFAULT 0,
    prompt_tokens integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    "startTime" timestamp(3) NOT NULL,
    "endTime" timestamp(3) NOT NULL,
    request_duration_ms integer,
    "completionStartTime" timestamp(3),
    model text NOT NULL DEFAULT '',
    model_id text DEFAULT '',
    model_group text DEFAULT '',
    custom_llm_provider text DEFAULT '',
    api_base text DEFAULT '',
    "user" text DEFAULT '',
    metadata jsonb DEFAULT '{}',
    cache_hit text DEFAULT '',
    cache_key text DEFAULT '',
    request_tags jsonb DEFAULT '[]',
    team_id text,
    organization_id text,
    end_user text,
    requester_ip_address text,
    messages jsonb DEFAULT '{}',
    response jsonb DEFAULT '{}',
    session_id text,
    status text,
    mcp_namespaced_tool_name text,
    agent_id text,
    proxy_server_request jsonb DEFAULT '{}'
);
CREATE INDEX ON litellm."LiteLLM_SpendLogs" ("startTime");
"""


def write_jsonl(path: Path, records: Iterable[dict | str]) -> Path:
    """One JSON object per line; a str is written verbatim (for malformed lines)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def field_case(name: str, folder: Path) -> Path:
    """A writable copy of the field case `name` (e.g. "05-hour-only-utc-offset") under `folder`.

    The cases are read where they live, never copied into the repository; a test skips when they are missing.
    """
    if not (FIELD_CASES / name).is_dir():
        pytest.skip(f"field case {name} not found in {FIELD_CASES}")
    copy = Path(shutil.copytree(FIELD_CASES / name, folder / name))
    for path in [copy, *copy.iterdir()]:
        path.chmod(path.stat().st_mode | 0o200)
    return copy


def clean_every_day(landing: Path, sources: Iterable[SourceConfig], kind: Kind, tz: str = "UTC") -> dict[str, Cleaned]:
    """Extract and clean each local day the landing files touch, as daily runs would: day -> outcome."""
    sources = list(sources)
    probe = extract_day(landing, sources, kind, dt.date(2000, 1, 1), tz)
    days = sorted(set().union(*(stamp.days for stamp in probe.stamps.values())))
    return {
        day: clean_partition(extract_day(landing, sources, kind, dt.date.fromisoformat(day), tz).frame, kind, day)
        for day in days
    }


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


class Hook:
    """A loopback HTTP server that answers the first `failures` POSTs with `status` (and `headers`), then 200.

    It counts POSTs in `attempts` and any GET in `gets`; a 3xx answer points back at itself.
    """

    def __init__(self, failures: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        self.failures, self.attempts, self.gets, self.received = failures, 0, 0, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                answer = status if hook.attempts <= hook.failures else 200
                if answer == 200:
                    hook.received.append(json.loads(body))
                self.send_response(answer)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if 300 <= answer < 400:
                    self.send_header("Location", f"{hook.base}/elsewhere")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                hook.gets += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hook"
        self.shown = f"{self.base}/***"  # how errors name it: the path, where a token would be, hidden
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


def invoke_cli(*args: str, **env: str) -> Result:
    """`chatpulse ARGS` in this process through click's CliRunner, with `env` set for the call only.

    A run sets DAGSTER_HOME and CHATPULSE_CONFIG for the Dagster code it starts; naming
    them here makes the runner put them back afterwards, so nothing leaks into other tests.
    """
    scoped: dict[str, str | None] = {CONFIG_ENV: None, "DAGSTER_HOME": None, **env}
    return CliRunner().invoke(cli, list(args), env=scoped, catch_exceptions=False)


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
    "neighbour_requests",
    "neighbour_messages",
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
    "dimension_daily",
    "cost_reconciliation",
}


@contextmanager
def running_daemon() -> Iterator[subprocess.Popen]:
    """A real `dagster-daemon` on the repository's workspace, with this process's environment (DAGSTER_HOME and
    CHATPULSE_CONFIG set by the caller); terminated on leaving."""
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield daemon
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def sensor_tick(defs: Definitions, instance: DagsterInstance, cursor: str | None) -> Any:
    """One evaluation of the landing sensor, as the daemon would run it (Dagster's tick data: run requests, cursor)."""
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)
    return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


# ---- The daily report: a day's tables as the warehouse stores them ----

REPORT_DAY = dt.date(2026, 11, 20)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


DATA_PNG = "data:image/png;base64,"


class _Images(HTMLParser):
    """The attributes of every <img> of a page, in order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))


def embedded_charts(html: str) -> list[tuple[str, bytes]]:
    """Each <img> of a page as its chart name and the bytes its src embeds; fails on a src that is not a PNG URI."""
    charts = []
    for image in _Images(html).images:
        src = image["src"] or ""
        assert src.startswith(DATA_PNG), src[:80]
        charts.append((image["data-chart"] or "", base64.b64decode(src.removeprefix(DATA_PNG), validate=True)))
    return charts


def report_hourly(requests: list[int], errors: list[int]) -> pd.DataFrame:
    """24 hourly rows; error_rate is NaN for hours without requests, as the warehouse stores it."""
    req = np.array(requests, dtype=float)
    err = np.array(errors, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(req > 0, err / req, np.nan)
    return pd.DataFrame(
        {
            "day": REPORT_DAY.isoformat(),
            "hour": range(24),
            "requests": requests,
            "errors": errors,
            "error_rate": rate,
            "peak_rpm": [r // 10 for r in requests],
            "latency_mean_ms": np.where(req > 0, 600.0, np.nan),
            "latency_p50_ms": np.where(req > 0, 420.0, np.nan),
            "latency_p95_ms": np.where(req > 0, 1834.0, np.nan),
            "latency_p99_ms": np.where(req > 0, 3250.0, np.nan),
            "prompt_tokens": [r * 100 for r in requests],
            "completion_tokens": [r * 50 for r in requests],
            "total_tokens": [r * 150 for r in requests],
        }
    )


def report_daily(**overrides: object) -> pd.DataFrame:
    """One daily row; overrides let a test change just the numbers it checks."""
    row: dict[str, object] = {
        "day": REPORT_DAY.isoformat(),
        "requests": 1234,
        "errors": 31,
        "error_rate": 31 / 1234,
        "peak_rpm": 87,
        "peak_minute": "2026-11-20T14:32:00+00:00",
        "latency_mean_ms": 640.2,
        "latency_p50_ms": 420.0,
        "latency_p95_ms": 1834.0,
        "latency_p99_ms": 3310.0,
        "ttft_p50_ms": 180.0,
        "ttft_p95_ms": 910.0,
        "prompt_tokens": 1_000_000,
        "completion_tokens": 234_567,
        "total_tokens": 1_234_567,
        "cost_usd": 12.345,
        "users": 56,
        "models": 3,
        "sessions": 210,
        "session_duration_p50_s": 200.0,
        "session_duration_p95_s": 1500.0,
        "turns_mean": 3.14,
    }
    row.update(overrides)
    return pd.DataFrame([row])


def report_quality(reasons: dict[str, int]) -> pd.DataFrame:
    """data_quality rows of the three kinds; reasons are the requests' quarantine reasons and counts."""
    return pd.DataFrame(
        {
            "day": REPORT_DAY.isoformat(),
            "kind": ["requests", "messages", "feedback"],
            "rows_in": [1300, 5021, 40],
            "clean": [1234, 4990, 40],
            "quarantined": [3, 7, 0],
            "duplicates": [63, 24, 0],
            "repaired": [12, 0, 0],
            "reasons": [json.dumps(reasons), "{}", None],
        }
    )


def report_scenarios(labels: list[str]) -> list[Section]:
    """The report's table sections for a day whose only table is its scenario summary."""
    sessions = [150, 60][: len(labels)]
    return detail_sections(
        {
            "scenario_daily": pd.DataFrame(
                {
                    "day": REPORT_DAY.isoformat(),
                    "scenario": labels,
                    "sessions": sessions,
                    "requests": [900, 334][: len(labels)],
                    "share": [n / sum(sessions) for n in sessions],
                }
            )
        }
    )


def report_tables(model: str = "gpt-4o") -> dict[str, pd.DataFrame]:
    """The day's tables the section charts and the satisfaction card read."""
    day = REPORT_DAY.isoformat()
    return {
        "sessions": pd.DataFrame({"day": day, "session_id": ["s1", "s2", "s3"], "duration_s": [0.0, 240.0, 4000.0]}),
        "error_kinds": pd.DataFrame(
            {"day": day, "error_kind": ["timeout", "rate_limit"], "errors": [20, 11],
             "share_of_requests": [0.0162, 0.0089]}
        ),
        "scenario_daily": pd.DataFrame(
            {"day": day, "scenario": ["coding", "writing"], "sessions": [2, 1], "share": [2 / 3, 1 / 3],
             "satisfaction": [0.75, None], "ratings": [4, 0]}
        ),
        "model_costs": pd.DataFrame(
            {"day": day, "model": [model, "gpt-4o-mini"], "requests": [1000, 234], "total_tokens": [1_000_000, 234_567],
             "cost_estimate_usd": [12.0, None]}
        ),
        "feedback_daily": pd.DataFrame(
            {"day": day, "ratings": [40], "rated_sessions": [3], "feedback_coverage": [1.0], "satisfaction": [0.825]}
        ),
    }  # fmt: skip


def render_with(tmp_path: Path, tables: dict[str, pd.DataFrame], **kwargs: object) -> str:
    """The HTML of REPORT_DAY rendered into tmp_path with these section tables (their ``alerts`` open the page,
    in UTC) and render_report keywords."""
    requests = [10] * 24
    return render_report(
        REPORT_DAY,
        report_daily(),
        report_hourly(requests, [1] * 24),
        pd.Series([100.0, 900.0]),
        report_quality({}),
        detail_sections(tables),
        tmp_path,
        tables=tables,
        alerts=alert_summary(tables.get("alerts"), "UTC"),
        **kwargs,  # type: ignore[arg-type]
    ).read_text(encoding="utf-8")


def full_day(scenarios: int = 11, models: int = 4, alerts: int = 0, users: int = 40) -> dict[str, pd.DataFrame]:
    """A full day's tables as the pipeline stores them, every section filled and ids as long as real logs'.

    The default is an ordinary day (19 trend metrics, 10 slowest requests, worst-rated sessions and top users
    shown); a busy one has more scenarios, models and alerts. At least 9 scenarios, for the spotlight's rows.
    Model names are as long as a real provider's ("accounts/fireworks/models/..."), user ids e-mail addresses.
    """
    from chatpulse.metrics.trends import HEADLINES

    day = REPORT_DAY.isoformat()
    names = [f"scenario-{n:02d}" for n in range(scenarios)]
    model_names = [f"accounts/fireworks/models/llama-v3p1-405b-instruct-2024-08-{n:02d}" for n in range(models)]
    user_ids = [f"firstname.lastname{n:04d}@department.example.com" for n in range(users)]
    metrics = [*HEADLINES, "satisfaction"]
    start = pd.Timestamp("2026-11-20T01:00:00Z")
    return {
        "sessions": pd.DataFrame({"day": day, "session_id": [f"s{n}" for n in range(300)],
                                  "duration_s": np.linspace(5.0, 5000.0, 300)}),
        "alerts": pd.DataFrame(
            {"day": day, "rule": [f"error_rate_5m_{n}" for n in range(alerts)], "metric": "error_rate",
             "severity": ["error", "warn"] * (alerts // 2) + ["warn"] * (alerts % 2),
             "window_start": [start + pd.Timedelta(hours=n) for n in range(alerts)],
             "window_end": [start + pd.Timedelta(hours=n, minutes=5) for n in range(alerts)],
             "value": 0.31, "threshold": 0.1, "baseline": None,
             "resolved_at": [start + pd.Timedelta(hours=n, minutes=10) if n % 2 else pd.NaT for n in range(alerts)]}
        ),
        "daily_trends": pd.DataFrame(
            {"day": day, "metric": metrics, "value": 1834.5, "previous_day": 1700.25, "week_ago": 1500.0,
             "mean_7d": 1650.75, "mean_28d": 1600.5, "days_7": 7, "days_28": 28}
        ),
        "scenario_daily": pd.DataFrame(
            {"day": day, "scenario": names, "sessions": range(100, 100 + scenarios), "share": 1 / scenarios,
             "users": 42, "requests": 1234, "latency_p95_ms": 1834.0, "error_rate": 0.025,
             "feedback_coverage": 0.125, "satisfaction": 0.825, "ratings": 40}
        ),
        "scenario_spotlight": pd.DataFrame(
            {"day": day, "metric": ["latency_p95_ms", "error_rate", "satisfaction"] * 3,
             "rank": [1, 1, 1, 2, 2, 2, 3, 3, 3], "scenario": names[:9], "value": 0.5, "baseline": 0.8}
        ),
        "feedback_daily": pd.DataFrame(
            {"day": day, "ratings": [412], "rated_sessions": [180], "feedback_coverage": [0.6], "satisfaction": [0.825]}
        ),
        "feedback_by_model": pd.DataFrame({"day": day, "model": model_names, "ratings": 103, "satisfaction": 0.8}),
        "feedback_by_latency": pd.DataFrame(
            {"day": day, "bucket": ["<1 s", "1-3 s", "3-10 s", "10 s+"], "bucket_order": range(4), "ratings": 103,
             "satisfaction": 0.8}
        ),
        "negative_sessions": pd.DataFrame(
            {"day": day, "session_id": [f"7f3c2a1e-9b8d-4c6f-a5e4-3d2c1b0a{n:04d}" for n in range(25)],
             "scenario": names[0], "model": model_names[0], "satisfaction": np.linspace(0.0, 0.4, 25),
             "latency_mean_ms": 2345.0, "errors": 2}
        ),
        "error_kinds": pd.DataFrame(
            {"day": day, "error_kind": ["timeout", "rate_limit", "server", "client"], "errors": [20, 11, 5, 2],
             "share_of_errors": 0.25, "share_of_requests": 0.0125}
        ),
        "model_costs": pd.DataFrame(
            {"day": day, "model": model_names, "requests": 1000, "total_tokens": 1_234_567,
             "cost_estimate_usd": 12.5, "cost_logged_usd": 12.25, "unpriced_requests": 0}
        ),
        "request_metrics": pd.DataFrame(
            {"day": day, "dimension": ["all"] + ["model"] * models, "value": [None, *model_names],
             "requests": [1000 * models] + [1000] * models, "errors": 25, "error_rate": 0.025,
             "latency_p50_ms": 420.0, "latency_p95_ms": 1834.0, "ttft_p50_ms": 180.0}
        ),
        "daily_users": pd.DataFrame(
            {"day": day, "user_id": user_ids, "rank": range(1, users + 1), "requests": range(users * 10, 0, -10),
             "errors": 1, "total_tokens": 123_456, "cost_estimate_usd": 1.25, "cost_logged_usd": None,
             "unpriced_requests": 0}
        ),
        "slowest_requests": pd.DataFrame(
            {"day": day, "rank": range(1, 51), "request_id": [f"chatcmpl-9f8e7d6c5b4a3210fe{n:06d}" for n in range(50)],
             "model": model_names[0], "user_id": [f"user-{n:06d}" for n in range(50)], "latency_ms": 45_000.0,
             "ttft_ms": 3_200.0}
        ),
    }  # fmt: skip


def postgres_widths(column: str) -> set[int]:
    """The VARCHAR widths PostgreSQL is given for `column` in any table, read from the DDL it is sent."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from chatpulse.tables import TABLES

    ddl = "\n".join(str(CreateTable(table).compile(dialect=postgresql.dialect())) for table in TABLES.values())
    return {int(width) for width in re.findall(rf"\b{column} VARCHAR\((\d+)\)", ddl)}
