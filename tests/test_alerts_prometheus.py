"""Prometheus text format of the latest metrics: the textfile and `chatpulse serve-metrics` on loopback."""

import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.alerting.prometheus import MetricsServer, render, server, write_textfile
from chatpulse.warehouse import Warehouse, Write

from fixtures import ROOT


def _warehouse(path: Path) -> Warehouse:
    warehouse = Warehouse(f"sqlite:///{path}")
    for day, requests in (("2026-11-26", 100), ("2026-11-27", 250)):
        daily = pd.DataFrame(
            [{"requests": requests, "errors": 5, "error_rate": 5 / requests, "latency_p95_ms": 1234.5, "cost_usd": 0.5}]
        ).assign(cost_estimate_usd=0.75, estimated_requests=requests - 10, unmetered_requests=10)
        warehouse.replace_day(day, Write("daily_metrics", daily))
    start = pd.Timestamp("2026-11-27 14:00", tz="UTC")
    alert = {"rule": "r", "metric": "error_rate", "severity": "error", "window_start": start, "resolved_at": pd.NaT}
    warehouse.replace_day("2026-11-27", Write("alerts", pd.DataFrame([alert])))
    return warehouse


# prometheus_client writes every value as a float ("250.0"); names, HELP texts, labels and order are ours.
EXPECTED = """\
# HELP chatpulse_requests Requests on the latest day
# TYPE chatpulse_requests gauge
chatpulse_requests{day="2026-11-27"} 250.0
# HELP chatpulse_errors Failed requests on the latest day
# TYPE chatpulse_errors gauge
chatpulse_errors{day="2026-11-27"} 5.0
# HELP chatpulse_error_rate Share of the latest day's requests that failed
# TYPE chatpulse_error_rate gauge
chatpulse_error_rate{day="2026-11-27"} 0.02
# HELP chatpulse_latency_p95_ms 95th percentile latency on the latest day, milliseconds
# TYPE chatpulse_latency_p95_ms gauge
chatpulse_latency_p95_ms{day="2026-11-27"} 1234.5
# HELP chatpulse_cost_usd Logged cost on the latest day, USD
# TYPE chatpulse_cost_usd gauge
chatpulse_cost_usd{day="2026-11-27"} 0.5
# HELP chatpulse_cost_estimate_usd Estimated cost (token counts times list prices) on the latest day, USD
# TYPE chatpulse_cost_estimate_usd gauge
chatpulse_cost_estimate_usd{day="2026-11-27"} 0.75
# HELP chatpulse_estimated_requests Requests of the latest day that have a cost estimate
# TYPE chatpulse_estimated_requests gauge
chatpulse_estimated_requests{day="2026-11-27"} 240.0
# HELP chatpulse_unmetered_requests Served requests of the latest day without token usage (cost unknown, not $0)
# TYPE chatpulse_unmetered_requests gauge
chatpulse_unmetered_requests{day="2026-11-27"} 10.0
# HELP chatpulse_open_alerts Alerts not resolved, by severity
# TYPE chatpulse_open_alerts gauge
chatpulse_open_alerts{severity="warn"} 0.0
chatpulse_open_alerts{severity="error"} 1.0
"""
# Prometheus' text exposition format, version 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats/): written
# here, not read from the module, so a wrong content type fails.
PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


def test_render_and_textfile(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "w.db")
    assert render(warehouse) == EXPECTED
    target = tmp_path / "textfile" / "chatpulse.prom"
    write_textfile(target, warehouse)
    assert target.read_text() == EXPECTED and [p.name for p in target.parent.iterdir()] == ["chatpulse.prom"]


@pytest.mark.subprocess
def test_serve_metrics_answers_on_loopback(tmp_path: Path) -> None:
    _warehouse(tmp_path / "warehouse.db")
    (tmp_path / "chatpulse.yaml").write_text("data_home: .\n")
    config = str(tmp_path / "chatpulse.yaml")
    command = [sys.executable, "-m", "chatpulse.pipelines.cli", "--config", config, "serve-metrics", "--port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        # It prints its address once it listens: port 0 lets the system pick a free one.
        url = re.fullmatch(r"serving (http://127\.0\.0\.1:\d+/metrics)", process.stdout.readline().strip())
        assert url is not None
        with urllib.request.urlopen(url[1], timeout=5) as response:
            body, content_type = response.read().decode(), response.headers["Content-Type"]
        assert (body, content_type) == (EXPECTED, PLAIN_0_0_4)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@contextmanager
def _serving(warehouse: Warehouse, timeout_s: float) -> Iterator[MetricsServer]:
    http = server(warehouse, port=0, workers=2, timeout_s=timeout_s)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield http
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)


def test_an_idle_client_neither_blocks_a_scrape_nor_keeps_its_connection(tmp_path: Path) -> None:
    timeout_s = 1.5
    with _serving(_warehouse(tmp_path / "w.db"), timeout_s) as http:
        address = http.server_address[:2]
        with socket.create_connection(address, timeout=timeout_s + 5) as idle:  # connects and says nothing
            connected = time.monotonic()
            with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=5) as response:
                body, content_type = response.read().decode(), response.headers["Content-Type"]
            scraped = time.monotonic() - connected
            assert (body, content_type) == (EXPECTED, PLAIN_0_0_4)
            assert scraped < timeout_s  # answered by the other worker, not after the idle client's timeout
            # The server closes the idle connection once it has been silent for the timeout: recv sees the end.
            assert idle.recv(1) == b""
            closed = time.monotonic() - connected
    assert timeout_s * 0.9 <= closed < timeout_s + 3


def test_only_the_metrics_paths_answer(tmp_path: Path) -> None:
    with _serving(_warehouse(tmp_path / "w.db"), 5.0) as http:
        base = "http://{}:{}".format(*http.server_address[:2])
        for path in ("/", "/metrics"):
            with urllib.request.urlopen(base + path, timeout=5) as response:
                assert response.read().decode() == EXPECTED
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/metric", timeout=5)
        missing.value.close()  # the error holds the response open
        assert missing.value.code == 404
