"""The latest metrics in Prometheus text format, for node_exporter's textfile collector or a scrape.

Gauges of the newest day in `daily_metrics` (labelled with that day) and the open alerts by
severity; read fresh from the warehouse on every collection, so a scrape sees the last run.

prometheus_client writes the format, the atomic textfile and the HTTP answer (content
negotiation, gzip); the server around its WSGI app has a fixed pool of worker threads and a
socket timeout, so idle clients can neither pin a thread for ever nor start unbounded threads.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse
from wsgiref.types import WSGIApplication as WSGIApp

import pandas as pd
import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    generate_latest,
    make_wsgi_app,
    write_to_textfile,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

WORKERS = 4
METRICS_PATHS = ("/", "/metrics")
IDLE_TIMEOUT_S = 10.0  # a scraper sends its request at once; only a stuck or idle client waits this long
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
    "cost_estimate_usd": "Estimated cost (token counts times list prices) on the latest day, USD",
    "estimated_requests": "Requests of the latest day that have a cost estimate",
    "unmetered_requests": "Served requests of the latest day without token usage (cost unknown, not $0)",
    "users": "Active users on the latest day",
    "sessions": "Sessions on the latest day",
}


class WarehouseCollector:
    """A prometheus_client collector that reads the warehouse on every `collect`.

    A collector rather than long-lived Gauge objects: each collection emits only the newest
    day's label, so yesterday's series cannot linger, and nothing has to be reset between scrapes.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def collect(self) -> Iterator[Metric]:
        """Daily gauges of the newest day (none before the first run), then open alerts by severity."""
        daily, alerts = TABLES["daily_metrics"], TABLES["alerts"]
        with self.warehouse.engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(daily.c.day))).scalar()
            row = conn.execute(sa.select(daily).where(daily.c.day == latest)).mappings().first() if latest else None
            open_counts = dict(
                conn.execute(
                    sa.select(alerts.c.severity, sa.func.count())
                    .where(alerts.c.resolved_at.is_(None))
                    .group_by(alerts.c.severity)
                ).all()
            )
        if row is not None:
            for name, help_text in DAILY_GAUGES.items():
                if row[name] is not None and not pd.isna(row[name]):
                    gauge = GaugeMetricFamily(f"chatpulse_{name}", help_text, labels=["day"])
                    gauge.add_metric([str(latest)], float(row[name]))
                    yield gauge
        open_alerts = GaugeMetricFamily(
            "chatpulse_open_alerts", "Alerts not resolved, by severity", labels=["severity"]
        )
        for severity in ("warn", "error"):
            open_alerts.add_metric([severity], float(open_counts.get(severity, 0)))
        yield open_alerts


def registry(warehouse: Warehouse) -> CollectorRegistry:
    """A registry holding only the warehouse collector (no process or Python metrics of this process)."""
    metrics = CollectorRegistry()
    metrics.register(WarehouseCollector(warehouse))
    return metrics


def render(warehouse: Warehouse) -> str:
    """The exposition text (Prometheus text format 0.0.4) of the warehouse's current metrics."""
    return generate_latest(registry(warehouse)).decode()


def write_textfile(path: Path, warehouse: Warehouse) -> None:
    """Write the warehouse's metrics to `path` atomically (temporary file, then rename), as node_exporter requires.

    Creates the parent folder; the temporary file's name does not end in `.prom`, so a
    collector reading the folder meanwhile never sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry(warehouse))


class _QuietHandler(WSGIRequestHandler):
    """Serves prometheus_client's WSGI app, dropping a client silent for the server's `idle_timeout_s`."""

    server: MetricsServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s  # StreamRequestHandler.setup applies it to the socket
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape every few seconds would flood the terminal


class MetricsServer(WSGIServer):
    """A WSGI server handing each connection to a fixed pool of `workers` threads.

    A connection waits in the pool's queue while every worker is busy; a worker is freed at
    the latest when its client has been silent for `idle_timeout_s` seconds.
    """

    def __init__(self, address: tuple[str, int], workers: int, idle_timeout_s: float) -> None:
        super().__init__(address, _QuietHandler)
        self.idle_timeout_s = idle_timeout_s
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chatpulse-metrics")

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        self.pool.submit(self._handle, request, client_address)

    def _handle(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            self.finish_request(request, client_address)
        except TimeoutError:
            pass  # an idle or too slow client: closing its connection is the whole answer
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def server(
    warehouse: Warehouse,
    host: str = "127.0.0.1",
    port: int = 9464,
    *,
    workers: int = WORKERS,
    timeout_s: float = IDLE_TIMEOUT_S,
) -> MetricsServer:
    """A bound HTTP server answering GET with the metrics; the caller runs `serve_forever` and `server_close`.

    `port` 0 lets the system pick one (read it from `server_address`); `workers` bounds the
    threads; a client silent for `timeout_s` seconds is disconnected.
    """
    http = MetricsServer((host, port), workers, timeout_s)
    http.set_app(_only_metrics_paths(make_wsgi_app(registry(warehouse))))
    return http


def _only_metrics_paths(app: WSGIApp) -> WSGIApp:
    """The app on `/` and `/metrics`; any other path is 404, so a mistyped scrape URL is not read as metrics."""

    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in METRICS_PATHS:
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: metrics are at /metrics\n"]

    return route
