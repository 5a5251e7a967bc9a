"""The report by e-mail, received by a real SMTP server (aiosmtpd) on loopback."""

import json
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from chatpulse.config import MailSettings, load_settings
from chatpulse.mail import MailError, send
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.reports.alerts import AlertSummary
from chatpulse.reports.mail import (
    MAX_HTML_BYTES,
    Headline,
    ReportInProgress,
    ReportUnfit,
    build_message,
    deliver,
    inline_report,
    plain_text,
    subject,
)
from chatpulse.reports.render import mail_body_file, read_mail_body, render_report
from chatpulse.reports.sections import Column, Section
from chatpulse.warehouse import Warehouse, Write

from fixtures import (
    PIPELINE_DAY,
    PIPELINE_REQUESTS,
    Inbox,
    embedded_charts,
    free_port,
    full_day,
    render_with,
    report_daily,
    report_hourly,
    report_quality,
    report_scenarios,
    report_tables,
    write_jsonl,
)
from fixtures import REPORT_DAY as DAY

USER, PASSWORD = "reporter", "s3cret"


class LoginInbox(Inbox):
    """An inbox that also checks logins and keeps who logged in."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, str]] = []

    def authenticate(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        # handled=False: aiosmtpd then answers a refusal with 535 itself (True leaves the client waiting).
        return AuthResult(success=(data.login.decode(), data.password.decode()) == (USER, PASSWORD), handled=False)


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
def server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[tuple[LoginInbox, MailSettings]]:
    """An SMTP server in each of the three security modes; TLS ones require a login."""
    inbox = LoginInbox()
    port = free_port()
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
        report_daily(),
        report_hourly(requests, [r // 20 for r in requests]),
        pd.Series([120.0, 900.0, 4000.0]),
        report_quality({"latency_ms: not a number": 2}),
        report_scenarios(["coding", "writing"]),
        tmp_path / "reports",
    )
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    warehouse.replace_day(DAY.isoformat(), Write("daily_metrics", report_daily()))
    return report, warehouse


@pytest.mark.subprocess
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
    assert message_id.endswith(f"@{settings.sender.rpartition('@')[2].rstrip('>')}>")  # the sender's domain
    sent = parsedate_to_datetime(message["Date"])  # set when sent: mail clients and spam filters need it
    assert sent.tzinfo is not None and abs((datetime.now(UTC) - sent).total_seconds()) < 60
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
    names = ["requests_per_hour", "latency_distribution", "error_rate_by_hour"]
    assert cids == [f"{name}.2026-11-20@chatpulse" for name in names]
    attached = {part["Content-ID"].strip().strip("<>"): part for part in images}
    assert set(attached) == set(cids) and len(images) == len(cids)
    for cid, part in attached.items():
        name = cid.split(".")[0]
        assert part.get_content_type() == "image/png" and part.get_content_disposition() == "inline"
        assert part.get_filename() == f"{name}.png"
        assert part.get_content() == (report.with_suffix("") / f"{name}.png").read_bytes()  # the chart, whole
    assert "data:" not in html  # mail clients block data: URIs
    assert "<style" not in html and 'style="' in html  # CSS inlined for mail clients

    assert deliver(DAY, settings, warehouse, report) is None  # a rerun of the day sends nothing new
    assert len(inbox.messages) == 1
    assert deliver(DAY, settings, warehouse, report, force=True) not in (None, message_id)
    assert len(inbox.messages) == 2
    assert len(warehouse.read("report_sends", DAY.isoformat())) == 2


def test_a_full_report_fits_in_the_mail_with_its_charts_attached(tmp_path: Path) -> None:
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    report = tmp_path / "2026-11-20.html"
    page = render_with(tmp_path, report_tables(), history=history)
    assert len(page.encode()) > MAX_HTML_BYTES  # the browser's page carries eight charts in base64
    inlined = inline_report(report)
    html, images = inlined.html, inlined.images
    assert len(html.encode()) < MAX_HTML_BYTES
    assert "data:" not in html and "<style" not in html
    assert re.findall(r'src="cid:([^"]+)"', html) == list(images)  # each chart once, in page order
    folder = tmp_path / "2026-11-20"
    assert len(images) == 8 and {cid.split(".")[0] for cid in images} == {png.stem for png in folder.glob("*.png")}
    for cid, data in images.items():
        assert data == (folder / f"{cid.split('.')[0]}.png").read_bytes(), cid


def test_a_busy_day_fits_in_the_mail_with_its_colours(tmp_path: Path) -> None:
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    day = full_day(scenarios=15, models=8, alerts=6)
    render_with(tmp_path, day, history=history)
    settings = MailSettings(host="127.0.0.1", sender="reports@example.com", recipients=("ops@example.com",))
    message = build_message(DAY, report_daily().iloc[0], tmp_path / "2026-11-20.html", settings)
    html = message.get_payload()[1].get_payload()[0].get_content()
    assert len(html.encode()) < MAX_HTML_BYTES  # Gmail shows it whole
    still_open = int(day["alerts"]["resolved_at"].isna().sum())
    assert (
        message["Subject"]
        == f"ChatPulse 2026-11-20: 6 alerts, {still_open} open · 1,234 requests, 2.5% errors, p95 1.8 s"
    )
    text = message.get_payload()[0].get_content()
    assert text.index("Alerts: 6 alerts") < text.index("Requests      1,234")  # the alerts come first
    assert [line.split()[0] for line in text.splitlines() if "error_rate_5m_" in line] == ["open"] * still_open + [
        "resolved"
    ] * (6 - still_open)
    assert "var(--" not in html and "color:#7a8791" in html  # Gmail drops CSS variables: colours are spelled out


def test_a_page_too_big_for_the_mail_is_refused(tmp_path: Path) -> None:
    rows = Section("Rows", (Column("Row", "row", numeric=False),), [{"row": f"row {n}"} for n in range(2_000)], "")
    report = render_report(
        DAY,
        report_daily(),
        report_hourly([10] * 24, [0] * 24),
        pd.Series([100.0]),
        report_quality({}),
        [rows],
        tmp_path,
    )
    size = len(inline_report(report).html.encode())
    assert size > 2 * MAX_HTML_BYTES
    settings = MailSettings(host="127.0.0.1", sender="reports@example.com", recipients=("ops@example.com",))
    with pytest.raises(ReportUnfit, match=f"HTML body is {size:,} bytes, over the 100,000"):
        build_message(DAY, report_daily().iloc[0], report, settings)


def test_the_mail_body_is_the_page_with_each_chart_a_cid_link(tmp_path: Path) -> None:
    page = render_with(tmp_path, report_tables())
    report = tmp_path / "2026-11-20.html"
    body = read_mail_body(report)
    pngs = body.images
    assert body.html == re.sub(
        r'src="data:image/png;base64,[^"]*" data-chart="(\w+)"',
        r'src="cid:\1.2026-11-20@chatpulse" data-chart="\1"',
        page.replace('<a href="index.html">All reports</a> · ', ""),  # the page's link to its folder's index
    )  # the same numbers, sections and completeness mark as the page, whenever it is mailed
    inlined = inline_report(report)
    html, images = inlined.html, inlined.images
    shown = embedded_charts(page)
    cids = [f"{name}.2026-11-20@chatpulse" for name, _ in shown]
    assert len(set(cids)) == len(cids) == 7 and list(pngs) == cids
    assert re.findall(r'src="cid:([^"]+)"', html) == list(images) == cids  # each chart once, in page order
    assert images == {cid: data for cid, (_, data) in zip(cids, shown, strict=True)}  # the page's very images
    assert html.count('style="display:block;width:100%;height:auto"') == 7  # CSS inlined, minified


def test_a_page_whose_mail_body_or_chart_is_gone_is_refused(tmp_path: Path) -> None:
    render_with(tmp_path, report_tables())
    report = tmp_path / "2026-11-20.html"
    settings = MailSettings(host="127.0.0.1", sender="reports@example.com", recipients=("ops@example.com",))
    (tmp_path / "2026-11-20" / "scenarios.png").unlink()
    with pytest.raises(ReportUnfit, match=r"2026-11-20/scenarios\.png is missing; run the pipeline for that day"):
        build_message(DAY, report_daily().iloc[0], report, settings)
    body = json.loads(mail_body_file(report).read_text())
    (tmp_path / "2026-11-20" / "scenarios.png").write_bytes(b"")
    mail_body_file(report).write_text(json.dumps({"html": body["html"], "images": body["images"]}))
    with pytest.raises(ReportUnfit, match=r"mail\.json was written by an older version, without the day's alerts"):
        build_message(DAY, report_daily().iloc[0], report, settings)  # its subject could not count them
    mail_body_file(report).unlink()  # a page drawn before pages kept their mail body
    with pytest.raises(ReportUnfit, match=r"2026-11-20/mail\.json is missing; run the pipeline for that day"):
        build_message(DAY, report_daily().iloc[0], report, settings)


def test_a_refused_login_is_reported_and_not_recorded(
    server: tuple[Inbox, MailSettings], day_report: tuple[Path, Warehouse]
) -> None:
    inbox, settings = server
    report, warehouse = day_report
    with pytest.raises(MailError, match=rf"cannot send mail through 127.0.0.1:{settings.port}: \(535") as raised:
        deliver(DAY, replace(settings, password="wrong", timeout_s=2), warehouse, report)
    assert raised.value.permanent and "wrong" not in str(raised.value)
    assert inbox.messages == [] and warehouse.read("report_sends").empty


@pytest.mark.pipeline
def test_the_pipeline_mails_each_day_once(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", PIPELINE_REQUESTS)
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: .\nmail:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n"
        "  sender: reports@example.com\n  recipients: [ops@example.com]\n"
    )
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    for _ in range(2):
        assert job.execute_in_process(partition_key=PIPELINE_DAY, instance=DagsterInstance.ephemeral()).success
    assert [m["Subject"] for m in inbox.messages] == ["ChatPulse 2026-11-20: 5 requests, 20.0% errors, p95 860 ms"]


def _mail_step(tmp_path: Path, port: int, login: str = "") -> ExecuteInProcessResult:
    """Run only the report_email step of the day, as a retry or a run past midnight does; `login`, more lines
    of the mail section."""
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: .\ntimezone: Asia/Shanghai\nmail:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n"
        "  sender: reports@example.com\n  recipients: [ops@example.com]\n" + login
    )
    job = build_definitions(load_settings(config), str(config)).resolve_job_def(DAILY_JOB)
    return job.execute_in_process(
        partition_key=DAY.isoformat(),
        instance=DagsterInstance.ephemeral(),
        asset_selection=[AssetKey("report_email")],
        raise_on_error=False,
    )


@pytest.mark.pipeline
def test_a_page_drawn_before_the_day_ended_is_not_mailed_after_it(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    late_evening = datetime(2026, 11, 20, 23, 58, tzinfo=ZoneInfo("Asia/Shanghai"))
    report = render_report(
        DAY,
        report_daily(),
        report_hourly([10] * 24, [0] * 24),
        pd.Series([100.0]),
        report_quality({}),
        report_scenarios(["coding"]),
        tmp_path / "reports",
        in_progress_at=late_evening,
    )
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    settings = MailSettings(host="127.0.0.1", port=free_port(), sender="r@example.com", recipients=("o@example.com",))
    with pytest.raises(ReportInProgress, match="drawn before 2026-11-20 ended"):
        deliver(DAY, settings, warehouse, report)  # as `chatpulse send-report` would

    inbox, port = smtp
    result = _mail_step(tmp_path, port)  # the clock says the day is long over
    assert result.success
    mail = result.asset_materializations_for_node("report_email")[0].metadata
    assert mail["sent"].value is False and "drawn before the day ended" in mail["why"].value
    assert inbox.messages == [] and warehouse.read("report_sends").empty  # the morning run still mails it


@pytest.mark.pipeline
def test_a_missing_report_fails_the_mail_step_without_retries(tmp_path: Path) -> None:
    result = _mail_step(tmp_path, free_port())
    assert not result.success
    events = [event.event_type_value for event in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events and events.count("STEP_FAILURE") == 1  # retrying cannot write it
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    assert "no report for 2026-11-20" in str(failure.step_failure_data.error)


@pytest.mark.pipeline
def test_a_refused_login_fails_the_mail_step_without_retries(
    tmp_path: Path, day_report: tuple[Path, Warehouse], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password (535) was retried three times with growing waits: minutes of a run, then the same refusal."""
    inbox, port = LoginInbox(), free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        login = f"  username: {USER}\n  password_env: SMTP_PW\n"
        monkeypatch.setenv("SMTP_PW", "wrong")  # the run reads the configuration, and its variables, itself
        result = _mail_step(tmp_path, port, login)
    finally:
        controller.stop()
    events = [event.event_type_value for event in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events and events.count("STEP_FAILURE") == 1
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    assert f"cannot send mail through 127.0.0.1:{port}: (535" in str(failure.step_failure_data.error)
    # one try of the step: smtplib offers the password once per mechanism the server lists (PLAIN, LOGIN)
    assert inbox.logins == [(USER, "wrong")] * 2 and inbox.messages == []


def test_a_busy_or_unreachable_server_is_worth_retrying_and_a_refusal_is_not() -> None:
    settings = MailSettings(
        host="127.0.0.1", port=free_port(), timeout_s=2.0, sender="r@x.org", recipients=("o@x.org",)
    )
    with pytest.raises(MailError) as unreachable:
        send(EmailMessage(), settings)
    assert not unreachable.value.permanent
    inbox, port = LoginInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        message = EmailMessage()
        message["From"], message["To"] = "r@x.org", "not an address"
        with pytest.raises(MailError) as refused:  # aiosmtpd answers a malformed address with 553
            send(message, replace(settings, port=port))
    finally:
        controller.stop()
    assert refused.value.permanent


def test_the_subject_and_text_say_one_request_and_a_cost_under_a_cent_as_it_is() -> None:
    """A small log's day: "1 requests" and a logged $0.0051393 shown as "$0.01" (a new user's Langfuse export)."""
    day = pd.Series({"requests": 1, "error_rate": 0.0, "latency_p95_ms": 12032.0, "cost_usd": 0.0051393})
    assert subject(DAY, Headline.of(day), AlertSummary()) == f"ChatPulse {DAY}: 1 request, 0.0% errors, p95 12.0 s"
    assert "$0.0051" in plain_text(DAY, Headline.of(day), AlertSummary())
    busier = Headline.of(pd.Series({**day, "requests": 2}))
    assert subject(DAY, busier, AlertSummary()).startswith(f"ChatPulse {DAY}: 2 requests, ")


def test_a_username_without_its_password_variable_names_the_variable(tmp_path: Path) -> None:
    """It logged in with an empty password, and the server's refusal read as a wrong password."""
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        "mail: {host: 127.0.0.1, port: 2525, sender: r@example.com, recipients: [o@example.com],"
        " username: reports, password_env: SMTP_PW_UNSET}\n",
        encoding="utf-8",
    )
    settings = load_settings(config, env={})
    assert settings.mail is not None and settings.mail.password is None
    with pytest.raises(MailError) as raised:
        send(EmailMessage(), settings.mail)
    assert str(raised.value) == (
        "cannot send mail through 127.0.0.1:2525: mail.username is set but SMTP_PW_UNSET, the variable of its "
        "password (mail.password_env), is not"
    )


@pytest.mark.parametrize(("host", "refused"), [("smtp.example.com", True), ("10.0.0.5", True), ("localhost", False)])
def test_a_login_is_never_sent_unencrypted_to_another_machine(host: str, refused: bool) -> None:
    """security: none with a username sent AUTH PLAIN, the password in the clear, without a word."""
    address = {"sender": "r@example.com", "recipients": ("o@example.com",)}
    login = {"security": "none", "username": "reports", "password": "s3cret-pw"}
    settings = MailSettings(host=host, port=1, timeout_s=2.0, **address, **login)
    with pytest.raises(MailError) as raised:
        send(EmailMessage(), settings)
    said = str(raised.value)
    assert ("the password unencrypted" in said) is refused and "s3cret-pw" not in said
    if not refused:  # this machine: it tried to connect (nothing listens on port 1)
        assert said.startswith(f"cannot send mail through {host}:1: ")
