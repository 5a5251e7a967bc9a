"""Near real time: today is a partition, so a file landing now runs today and its alerts go out at once."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import DagsterInstance

from chatpulse.config import load_settings
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

from fixtures import Inbox, sensor_tick, write_jsonl


def _zone_well_inside_its_day(now: datetime) -> str:
    """A time zone where `now` is more than an hour from midnight, so the test's window is today's."""
    for zone in ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata"):
        if 1 <= now.astimezone(ZoneInfo(zone)).hour <= 22:
            return zone
    raise AssertionError("unreachable: these zones are more than two hours apart")


def _requests(window: pd.Timestamp) -> list[dict]:
    """Quiet traffic half an hour earlier, then 30 requests in `window` (5 minutes), 12 of them failing."""
    quiet = [(window - pd.Timedelta(minutes=30) + pd.Timedelta(seconds=20 * i), 200) for i in range(10)]
    burst = [(window + pd.Timedelta(seconds=10 * i), 500 if i % 5 < 2 else 200) for i in range(30)]
    return [
        {"request_id": f"r{i}", "timestamp": ts.isoformat(), "model": "gpt-4o", "status_code": status,
         "latency_ms": 800, "user_id": "u1"}
        for i, (ts, status) in enumerate(quiet + burst)
    ]  # fmt: skip


@pytest.mark.pipeline
def test_a_file_landing_now_runs_today_alerts_at_once_and_holds_the_report_mail(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    now = datetime.now(UTC)
    zone = _zone_well_inside_its_day(now)
    today = now.astimezone(ZoneInfo(zone)).date().isoformat()
    window = pd.Timestamp(now).floor("5min") - pd.Timedelta(minutes=5)  # the newest complete 5 minutes
    inbox, port = smtp
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: .\ntimezone: {zone}\nstart_date: {(now - timedelta(days=3)).date()}\n"
        f"mail: {{host: 127.0.0.1, port: {port}, security: none, sender: cp@x.org, recipients: [ops@x.org]}}\n"
    )
    defs = build_definitions(load_settings(config, env={}), str(config))
    write_jsonl(tmp_path / "landing" / "requests-now.jsonl", _requests(window))
    instance = DagsterInstance.ephemeral()
    requested = sensor_tick(defs, instance, None).run_requests
    assert [request.partition_key for request in requested] == [today]

    result = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=today, instance=instance)
    assert result.success
    alerts = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").read("alerts", today)
    assert [(row.rule, row.window_start, row.requests) for row in alerts.itertuples()] == [
        ("error_rate_5m", window, 30)
    ]
    assert alerts.iloc[0]["value"] == 12 / 30 and pd.isna(alerts.iloc[0]["resolved_at"])  # still going on
    subjects = [message["Subject"] for message in inbox.messages]
    assert subjects == [f"ChatPulse {today}: 1 alert firing, 0 resolved"]  # the alert, not the day's report
    mail = result.asset_materializations_for_node("report_email")[0].metadata
    assert (mail["sent"].value, mail["why"].value) == (
        False,
        "the page was drawn before the day ended; the first run after it redraws and mails it",
    )
    page = (tmp_path / "reports" / f"{today}.html").read_text(encoding="utf-8")
    assert "Day in progress: numbers up to" in page
