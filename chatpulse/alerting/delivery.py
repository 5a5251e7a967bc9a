"""Deliver alert notifications by webhook and e-mail, and never lose one silently.

A webhook POST (requests, with urllib3's Retry) is retried with exponential backoff; what
still fails after the retries (or a mail the SMTP server refuses) goes into the
`alert_deliveries` table with its error and is tried again at the start of the next run,
before anything new is sent. Errors and logs name a webhook by scheme, host and port only:
its path and query may hold its token. The table names a delivery's target by the configuration
key it came from (`alert_webhook`, `mail`), never by its URL: the URL is read from the
configuration when the delivery is sent.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NewConnectionError, ReadTimeoutError
from urllib3.util import Retry

from chatpulse.alerting.spend import TWO_SIDED
from chatpulse.config import MailSettings, Settings
from chatpulse.days import window_text
from chatpulse.formatting import format_metric
from chatpulse.mail import MailError, message_id, send
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# What `alert_deliveries.target` holds: the configuration key whose settings a delivery is sent with.
TARGETS = {"webhook": "alert_webhook", "mail": "mail"}
RETRY_AFTER_MAX_S = 60  # a longer Retry-After is cut to this, so one slow hook cannot hold up a run
# urllib3 logs the request path (where a webhook's token lives) when it retries.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


class DeliveryError(RuntimeError):
    """A notification could not be delivered; the message says where and why."""


def _state(alert: pd.Series) -> str:
    """FIRING severity, RESOLVED, or severity "over" for a breach first seen after it ended (a backfill)."""
    severity = str(alert["severity"]).upper()
    if pd.isna(alert["resolved_at"]):
        return severity
    return f"{severity}, OVER" if alert["resolved_at"] == alert["first_seen"] else "RESOLVED"


def describe(alert: pd.Series) -> str:
    """One alert as the Slack text and the alert mail list it, its numbers as the report shows them:
    `[WARN] error_rate_1h: error_rate = 25.0% (threshold 10.0%) 2026-11-26 14:00-15:00 UTC, 200 requests`;
    a baseline rule's threshold is the limit of its score, a number without a unit."""
    state = _state(alert)
    sign = "±" if alert["metric"] in TWO_SIDED else ""
    shown = format_metric(str(alert["metric"]))
    reference = (
        f"baseline {shown(alert['baseline'])}, score limit {float(alert['threshold']):g}"
        if pd.notna(alert["baseline"])
        else f"threshold {sign}{shown(alert['threshold'])}"
    )
    return (
        f"[{state}] {alert['rule']}: {alert['metric']} = {shown(alert['value'])} ({reference}) "
        f"{window_text(_utc(alert['window_start']), _utc(alert['window_end']), '-', dated=True)}, "
        f"{int(alert['requests'])} requests"
    )


def _utc(value: object) -> pd.Timestamp:
    """A stored time (naive UTC or aware) as an aware UTC timestamp."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _iso(value: object) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()


def payload(alerts: pd.DataFrame, fmt: str) -> dict[str, object]:
    """The webhook body: every alert field (json) or one text message Slack shows (slack)."""
    if fmt == "slack":
        return {"text": "ChatPulse alerts\n" + "\n".join(describe(row) for _, row in alerts.iterrows())}
    return {
        "alerts": [
            {
                "day": row["day"],
                "rule": row["rule"],
                "metric": row["metric"],
                "severity": row["severity"],
                "state": "resolved" if pd.notna(row["resolved_at"]) else "firing",
                "window_start": _iso(row["window_start"]),
                "window_end": _iso(row["window_end"]),
                "value": float(row["value"]),
                "threshold": float(row["threshold"]),
                "baseline": None if pd.isna(row["baseline"]) else float(row["baseline"]),
                "requests": int(row["requests"]),
                "first_seen": _iso(row["first_seen"]),
                "last_seen": _iso(row["last_seen"]),
                "resolved_at": _iso(row["resolved_at"]),
            }
            for _, row in alerts.iterrows()
        ]
    }


def shown_url(url: str) -> str:
    """The URL as errors and logs show it: scheme, host and port, with any path or query replaced by `/***`.

    Webhook URLs carry their secret in the path (Slack, Discord) or the query (`?token=`);
    user info (`user:password@`) is dropped too.
    """
    parts = urlsplit(url)
    if not (parts.scheme and parts.hostname):
        return "<a URL without scheme or host>"
    host = parts.hostname
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: say nothing rather than echo it
        port = ""
    host = f"[{host}]" if ":" in host else host
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


class _Retry(Retry):
    """urllib3's Retry waiting backoff_factor * 2**(n-1) before retry n, or the server's Retry-After (capped).

    urllib3's own backoff skips the wait before the first retry; a webhook that just failed
    deserves a pause. The sleep is injectable so tests can see the waits without taking them.
    """

    def __init__(self, *args: Any, sleeper: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sleeper = sleeper

    def new(self, **kw: Any) -> _Retry:
        return super().new(**{"sleeper": self.sleeper, **kw})  # urllib3 copies the Retry after every attempt

    def get_backoff_time(self) -> float:
        return min(self.backoff_max, self.backoff_factor * 2 ** (len(self.history) - 1)) if self.history else 0.0

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = None
        if self.respect_retry_after_header and response is not None:
            with suppress(InvalidHeader):  # an unreadable Retry-After: fall back to the backoff
                wait = self.get_retry_after(response)
        wait = self.get_backoff_time() if wait is None else min(wait, RETRY_AFTER_MAX_S)
        if wait > 0:
            self.sleeper(wait)


class _Redact(logging.Filter):
    """Rewrites log records that quote `secret` (a webhook's path and query) to show `shown` instead."""

    def __init__(self, secret: str, shown: str) -> None:
        super().__init__()
        self.secret, self.shown = secret, shown

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, self.shown), ()
        return True


@contextmanager
def _redacted_logs(url: str) -> Iterator[None]:
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    if not secret.strip("/?"):
        yield
        return
    redact, loggers = _Redact(secret, "/***"), [logging.getLogger(name) for name in URLLIB3_LOGGERS]
    for logger in loggers:
        logger.addFilter(redact)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redact)


def _failure(exc: requests.RequestException, timeout_s: float) -> str:
    """Why a request got no answer, without the URL: requests and urllib3 quote its path and query."""
    if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.MissingSchema):
        return "not an http:// or https:// URL"
    if isinstance(exc, requests.exceptions.InvalidURL):
        return "not a valid URL"
    chain: list[BaseException] = [exc]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(inner)
    if any(isinstance(error, ReadTimeoutError) for error in chain):
        return f"no answer within {timeout_s:g} s"
    # urllib3 counts a refused connection as a connect timeout too; only a real timeout is reported as one.
    if any(isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError) for error in chain):
        return f"no connection within {timeout_s:g} s"
    # The innermost error is the socket's or TLS's own ("[Errno 111] Connection refused").
    return str(chain[-1]) if len(chain) > 1 and isinstance(chain[-1], OSError) else type(exc).__name__


def post_json(
    url: str,
    body: str,
    *,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST `body` as JSON; retry timeouts, connection errors and 408/425/429/5xx up to `retries` times.

    Before retry n it waits backoff_s * 2**(n-1) seconds (capped at 120), or the server's
    Retry-After (capped at RETRY_AFTER_MAX_S); each attempt may take `timeout_s` to connect
    and `timeout_s` to answer. A redirect is not followed (a POST redirected would arrive as a
    GET without its body) and counts as a failure. Returns the attempts it took; raises
    DeliveryError, naming the URL without its path or query, when no attempt got a 2xx.
    """
    retry = _Retry(
        sleeper=sleep,
        total=retries,
        redirect=False,
        allowed_methods=None,  # retry the POST too: a webhook receiving an alert twice beats losing it
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_s,
        raise_on_status=False,  # hand back the last answer, so the error can name its status
    )
    shown = shown_url(url)
    with requests.Session() as session, _redacted_logs(url):
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            response = session.post(
                url,
                data=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook {shown}: {_failure(exc, timeout_s)}") from None
        response.close()
    if 300 <= response.status_code < 400:
        raise DeliveryError(f"webhook {shown}: HTTP {response.status_code}, a redirect; redirects are not followed")
    if not response.ok:
        raise DeliveryError(f"webhook {shown}: HTTP {response.status_code}")
    return len(response.raw.retries.history) + 1 if response.raw.retries is not None else 1


def alert_mail(alerts: pd.DataFrame, settings: MailSettings) -> EmailMessage:
    """A plain-text mail listing the alerts, its subject naming their days: "ChatPulse 2026-11-26: 1 alert firing,
    0 resolved"."""
    message = EmailMessage()
    firing = int(alerts["resolved_at"].isna().sum())
    days = ", ".join(sorted({str(day) for day in alerts["day"]}))
    counted = f"{firing} alert{'' if firing == 1 else 's'} firing, {len(alerts) - firing} resolved"
    message["Subject"] = f"ChatPulse {days}: {counted}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Message-ID"] = message_id(settings, "alerts")
    message.set_content("\n".join(describe(row) for _, row in alerts.iterrows()) + "\n")
    return message


def failure_mail(job: str, run_id: str, partition: str | None, error: str, settings: MailSettings) -> EmailMessage:
    """A plain-text mail saying which run of which job failed, for which day, and why."""
    message = EmailMessage()
    message["Subject"] = f"ChatPulse: {job} failed" + (f" for {partition}" if partition else "")
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Message-ID"] = message_id(settings, f"run-failure-{run_id}")
    message.set_content(
        f"Run {run_id} of {job}" + (f" for {partition}" if partition else "") + f" failed:\n\n{error}\n"
    )
    return message


@dataclass(frozen=True)
class Delivery:
    """One notification to send: a channel (webhook or mail), the configuration key of its target
    (TARGETS: the URL or the server is read from the configuration when it is sent), and the exact body."""

    channel: str
    target: str
    payload: str
    attempts: int = 0
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Outcome:
    """What a notify run did: delivered now, and still pending after it."""

    delivered: int
    pending: int
    errors: tuple[str, ...]


def to_notify(alerts: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The alerts that opened or resolved in the run stamped `now`."""
    stamp = pd.Timestamp(now)
    return alerts[(alerts["first_seen"] == stamp) | (alerts["resolved_at"] == stamp)]


def deliveries(alerts: pd.DataFrame, settings: Settings) -> list[Delivery]:
    """The notifications the configured channels need for these alerts."""
    if alerts.empty:
        return []
    out = []
    if settings.alert_webhook is not None:
        hook = settings.alert_webhook
        out.append(Delivery("webhook", TARGETS["webhook"], json.dumps(payload(alerts, hook.format))))
    if settings.mail is not None:
        out.append(Delivery("mail", TARGETS["mail"], alert_mail(alerts, settings.mail).as_string()))
    return out


def _send(delivery: Delivery, settings: Settings, sleep: Callable[[float], None]) -> None:
    if delivery.channel == "webhook":
        hook = settings.alert_webhook
        if hook is None:
            raise DeliveryError("webhook: alert_webhook is not configured any more; the alert waits until it is")
        post_json(
            hook.url,
            delivery.payload,
            timeout_s=hook.timeout_s,
            retries=hook.retries,
            backoff_s=hook.backoff_s,
            sleep=sleep,
        )
        return
    if settings.mail is None:
        raise DeliveryError("mail: no mail settings configured")
    try:
        send(message_from_string(delivery.payload, policy=policy.default), settings.mail)
    except MailError as exc:
        raise DeliveryError(str(exc)) from exc


def deliver(
    warehouse: Warehouse,
    day: str,
    new: list[Delivery],
    settings: Settings,
    now: datetime,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Retry the pending deliveries, send the new ones, and store what still fails.

    Once a target fails, the rest of its deliveries wait for the next run untried: with a
    webhook down, each would otherwise spend its full timeout and backoff in this run.
    """
    table = TABLES["alert_deliveries"]
    pending = warehouse.read("alert_deliveries")
    # A row stored before targets were configuration keys holds the URL itself: it is sent to the configured
    # one and stored again with the key, so the URL leaves the table on the first run that reads it.
    queue = [
        Delivery(row.channel, TARGETS.get(row.channel, row.target), row.payload, int(row.attempts), row.delivery_id)
        for row in pending.itertuples()
    ] + new
    down: dict[tuple[str, str], str] = {}
    failed: list[dict[str, object]] = []
    for item in queue:
        target = (item.channel, item.target)
        tried = target not in down
        if tried:
            try:
                _send(item, settings, sleep)
                continue
            except DeliveryError as exc:
                down[target] = str(exc)
        failed.append(
            {
                "day": day,
                "delivery_id": item.delivery_id,
                "channel": item.channel,
                "target": item.target,
                "payload": item.payload,
                "attempts": item.attempts + tried,
                "last_error": down[target],
                "failed_at": now,
            }
        )
    # Only the rows read here are replaced: a concurrent run's pending deliveries stay (at least once, never lost).
    with warehouse.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.delivery_id.in_(pending["delivery_id"].tolist())))
        if failed:
            conn.execute(table.insert(), failed)
    return Outcome(delivered=len(queue) - len(failed), pending=len(failed), errors=tuple(down.values()))
