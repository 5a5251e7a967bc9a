"""The latest metrics in Prometheus text format, for node_exporter's textfile collector or a scrape.

Gauges of the newest day in `daily_metrics` (labelled with that day) and the open alerts by
severity; read fresh from the warehouse on every call, so a scrape sees the last run.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DAILY_GAUGES = {
    "requests": "Requests on the latest day",
    "errors": "Failed requests on the latest day",
    "error_rate": "Share of the latest day's requests that failed",
    "peak_rpm": "Busiest minute's requests on the latest day",
    "latency_p50_ms": "Median latency on the latest day, milliseconds",
    "latency_p95_ms": "95th percentile latency on the latest day, milliseconds",
    "latency_p99_ms": "99th percentile latency on the latest day, milliseconds",
    "total_tokens": "Tokens on the latest day",
    "cost_usd": "Logged cost on the latest day, USD",
    "users": "Active users on the latest day",
    "sessions": "Sessions on the latest day",
}


def _gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP chatpulse_{name} {help_text}", f"# TYPE chatpulse_{name} gauge"]
    return lines + [f"chatpulse_{name}{labels} {value:.10g}" for labels, value in samples]


def render(warehouse: Warehouse) -> str:
    """The exposition text: daily gauges of the newest day (none before the first run) and open alerts."""
    daily, alerts = TABLES["daily_metrics"], TABLES["alerts"]
    with warehouse.engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(daily.c.day))).scalar()
        row = conn.execute(sa.select(daily).where(daily.c.day == latest)).mappings().first() if latest else None
        open_counts = dict(
            conn.execute(
                sa.select(alerts.c.severity, sa.func.count())
                .where(alerts.c.resolved_at.is_(None))
                .group_by(alerts.c.severity)
            ).all()
        )
    lines: list[str] = []
    if row is not None:
        for name, help_text in DAILY_GAUGES.items():
            if row[name] is not None and not pd.isna(row[name]):
                lines += _gauge(name, help_text, [(f'{{day="{latest}"}}', float(row[name]))])
    lines += _gauge(
        "open_alerts",
        "Alerts not resolved, by severity",
        [(f'{{severity="{severity}"}}', float(open_counts.get(severity, 0))) for severity in ("warn", "error")],
    )
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Write atomically (temporary file, then rename), as the textfile collector requires."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def server(warehouse: Warehouse, host: str = "127.0.0.1", port: int = 9464) -> ThreadingHTTPServer:
    """An HTTP server answering GET /metrics with `render`; the caller runs serve_forever."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render(warehouse).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)
