"""The run-failure sensor mails a failed run's job, day and error through a real SMTP server (aiosmtpd)."""

import email
import socket
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from dagster import DagsterInstance, build_run_status_sensor_context, job, op

from chatpulse.config import settings_from_mapping
from pipelines.sensors import FAILURE_SENSOR, failure_mail_sensor


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@op
def explode() -> None:
    raise RuntimeError("landing folder is gone")


@job
def broken() -> None:
    explode()


def test_a_failed_run_is_mailed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sensor(context)
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    message = email.message_from_bytes(inbox.messages[0].content, policy=default)
    assert message["Subject"] == "ChatPulse: broken failed for 2026-11-26"
    body = message.get_content().replace("\r\n", "\n")
    assert body == (
        f"Run {result.run_id} of broken for 2026-11-26 failed:\n\n"
        "Execution of run for \"broken\" failed. Steps failed: ['explode'].\n"
    )
