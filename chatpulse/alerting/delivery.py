"""Deliver alert notifications by webhook and e-mail, and never lose one silently.

A webhook POST is retried with exponential backoff; what still fails after the retries
(or a mail the SMTP server refuses) goes into the `alert_deliveries` table with its error
and is tried again at the start of the next run, before anything new is sent.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_string, policy
from email.message import EmailMessage

import pandas as pd

from chatpulse.config import MailSettings, Settings, WebhookSettings
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryError(RuntimeError):
    """A notification could not be delivered; the message says where and why."""


def _state(alert: pd.Series) -> str:
    """FIRING severity, RESOLVED, or severity "over" for a breach first seen after it ended (a backfill)."""
    severity = str(alert["severity"]).upper()
    if pd.isna(alert["resolved_at"]):
        return severity
    return f"{severity}, OVER" if alert["resolved_at"] == alert["first_seen"] else "RESOLVED"


def describe(alert: pd.Series) -> str:
    state = _state(alert)
    reference = (
        f"baseline {alert['baseline']:.4g}, threshold {alert['threshold']:.4g}"
        if pd.notna(alert["baseline"])
        else f"threshold {alert['threshold']:.4g}"
    )
    return (
        f"[{state}] {alert['rule']}: {alert['metric']} = {alert['value']:.4g} ({reference}) "
        f"{pd.Timestamp(alert['window_start']):%Y-%m-%d %H:%M}-{pd.Timestamp(alert['window_end']):%H:%M} UTC, "
        f"{int(alert['requests'])} requests"
    )


def _iso(value: object) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()


def payload(alerts: pd.DataFrame, fmt: str) -> dict[str, object]:
    """The webhook body: every alert field (json) or one text message Slack shows (slack)."""
    if fmt == "slack":
        return {"text": "ChatPulse alerts\n" + "\n".join(describe(row) for _, row in alerts.iterrows())}
    return {
        "alerts": [
            {
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
                "resolved_at": _iso(row["resolved_at"]),
            }
            for _, row in alerts.iterrows()
        ]
    }


def post_json(
    url: str,
    body: str,
    *,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST `body` as JSON; retry timeouts, connection errors and 408/429/5xx, waiting backoff_s * 2**n.

    Returns the attempts it took; raises DeliveryError when every attempt failed.
    """
    error = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
            return attempt + 1
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if exc.code not in RETRY_STATUSES:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
    raise DeliveryError(f"webhook {url}: {error}")


def alert_mail(alerts: pd.DataFrame, settings: MailSettings) -> EmailMessage:
    """A plain-text mail listing the alerts."""
    message = EmailMessage()
    firing = int(alerts["resolved_at"].isna().sum())
    message["Subject"] = f"ChatPulse: {firing} alert(s) firing, {len(alerts) - firing} resolved"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content("\n".join(describe(row) for _, row in alerts.iterrows()) + "\n")
    return message


def failure_mail(job: str, run_id: str, partition: str | None, error: str, settings: MailSettings) -> EmailMessage:
    """A plain-text mail saying which run of which job failed, for which day, and why."""
    message = EmailMessage()
    message["Subject"] = f"ChatPulse: {job} failed" + (f" for {partition}" if partition else "")
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content(
        f"Run {run_id} of {job}" + (f" for {partition}" if partition else "") + f" failed:\n\n{error}\n"
    )
    return message


@dataclass(frozen=True)
class Delivery:
    """One notification to send: a channel (webhook or mail), where to, and the exact body."""

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
        out.append(Delivery("webhook", hook.url, json.dumps(payload(alerts, hook.format))))
    if settings.mail is not None:
        out.append(Delivery("mail", ", ".join(settings.mail.recipients), alert_mail(alerts, settings.mail).as_string()))
    return out


def _send(delivery: Delivery, settings: Settings, sleep: Callable[[float], None]) -> None:
    if delivery.channel == "webhook":
        hook = settings.alert_webhook or WebhookSettings(url=delivery.target)
        post_json(
            delivery.target,
            delivery.payload,
            timeout_s=hook.timeout_s,
            retries=hook.retries,
            backoff_s=hook.backoff_s,
            sleep=sleep,
        )
        return
    if settings.mail is None:
        raise DeliveryError("mail: no mail settings configured")
    from chatpulse.reports.mail import MailError, send  # reports pulls in the rendering stack; only load it to mail

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
    queue = [
        Delivery(row.channel, row.target, row.payload, int(row.attempts), row.delivery_id)
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
