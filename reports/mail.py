"""E-mail the daily report: one multipart message, charts inline, sent once per day.

Mail clients block data: URIs and external images, and Gmail clips HTML over
about 100 KB, so the charts the page embeds as data: URIs travel as CID attachments,
its CSS is inlined (minified, with its variables resolved, since Gmail drops them) and
the plain-text part carries the headline numbers for clients without HTML.
"""

from __future__ import annotations

import base64
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import css_inline
import pandas as pd

from chatpulse.config import MailSettings
from chatpulse.reports.render import format_int, format_ms, format_pct, format_usd, is_complete
from chatpulse.warehouse import Warehouse

MAX_HTML_BYTES = 100_000
_INLINER = css_inline.CSSInliner(resolve_css_variables=True, minify_css=True)
_EMBEDDED = re.compile(r'(?P<before><img\s[^>]*?)(?<=\s)src="data:image/png;base64,(?P<data>[^"]*)"(?P<after>[^>]*>)')
_CHART_NAME = re.compile(r'(?<=\s)data-chart="(?P<name>[\w-]+)"')


class MailError(RuntimeError):
    """The report could not be mailed; the message says what is missing or refused."""


class ReportUnfit(MailError):
    """The report itself cannot be mailed (missing, too big): unlike a refused send, trying again cannot help."""


class ReportInProgress(ReportUnfit):
    """The page was drawn before its day ended; a run of the day after it redraws the page whole."""


@dataclass(frozen=True)
class Headline:
    """The numbers a subject line and the plain-text part quote."""

    requests: str
    users: str
    sessions: str
    error_rate: str
    latency_p95: str
    tokens: str
    cost: str

    @classmethod
    def of(cls, daily: pd.Series) -> Headline:
        return cls(
            requests=format_int(daily.get("requests")),
            users=format_int(daily.get("users")),
            sessions=format_int(daily.get("sessions")),
            error_rate=format_pct(daily.get("error_rate")),
            latency_p95=format_ms(daily.get("latency_p95_ms")),
            tokens=format_int(daily.get("total_tokens")),
            cost=format_usd(daily.get("cost_usd")),
        )


def subject(day: date, headline: Headline) -> str:
    return (
        f"ChatPulse {day.isoformat()}: {headline.requests} requests, "
        f"{headline.error_rate} errors, p95 {headline.latency_p95}"
    )


def plain_text(day: date, headline: Headline) -> str:
    """The text/plain alternative: headline numbers only, never session content."""
    rows = [
        ("Requests", headline.requests),
        ("Active users", headline.users),
        ("Sessions", headline.sessions),
        ("Error rate", headline.error_rate),
        ("Latency p95", headline.latency_p95),
        ("Tokens", headline.tokens),
        ("Cost", headline.cost),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"ChatPulse daily report for {day.isoformat()}", ""]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    lines += ["", "The HTML part of this message has the charts and the data-quality summary."]
    return "\n".join(lines) + "\n"


def inline_report(report: Path) -> tuple[str, dict[str, bytes]]:
    """The report's HTML with CSS inlined and charts as cid: links, plus the chart bytes by CID.

    A CID names the chart (its ``data-chart``) and the page, e.g. ``requests_per_hour.2026-11-20@chatpulse``,
    numbered when a name repeats; identical images share one. The data: URIs are swapped before the CSS is
    inlined, so css_inline parses tens of KB instead of every chart in base64.
    """
    images: dict[str, bytes] = {}
    cid_of: dict[str, str] = {}  # base64 payload -> its CID

    def to_cid(match: re.Match[str]) -> str:
        payload = match["data"]
        if payload not in cid_of:
            named = _CHART_NAME.search(match["before"] + match["after"])
            name, number = named["name"] if named else "chart", 1
            cid = f"{name}.{report.stem}@chatpulse"
            while cid in images:
                number += 1
                cid = f"{name}-{number}.{report.stem}@chatpulse"
            images[cid] = base64.b64decode(payload, validate=True)
            cid_of[payload] = cid
        return f'{match["before"]}src="cid:{cid_of[payload]}"{match["after"]}'

    html = _INLINER.inline(_EMBEDDED.sub(to_cid, report.read_text(encoding="utf-8")))
    return html, images


def build_message(day: date, daily: pd.Series, report: Path, settings: MailSettings) -> EmailMessage:
    """multipart/alternative: text, then HTML related to its inline charts; only of a page of the whole day."""
    html, images = inline_report(report)
    if not is_complete(html):
        raise ReportInProgress(
            f"{report} was drawn before {day.isoformat()} ended: run the pipeline for that day again"
        )
    size = len(html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        raise ReportUnfit(
            f"{report}: HTML body is {size:,} bytes, over the {MAX_HTML_BYTES:,} that mail clients show whole"
        )
    headline = Headline.of(daily)
    message = EmailMessage()
    message["Subject"] = subject(day, headline)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Message-ID"] = make_msgid(idstring=f"report-{day.isoformat()}", domain="chatpulse")
    message.set_content(plain_text(day, headline))
    message.add_alternative(html, subtype="html")
    html_part = message.get_payload()[1]
    for cid, data in images.items():
        html_part.add_related(
            data, "image", "png", cid=f"<{cid}>", filename=cid.split(".")[0] + ".png", disposition="inline"
        )
    return message


def send(message: EmailMessage, settings: MailSettings) -> None:
    """Deliver over SMTP with SSL, STARTTLS or plain, logging in when a user is set."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    try:
        if settings.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"cannot send mail through {settings.host}:{settings.port}: {exc}") from exc


def deliver(
    day: date, settings: MailSettings, warehouse: Warehouse, report: Path, *, force: bool = False
) -> str | None:
    """Mail the day's report once; returns the Message-ID, or None when it was already sent.

    Every send is recorded in `report_sends`, so a rerun of the day stays quiet unless forced. A page that is
    missing, too big or of a day in progress raises ReportUnfit; a failed send, a plain MailError worth retrying.
    """
    stamp = day.isoformat()
    if not force and not warehouse.read("report_sends", stamp).empty:
        return None
    if not report.is_file():
        raise ReportUnfit(f"no report for {stamp} at {report}: run the pipeline for that day first")
    daily = warehouse.read("daily_metrics", stamp)
    message = build_message(day, daily.iloc[0] if len(daily) else pd.Series(dtype=object), report, settings)
    send(message, settings)
    warehouse.append(
        "report_sends",
        pd.DataFrame(
            [
                {
                    "day": stamp,
                    "message_id": message["Message-ID"],
                    "sent_at": datetime.now(UTC),
                    "recipients": message["To"],
                    "subject": message["Subject"],
                }
            ]
        ),
    )
    return str(message["Message-ID"])
