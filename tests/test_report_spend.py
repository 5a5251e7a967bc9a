"""The report's spend sections: who spends (labels untrusted, user ids as pseudonyms, change against a week
before), budgets, and the bill against the log; each only when configured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chatpulse.pseudonyms import Pseudonyms, UserDisplay
from chatpulse.reports.render import render_report
from chatpulse.reports.spend import VALUES_SHOWN, spend_sections
from chatpulse.spendconfig import Dimension

from fixtures import REPORT_DAY, report_daily, report_hourly, report_quality

DAY = REPORT_DAY.isoformat()
KEY = "k" * 32
HOSTILE = "<script>alert(1)</script>\u202etxt" + "x" * 80
DIMENSIONS = (Dimension(name="team"), Dimension(name="user_id", column="user_id"))


def dimension_rows(day: str, spend: dict[tuple[str, str | None, str], float]) -> pd.DataFrame:
    """dimension_daily rows of `day`: (dimension, value, bucket) -> spend, ranked in the given order."""
    rows = []
    for rank, ((dimension, value, bucket), usd) in enumerate(spend.items(), start=1):
        rows.append(
            {"day": day, "dimension": dimension, "value": value, "bucket": bucket, "spend_usd": usd,
             "rank": rank if bucket == "value" else None, "folded_values": 7 if bucket == "other" else 1,
             "requests": 10, "error_rate": 0.1, "total_tokens": 1000, "latency_p95_ms": 1500.0, "users": 2}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_who_spends_shows_the_top_values_their_change_and_the_rest() -> None:
    today = dimension_rows(
        DAY,
        {
            ("all", None, "all"): 99.0,
            **{("team", f"team-{n}", "value"): 10.0 - n for n in range(VALUES_SHOWN + 2)},
            ("team", None, "unset"): 1.0,
            ("team", None, "other"): 2.0,
            ("user_id", "alice@example.com", "value"): 3.0,
            ("user_id", HOSTILE, "value"): 2.0,
        },
    )
    week_ago = dimension_rows("2026-11-13", {("team", "team-0", "value"): 5.0, ("team", None, "unset"): 4.0})
    display = UserDisplay(Pseudonyms(KEY))
    tables = {"dimension_daily": today, "dimension_daily_week_ago": week_ago}
    (section,) = spend_sections(tables, REPORT_DAY, DIMENSIONS, False, False, display)
    assert section.title == "Who spends"
    assert [c.header for c in section.columns][3] == "vs Fri 13 Nov"
    team = [row for row in section.rows if row["dimension"] == "team"]
    assert [row["shown"] for row in team] == [*(f"team-{n}" for n in range(VALUES_SHOWN)), "(not set)",
                                              "other (7 values)"]  # fmt: skip
    assert [row["change"] for row in team[:2]] == ["+100%", "new"]
    assert team[-2]["change"] == "-75%" and team[-1]["change"] == "—"  # other folds different values each day
    users = [row["shown"] for row in section.rows if row["dimension"] == "user_id"]
    assert users[0] == Pseudonyms(KEY).user("alice@example.com")  # never the e-mail address


def test_labels_in_the_spend_sections_are_escaped_and_shortened(tmp_path: Path) -> None:
    today = dimension_rows(DAY, {("all", None, "all"): 1.0, ("team", HOSTILE, "value"): 1.0})
    sections = spend_sections({"dimension_daily": today}, REPORT_DAY, DIMENSIONS[:1], False, False)
    page = render_report(
        REPORT_DAY, report_daily(), report_hourly([1] * 24, [0] * 24), pd.Series([1.0]), report_quality({}), sections,
        tmp_path,
    ).read_text(encoding="utf-8")  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\u202e" not in page and "x" * 80 not in page  # bidi override made visible, the label cut


def test_budgets_and_the_bill_sections() -> None:
    status = pd.DataFrame(
        [{"day": DAY, "budget": "team=search month", "period": "month", "budget_usd": 100.0, "spend_usd": 42.0,
          "used_share": 0.42, "forecast_usd": 130.0, "forecast_share": 1.3, "days_run": 20, "days_in_period": 30},
         {"day": DAY, "budget": "all day", "period": "day", "budget_usd": 50.0, "spend_usd": 10.0,
          "used_share": 0.2, "forecast_usd": None, "forecast_share": None, "days_run": 1, "days_in_period": 1}]
    )  # fmt: skip
    reconciliation = pd.DataFrame(
        [{"provider": "openai", "scope": "all", "value": None, "billed_usd": 10.0, "logged_usd": 9.4,
          "logged_gap_usd": -0.6, "logged_gap_share": -0.06, "estimated_usd": 10.0 + 1e-13,
          "estimated_gap_usd": 1e-13, "estimated_gap_share": -1e-14, "non_usd_lines": 2, "non_usd_currencies": "EUR"},
         {"provider": "openai", "scope": "project", "value": "proj_a", "billed_usd": 0.0, "logged_usd": 1.0,
          "logged_gap_usd": 1.0, "logged_gap_share": None, "estimated_usd": None, "estimated_gap_usd": None,
          "estimated_gap_share": None, "non_usd_lines": 0, "non_usd_currencies": None}]
    )  # fmt: skip
    tables = {"budget_status": status, "cost_reconciliation": reconciliation}
    budgets, bill = spend_sections(tables, REPORT_DAY, (), True, True)
    shown = [
        (r["budget"], r["period_shown"], r["spend_usd"], r["used_share"], r["forecast_share"]) for r in budgets.rows
    ]
    assert shown == [
        ("team=search month", "month (20 of 30 days run)", "$42.00", "42.0%", "130.0%"),
        ("all day", "day", "$10.00", "20.0%", "—"),
    ]  # fmt: skip
    assert [(r["shown"], r["logged_gap"], r["estimated_gap"]) for r in bill.rows] == [
        ("all", "-$0.60 (-6.0%)", "$0.00 (0.0%)"),
        ("proj_a", "+$1.00", "—"),
    ]
    assert "2 \u2068openai\u2069 bill lines in \u2068EUR\u2069 are not converted" in bill.note
    empty = spend_sections({}, REPORT_DAY, (), True, True)
    assert [s.rows for s in empty] == [[], []] and empty[1].empty == "No provider bill covers this day."
    assert spend_sections(tables, REPORT_DAY, (), False, False) == []  # nothing configured, nothing shown
