"""The report by e-mail, received by a real SMTP server (aiosmtpd) on loopback."""

import email
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from chatpulse.config import MailSettings
from chatpulse.warehouse import Warehouse, Write
from reports.mail import MAX_HTML_BYTES, deliver
from reports.render import render_report
from tests.test_report import DAY, _daily, _hourly, _quality, _scenarios

USER, PASSWORD = "reporter", "s3cret"


class Inbox:
    """An aiosmtpd handler that keeps what it receives, and who logged in."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"

    def authenticate(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=(data.login.decode(), data.password.decode()) == (USER, PASSWORD))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(params=["none", "starttls", "ssl"])
def server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, MailSettings]]:
    """An SMTP server in each of the three security modes; TLS ones require a login."""
    inbox = Inbox()
    port = _free_port()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    options: dict[str, object] = {"authenticator": inbox.authenticate}
    if request.param == "starttls":
        options.update(tls_context=tls, require_starttls=True)
    elif request.param == "ssl":
        options.update(ssl_context=tls, auth_require_tls=False)  # aiosmtpd sees implicit TLS as plain
    else:
        options.update(auth_require_tls=False)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    settings = MailSettings(
        host="127.0.0.1",
        port=port,
        security=request.param,
        username=USER,
        password=PASSWORD,
        sender="ChatPulse <reports@example.com>",
        recipients=("ops@example.com", "lead@example.com"),
        ca_file=str(certificate[0]),
        timeout_s=10,
    )
    try:
        yield inbox, settings
    finally:
        controller.stop()


@pytest.fixture
def day_report(tmp_path: Path) -> tuple[Path, Warehouse]:
    requests = [0] * 7 + [40, 120, 180, 160, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1, 0]
    report = render_report(
        DAY,
        _daily(),
        _hourly(requests, [r // 20 for r in requests]),
        pd.Series([120.0, 900.0, 4000.0]),
        _quality({"latency_ms: not a number": 2}),
        _scenarios(["coding", "writing"]),
        tmp_path / "reports",
    )
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    warehouse.replace_day(DAY.isoformat(), Write("daily_metrics", _daily()))
    return report, warehouse


def test_the_report_arrives_once_with_its_charts_inline(
    server: tuple[Inbox, MailSettings], day_report: tuple[Path, Warehouse]
) -> None:
    inbox, settings = server
    report, warehouse = day_report
    message_id = deliver(DAY, settings, warehouse, report)

    assert len(inbox.messages) == 1
    assert inbox.logins == [(USER, PASSWORD)]
    message = inbox.messages[0]
    assert message["Message-ID"].strip() == message_id
    assert message["Subject"] == "ChatPulse 2026-11-20: 1,234 requests, 2.5% errors, p95 1.8 s"
    assert message["To"] == "ops@example.com, lead@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain"
    assert "Requests      1,234" in text.get_content() and "Error rate    2.5%" in text.get_content()
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    html = html_part.get_content()
    assert len(html.encode()) < MAX_HTML_BYTES
    cids = re.findall(r'src="cid:([^"]+)"', html)
    attached = {part["Content-ID"].strip().strip("<>"): part for part in images}
    assert len(cids) == 3 and set(cids) == set(attached)
    assert all(part.get_content_type() == "image/png" and part.get_content()[:4] == b"\x89PNG" for part in images)
    assert "<style" not in html and 'style="' in html  # CSS inlined for mail clients

    assert deliver(DAY, settings, warehouse, report) is None  # a rerun of the day sends nothing new
    assert len(inbox.messages) == 1
    assert deliver(DAY, settings, warehouse, report, force=True) not in (None, message_id)
    assert len(inbox.messages) == 2
    assert len(warehouse.read("report_sends", DAY.isoformat())) == 2


def test_a_refused_login_is_reported_and_not_recorded(
    server: tuple[Inbox, MailSettings], day_report: tuple[Path, Warehouse]
) -> None:
    inbox, settings = server
    report, warehouse = day_report
    with pytest.raises(Exception, match=f"cannot send mail through 127.0.0.1:{settings.port}"):
        deliver(DAY, replace(settings, password="wrong", timeout_s=2), warehouse, report)
    assert inbox.messages == [] and warehouse.read("report_sends").empty


def test_the_pipeline_mails_each_day_once(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    from chatpulse.config import load_settings
    from pipelines.definitions import DAILY_JOB, build_definitions
    from tests.conftest import write_jsonl
    from tests.test_pipeline import DAY as PIPELINE_DAY
    from tests.test_pipeline import REQUESTS

    inbox, port = Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        write_jsonl(tmp_path / "landing" / "requests-1.jsonl", REQUESTS)
        config = tmp_path / "chatpulse.yaml"
        config.write_text(
            f"data_home: .\nmail:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n"
            "  sender: reports@example.com\n  recipients: [ops@example.com]\n"
        )
        job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
        for _ in range(2):
            assert job.execute_in_process(partition_key=PIPELINE_DAY, instance=DagsterInstance.ephemeral()).success
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == ["ChatPulse 2026-11-20: 5 requests, 20.0% errors, p95 860 ms"]
