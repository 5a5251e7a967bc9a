"""Alert delivery: webhook to a real HTTP server on loopback, mail to aiosmtpd, retries and the pending table."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.alerting.delivery import DeliveryError, deliver, deliveries, payload, post_json
from chatpulse.config import settings_from_mapping
from chatpulse.warehouse import Warehouse
from fixtures import Inbox, free_port

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


class Hook:
    """A loopback HTTP server that answers the first `failures` POSTs with 500, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures, self.attempts, self.received = failures, 0, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                status = 500 if hook.attempts <= hook.failures else 200
                if status == 200:
                    hook.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook(failures=2)
    yield server
    server.close()


def _alerts() -> pd.DataFrame:
    start = pd.Timestamp("2026-11-26 14:00", tz="UTC")
    return pd.DataFrame(
        [
            {
                "day": "2026-11-26",
                "rule": "error_rate_1h",
                "metric": "error_rate",
                "severity": "warn",
                "window_start": start,
                "window_end": start + pd.Timedelta(hours=1),
                "value": 0.25,
                "threshold": 0.1,
                "baseline": float("nan"),
                "requests": 200,
                "first_seen": pd.Timestamp(NOW),
                "last_seen": pd.Timestamp(NOW),
                "resolved_at": pd.NaT,
            }
        ]
    )


def test_a_server_that_fails_twice_gets_the_alert_once(hook: Hook, tmp_path: Path) -> None:
    waits: list[float] = []
    settings = settings_from_mapping({"alert_webhook": {"url": hook.url, "backoff_s": 0.5}}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    outcome = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW, sleep=waits.append)
    assert (outcome.delivered, outcome.pending, hook.attempts, waits) == (1, 0, 3, [0.5, 1.0])
    assert hook.received == [payload(_alerts(), "json")]
    alert = hook.received[0]["alerts"][0]
    assert (alert["rule"], alert["state"], alert["value"], alert["window_start"]) == (
        "error_rate_1h",
        "firing",
        0.25,
        "2026-11-26T14:00:00+00:00",
    )
    assert warehouse.read("alert_deliveries").empty


def test_slack_payload_is_one_text() -> None:
    text = payload(_alerts(), "slack")["text"]
    assert text == (
        "ChatPulse alerts\n[WARN] error_rate_1h: error_rate = 0.25 (threshold 0.1) "
        "2026-11-26 14:00-15:00 UTC, 200 requests"
    )


def test_a_failed_delivery_is_recorded_and_retried_on_the_next_run(tmp_path: Path) -> None:
    down = Hook(failures=10)
    settings = settings_from_mapping({"alert_webhook": {"url": down.url, "retries": 1}}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        first = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW, sleep=lambda _: None)
    finally:
        down.close()
    assert (first.delivered, first.pending, down.attempts) == (0, 1, 2)
    pending = warehouse.read("alert_deliveries")
    assert (pending.iloc[0]["channel"], pending.iloc[0]["attempts"], pending.iloc[0]["last_error"]) == (
        "webhook",
        1,
        f"webhook {down.url}: HTTP 500",
    )
    up = Hook(failures=0)
    try:
        retry = settings_from_mapping({"alert_webhook": {"url": up.url}}, tmp_path, {})
        # The stored delivery keeps its target; point it at the server that is up now.
        with warehouse.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alert_deliveries SET target = ?", (up.url,))
        second = deliver(warehouse, "2026-11-27", [], retry, NOW, sleep=lambda _: None)
    finally:
        up.close()
    assert (second.delivered, second.pending, up.attempts) == (1, 0, 1)
    assert up.received == [payload(_alerts(), "json")]
    assert warehouse.read("alert_deliveries").empty


def test_once_a_webhook_fails_its_other_deliveries_wait_untried(tmp_path: Path) -> None:
    down = Hook(failures=10)
    settings = settings_from_mapping({"alert_webhook": {"url": down.url, "retries": 1}}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        for day in ("2026-11-26", "2026-11-27"):
            outcome = deliver(warehouse, day, deliveries(_alerts(), settings), settings, NOW, sleep=lambda _: None)
    finally:
        down.close()
    # Run 1 tried its delivery twice (one retry); run 2 tried the pending one twice and left its own untried.
    assert (outcome.delivered, outcome.pending, down.attempts) == (0, 2, 4)
    assert outcome.errors == (f"webhook {down.url}: HTTP 500",)
    pending = warehouse.read("alert_deliveries").sort_values("attempts", ascending=False)
    assert pending[["day", "attempts"]].values.tolist() == [["2026-11-27", 2], ["2026-11-27", 0]]
    assert (pending["last_error"] == f"webhook {down.url}: HTTP 500").all()


def test_an_unreachable_webhook_raises_a_delivery_error_naming_it() -> None:
    port = free_port()
    with pytest.raises(DeliveryError, match=rf"^webhook http://127.0.0.1:{port}/x: .*Connection refused"):
        post_json(f"http://127.0.0.1:{port}/x", "{}", timeout_s=1, retries=0, backoff_s=0)


def test_alert_mail_arrives_through_the_report_mailer(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mail = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "cp@x.org", "recipients": ["o@x.org"]}
    settings = settings_from_mapping({"mail": mail}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    outcome = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW)
    assert (outcome.delivered, outcome.pending, len(inbox.messages)) == (1, 0, 1)
    message = inbox.messages[0]
    assert message["Subject"] == "ChatPulse: 1 alert(s) firing, 0 resolved"
    assert message.get_content().replace("\r\n", "\n") == (
        "[WARN] error_rate_1h: error_rate = 0.25 (threshold 0.1) 2026-11-26 14:00-15:00 UTC, 200 requests\n"
    )
