"""The day's alerts as the report opens with them, the e-mail's subject counts them and its text part lists them.

Only the rule's own words reach them (rule name, severity, window, value against threshold or baseline):
alerts are about numbers, never about a user's content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from chatpulse.alerting.spend import PASSED_ONCE, TWO_SIDED
from chatpulse.days import window_text
from chatpulse.formatting import format_metric, missing
from chatpulse.reports.labels import display_label

SEVERITIES = ("error", "warn")  # worst first: the order rows of one status are listed in
PASSED_NOTE = (
    "A budget alert fires once, on the day its spend or forecast passes the threshold, and closes when that "
    'day ends: "passed" does not mean the spend fell back under the budget (see Budgets).'
)


def count_text(total: int, still_open: int) -> str:
    """How the subject, the page and the index count a day's alerts: "2 alerts, 1 open"; "" for none."""
    if not total:
        return ""
    return f"{total} alert{'' if total == 1 else 's'}, {still_open} open"


def day_marks(alerts: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    """Per day of the ``alerts`` table rows (any span): its ``count`` ("2 alerts, 1 open") and its worst
    ``severity``, for the index to mark the days that had alerts. Days without alerts are absent."""
    if alerts is None or alerts.empty:
        return {}
    return {
        str(day): {
            "count": count_text(len(rows), int(rows["resolved_at"].isna().sum())),
            "severity": next((name for name in SEVERITIES if (rows["severity"] == name).any()), "warn"),
        }
        for day, rows in alerts.groupby("day", sort=False)
    }


@dataclass(frozen=True)
class AlertSummary:
    """The alerts of one day, open ones first (then by severity and start), each a row of display strings:
    ``rule``, ``severity`` (``error`` or ``warn``), ``window`` (local clock), ``value``, ``against``
    (the threshold, or the baseline and the score's limit) and ``status``: ``open``, ``resolved``, or
    ``passed`` for a budget alert whose day is over (PASSED_NOTE: its spend has not fallen back)."""

    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many alerts the day had, open or resolved."""
        return len(self.rows)

    @property
    def open(self) -> int:
        """How many of them were still open when the page was drawn."""
        return sum(row["status"] == "open" for row in self.rows)

    @property
    def note(self) -> str:
        """PASSED_NOTE when a row is ``passed``, else empty: what a passed budget alert means."""
        return PASSED_NOTE if any(row["status"] == "passed" for row in self.rows) else ""

    @property
    def count_text(self) -> str:
        """ "2 alerts, 1 open"; empty for a day without alerts."""
        return count_text(self.total, self.open)

    def text_lines(self) -> list[str]:
        """One line per alert for the e-mail's plain-text part, e.g.
        ``open      error  error_rate_5m  14:10–14:15 UTC  26.1% vs threshold 20.0%``."""
        return [
            f"{row['status']:<9} {row['severity']:<5}  {row['rule']}  {row['window']}  "
            f"{row['value']} vs {row['against']}"
            for row in self.rows
        ]

    def as_json(self) -> list[dict[str, str]]:
        """The rows, for keeping beside the page (reports.render's mail body) and reading back with ``of_json``."""
        return [dict(row) for row in self.rows]

    @classmethod
    def of_json(cls, rows: list[dict[str, str]]) -> AlertSummary:
        """The summary ``as_json`` kept."""
        return cls([dict(row) for row in rows])


def _against(row: dict[str, Any]) -> str:
    fmt = format_metric(str(row["metric"]))
    if missing(row.get("baseline")):
        return f"threshold {'±' if row['metric'] in TWO_SIDED else ''}{fmt(row['threshold'])}"
    return f"baseline {fmt(row['baseline'])} (score limit {float(row['threshold']):g})"


def alert_summary(alerts: pd.DataFrame | None, tz: str) -> AlertSummary:
    """The ``alerts`` table rows of a day as an AlertSummary; ``tz`` is the report's time zone, the one its hour
    charts are in (windows are stored in UTC). An empty or missing table gives an empty summary."""
    if alerts is None or alerts.empty:
        return AlertSummary()
    ordered = alerts.assign(
        is_open=alerts["resolved_at"].isna(),
        rank=alerts["severity"].map({name: rank for rank, name in enumerate(SEVERITIES)}).fillna(len(SEVERITIES)),
        start=pd.to_datetime(alerts["window_start"], utc=True).dt.tz_convert(tz),
        end=pd.to_datetime(alerts["window_end"], utc=True).dt.tz_convert(tz),
    ).sort_values(["is_open", "rank", "start"], ascending=[False, True, True], kind="stable")
    return AlertSummary(
        [
            {
                "rule": display_label(row["rule"]),
                "severity": str(row["severity"]),
                "window": window_text(row["start"], row["end"]),
                "value": format_metric(str(row["metric"]))(row["value"]),
                "against": _against(row),
                "status": "open" if row["is_open"] else "passed" if row["metric"] in PASSED_ONCE else "resolved",
            }
            for row in ordered.to_dict("records")
        ]
    )
