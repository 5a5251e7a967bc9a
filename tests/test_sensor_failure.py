"""The run-failure sensor mails a failed run's job, day and error through a real SMTP server (aiosmtpd)."""

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, job, op

from chatpulse.config import settings_from_mapping
from chatpulse.pipelines.sensors import FAILURE_SENSOR, failure_mail_sensor

from fixtures import Inbox


@op
def explode() -> None:
    raise RuntimeError("landing folder is gone")


@job
def broken() -> None:
    explode()


@pytest.mark.pipeline
def test_a_failed_run_is_mailed(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mail = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "cp@x.org", "recipients": ["o@x.org"]}
    sensor = failure_mail_sensor(settings_from_mapping({"mail": mail}, tmp_path, {}))
    assert sensor.name == FAILURE_SENSOR
    instance = DagsterInstance.ephemeral()
    result = broken.execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-11-26"}
    )
    assert not result.success
    context = build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sensor(context)
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "ChatPulse: broken failed for 2026-11-26"
    assert re.fullmatch(rf"<[^@<>\s]*run-failure-{result.run_id}[^@<>\s]*@x\.org>", message["Message-ID"])
    sent = parsedate_to_datetime(message["Date"])
    assert sent.tzinfo is not None and abs((datetime.now(UTC) - sent).total_seconds()) < 60
    body = message.get_content().replace("\r\n", "\n")
    assert body == (  # the step's own error, not only "Steps failed: ['explode']"
        f"Run {result.run_id} of broken for 2026-11-26 failed:\n\nexplode: RuntimeError: landing folder is gone\n"
    )
