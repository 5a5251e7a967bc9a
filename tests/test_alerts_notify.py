"""Alert delivery: webhook to a real HTTP server on loopback, mail to aiosmtpd, retries and the pending table."""

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.alerting.delivery import DeliveryError, deliver, deliveries, payload, post_json, shown_url
from chatpulse.config import settings_from_mapping
from chatpulse.reports.alerts import alert_summary
from chatpulse.warehouse import Warehouse

from fixtures import Hook, Inbox, free_port

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


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
        "ChatPulse alerts\n[WARN] error_rate_1h: error_rate = 25.0% (threshold 10.0%) "
        "2026-11-26 14:00-15:00 UTC, 200 requests"
    )


def test_a_baseline_alert_reads_as_the_report_shows_it() -> None:
    """It read "latency_p95_ms = 4.862e+04 (baseline 8135, threshold 6)" where the report says 48.6 s."""
    spike = _alerts().assign(
        rule="latency_p95_spike", metric="latency_p95_ms", value=48_615.0, baseline=8_135.0, threshold=6.0
    )
    assert "latency_p95_ms = 48.6 s (baseline 8.1 s, score limit 6) 2026-11-26" in payload(spike, "slack")["text"]
    assert alert_summary(spike, "UTC").rows[0]["against"] == "baseline 8.1 s (score limit 6)"


def test_a_window_across_midnight_names_both_dates() -> None:
    """A day's bill gap (and a month's budget) spans midnight: bare hours would read 00:00-00:00."""
    day = _alerts().assign(
        window_start=pd.Timestamp("2026-11-26", tz="UTC"), window_end=pd.Timestamp("2026-11-27", tz="UTC")
    )
    assert "2026-11-26 00:00-2026-11-27 00:00 UTC, 200 requests" in payload(day, "slack")["text"]


def test_a_gap_judged_either_way_shows_its_threshold_either_way() -> None:
    """A bill below the log by 5.7% breaches a 5% threshold: "-5.7% (threshold 5.0%)" would read as no breach."""
    gap = _alerts().assign(rule="bill gap openai", metric="bill_gap_share", value=-0.057, threshold=0.05)
    assert "bill_gap_share = -5.7% (threshold ±5.0%)" in payload(gap, "slack")["text"]
    row = alert_summary(gap, "UTC").rows[0]
    assert (row["value"], row["against"]) == ("-5.7%", "threshold ±5.0%")
    assert alert_summary(_alerts(), "UTC").rows[0]["against"] == "threshold 10.0%"  # one-sided as before


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
    assert pending.iloc[0][["channel", "target", "attempts", "last_error"]].tolist() == [
        "webhook",
        "alert_webhook",  # the configuration key: the URL is read from the configuration when it is sent
        1,
        f"webhook {down.shown}: HTTP 500",
    ]
    up = Hook(failures=0)
    try:
        retry = settings_from_mapping({"alert_webhook": {"url": up.url}}, tmp_path, {})  # the webhook was moved
        second = deliver(warehouse, "2026-11-27", [], retry, NOW, sleep=lambda _: None)
    finally:
        up.close()
    assert (second.delivered, second.pending, up.attempts) == (1, 0, 1)
    assert up.received == [payload(_alerts(), "json")]
    assert warehouse.read("alert_deliveries").empty


def test_a_delivery_stored_with_its_url_goes_to_the_configured_webhook_and_loses_the_url(tmp_path: Path) -> None:
    """Rows an earlier version stored held the webhook URL itself (token included) as their target."""
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    old_url = "https://hooks.example.org/services/T0/B0/s3cr3t?token=t0k3n"
    row = {"day": "2026-11-25", "delivery_id": "d1", "channel": "webhook", "target": old_url,
           "payload": json.dumps(payload(_alerts(), "json")), "attempts": 1, "last_error": "HTTP 500",
           "failed_at": NOW}  # fmt: skip
    warehouse.append("alert_deliveries", pd.DataFrame([row]))
    down = Hook(failures=10)
    try:
        settings = settings_from_mapping({"alert_webhook": {"url": down.url, "retries": 0}}, tmp_path, {})
        outcome = deliver(warehouse, "2026-11-26", [], settings, NOW, sleep=lambda _: None)
    finally:
        down.close()
    assert (outcome.pending, down.attempts) == (1, 1)  # tried at the configured webhook
    pending = warehouse.read("alert_deliveries")
    assert pending[["delivery_id", "target", "attempts"]].values.tolist() == [["d1", "alert_webhook", 2]]
    assert "s3cr3t" not in pending.astype(str).to_string()
    up = Hook(failures=0)
    try:
        settings = settings_from_mapping({"alert_webhook": {"url": up.url}}, tmp_path, {})
        assert deliver(warehouse, "2026-11-27", [], settings, NOW).delivered == 1
    finally:
        up.close()
    assert up.received == [payload(_alerts(), "json")] and warehouse.read("alert_deliveries").empty


def test_a_pending_webhook_delivery_waits_while_no_webhook_is_configured(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    down = Hook(failures=10)
    try:
        settings = settings_from_mapping({"alert_webhook": {"url": down.url, "retries": 0}}, tmp_path, {})
        deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW, sleep=lambda _: None)
    finally:
        down.close()
    outcome = deliver(warehouse, "2026-11-27", [], settings_from_mapping({}, tmp_path, {}), NOW)
    assert (outcome.delivered, outcome.pending) == (0, 1)
    assert outcome.errors == ("webhook: alert_webhook is not configured any more; the alert waits until it is",)


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
    assert outcome.errors == (f"webhook {down.shown}: HTTP 500",)
    pending = warehouse.read("alert_deliveries").sort_values("attempts", ascending=False)
    assert pending[["day", "attempts"]].values.tolist() == [["2026-11-27", 2], ["2026-11-27", 0]]
    assert (pending["last_error"] == f"webhook {down.shown}: HTTP 500").all()


def test_an_unreachable_webhook_raises_a_delivery_error_naming_it() -> None:
    port = free_port()
    with pytest.raises(DeliveryError, match=rf"^webhook http://127\.0\.0\.1:{port}/\*\*\*: .*Connection refused$"):
        post_json(f"http://127.0.0.1:{port}/x", "{}", timeout_s=1, retries=0, backoff_s=0)


def test_a_redirect_is_a_failed_delivery_and_never_followed(tmp_path: Path) -> None:
    moved = Hook(failures=10, status=302)
    settings = settings_from_mapping({"alert_webhook": {"url": moved.url, "retries": 2}}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        outcome = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW, sleep=lambda _: None)
    finally:
        moved.close()
    # Not retried (a redirect is no passing fault), not re-sent as a GET to the Location, kept for the next run.
    assert (outcome.delivered, outcome.pending, moved.attempts, moved.gets, moved.received) == (0, 1, 1, 0, [])
    error = f"webhook {moved.shown}: HTTP 302, a redirect; redirects are not followed"
    assert outcome.errors == (error,)
    pending = warehouse.read("alert_deliveries").iloc[0]
    assert (pending["attempts"], pending["last_error"]) == (1, error)


def test_a_503_then_200_is_delivered_on_the_retry() -> None:
    busy = Hook(failures=1, status=503)
    waits: list[float] = []
    try:
        attempts = post_json(busy.url, '{"a": 1}', timeout_s=5, retries=3, backoff_s=0.25, sleep=waits.append)
    finally:
        busy.close()
    assert (attempts, busy.attempts, waits, busy.received, busy.gets) == (2, 2, [0.25], [{"a": 1}], 0)


def test_retry_after_sets_the_wait_and_retries_are_bounded() -> None:
    limited = Hook(failures=10, status=429, headers={"Retry-After": "3600"})
    waits: list[float] = []
    try:
        with pytest.raises(DeliveryError, match=r"HTTP 429$"):
            post_json(limited.url, "{}", timeout_s=5, retries=2, backoff_s=0.25, sleep=waits.append)
    finally:
        limited.close()
    assert (limited.attempts, waits) == (3, [60, 60])  # the server's wait, capped at a minute, not the backoff


def test_a_token_in_the_url_never_reaches_errors_or_logs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    down = Hook(failures=10)
    secret_url = down.url.replace("http://", "http://me:pa55@") + "/T0/B0/s3cr3t?token=t0k3n"
    settings = settings_from_mapping({"alert_webhook": {"url": secret_url, "retries": 1}}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    caplog.set_level(logging.DEBUG)
    try:
        outcome = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW, sleep=lambda _: None)
    finally:
        down.close()
    refused = f"http://127.0.0.1:{free_port()}/hooks/s3cr3t?token=t0k3n"
    with pytest.raises(DeliveryError) as raised:
        post_json(refused, "{}", timeout_s=1, retries=1, backoff_s=0, sleep=lambda _: None)
    assert outcome.errors == (f"webhook {down.shown}: HTTP 500",) and down.attempts == 2
    assert "/***" in caplog.text  # urllib3 did log the requests, with the path hidden
    said = " ".join(
        [*outcome.errors, str(raised.value), caplog.text, warehouse.read("alert_deliveries").astype(str).to_string()]
    )
    for secret in ("s3cr3t", "t0k3n", "pa55"):
        assert secret not in said
    assert raised.value.__suppress_context__  # no chained exception to print the URL in a traceback


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/***"),
        ("http://me:pw@example.org:8080/?token=abc", "http://example.org:8080/***"),
        ("https://example.org/", "https://example.org"),
        ("http://[::1]:9000/x", "http://[::1]:9000/***"),
        ("hooks/secret", "<a URL without scheme or host>"),
    ],
)
def test_shown_url_keeps_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_alert_mail_arrives_through_the_report_mailer(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mail = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "cp@x.org", "recipients": ["o@x.org"]}
    settings = settings_from_mapping({"mail": mail}, tmp_path, {})
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    outcome = deliver(warehouse, "2026-11-26", deliveries(_alerts(), settings), settings, NOW)
    assert (outcome.delivered, outcome.pending, len(inbox.messages)) == (1, 0, 1)
    message = inbox.messages[0]
    assert message["Subject"] == "ChatPulse 2026-11-26: 1 alert firing, 0 resolved"
    assert re.fullmatch(r"<[^@<>\s]+@x\.org>", message["Message-ID"])  # in the sender's domain
    sent = parsedate_to_datetime(message["Date"])
    assert sent.tzinfo is not None and abs((datetime.now(UTC) - sent).total_seconds()) < 60
    assert message.get_content().replace("\r\n", "\n") == (
        "[WARN] error_rate_1h: error_rate = 25.0% (threshold 10.0%) 2026-11-26 14:00-15:00 UTC, 200 requests\n"
    )
