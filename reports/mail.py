"""E-mail the daily report: one multipart message, charts inline, sent once per day.

Mail clients block data: URIs and external images, and Gmail clips HTML over about 100 KB, so the
message carries the body render_report drew beside the page (reports.render.read_mail_body: the same
template, every chart a cid: link) with the chart PNGs as inline CID parts, its CSS inlined (minified,
with its variables resolved, since Gmail drops them), and a plain-text part with the headline numbers
for clients without HTML. The subject counts the day's alerts and the text part lists them, as the page
that opens with them. The SMTP sending itself is chatpulse.mail's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import css_inline
import pandas as pd

from chatpulse.config import MailSettings
from chatpulse.formatting import format_int, format_ms, format_pct, format_usd, missing
from chatpulse.mail import MailError, message_id, send
from chatpulse.reports.alerts import AlertSummary
from chatpulse.reports.render import cost_column, is_complete, read_mail_body
from chatpulse.warehouse import Warehouse

MAX_HTML_BYTES = 100_000
_INLINER = css_inline.CSSInliner(resolve_css_variables=True, minify_css=True)


class ReportUnfit(MailError):
    """The report itself cannot be mailed (missing, too big): trying again cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


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
            cost=_cost(daily),
        )


def _cost(daily: pd.Series) -> str:
    """The report's Cost card's number (render.cost_column), an estimate marked "(estimated)" and a spend that
    is partly estimated "(partly estimated)"."""
    column = cost_column(daily)
    mark = {"cost_estimate_usd": " (estimated)", "spend_usd": " (partly estimated)"}.get(column, "")
    value = daily.get(column)
    return format_usd(value) + (mark if not missing(value) else "")


def subject(day: date, headline: Headline, alerts: AlertSummary) -> str:
    """The subject line: the day, its alert count when it had any (read first on a phone), the headline numbers.

    e.g. ``ChatPulse 2026-11-26: 5 alerts, 0 open · 2,998 requests, 3.9% errors, p95 10.7 s``.
    """
    counted = f"{alerts.count_text} · " if alerts.total else ""
    return (
        f"ChatPulse {day.isoformat()}: {counted}{headline.requests} request{'' if headline.requests == '1' else 's'}, "
        f"{headline.error_rate} errors, p95 {headline.latency_p95}"
    )


def plain_text(day: date, headline: Headline, alerts: AlertSummary) -> str:
    """The text/plain alternative: the day's alerts (rule, severity, window, value against its threshold), then
    the headline numbers; never session content."""
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
    if alerts.total:
        lines += [f"Alerts: {alerts.count_text}", *alerts.text_lines(), *([alerts.note] if alerts.note else []), ""]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    lines += ["", "The HTML part of this message has the charts and the data-quality summary."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class InlinedReport:
    """A report page made ready for mail: its HTML with the CSS inlined, each chart's PNG bytes by CID (in page
    order) and the alerts the page shows."""

    html: str
    images: dict[str, bytes]
    alerts: AlertSummary


def inline_report(report: Path) -> InlinedReport:
    """The e-mail body of the report page ``report`` with its CSS inlined, its charts' bytes and its alerts.

    A CID names the chart and the page, e.g. ``requests_per_hour.2026-11-20@chatpulse``; the HTML links
    each chart once, in page order. Raises ReportUnfit when the page has no e-mail body beside it, a
    chart it links is gone (the folder was moved or cut short) or the body was kept by an older version.
    """
    try:
        body = read_mail_body(report)
        images = {cid: png.read_bytes() for cid, png in body.images.items()}
    except FileNotFoundError as exc:
        raise ReportUnfit(
            f"{report} cannot be mailed: {exc.filename} is missing; run the pipeline for that day again"
        ) from exc
    except ValueError as exc:
        raise ReportUnfit(f"{report} cannot be mailed: {exc}; run the pipeline for that day again") from exc
    return InlinedReport(_INLINER.inline(body.html), images, body.alerts)


def build_message(day: date, daily: pd.Series, report: Path, settings: MailSettings) -> EmailMessage:
    """multipart/alternative: text, then HTML related to its inline charts; only of a page of the whole day."""
    inlined = inline_report(report)
    html = inlined.html
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
    message["Subject"] = subject(day, headline, inlined.alerts)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Message-ID"] = message_id(settings, f"report-{day.isoformat()}")
    message.set_content(plain_text(day, headline, inlined.alerts))
    message.add_alternative(html, subtype="html")
    html_part = message.get_payload()[1]
    for cid, data in inlined.images.items():
        html_part.add_related(
            data, "image", "png", cid=f"<{cid}>", filename=cid.split(".")[0] + ".png", disposition="inline"
        )
    return message


def deliver(
    day: date, settings: MailSettings, warehouse: Warehouse, report: Path, *, force: bool = False
) -> str | None:
    """Mail the day's report once; returns the Message-ID, or None when it was already sent.

    Every send is recorded in `report_sends`, so a rerun of the day stays quiet unless forced. A page that is
    missing, too big or of a day in progress raises ReportUnfit; a failed send, a MailError (`permanent` when
    retrying cannot help).
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
