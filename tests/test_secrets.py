"""Secrets stay secret: webhook tokens, SMTP passwords and database passwords never reach logs, the Dagster
event log, run config, tables or exception messages."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster import DagsterInstance

from chatpulse.config import ConfigError, load_settings, settings_from_mapping
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse, WarehouseError

from fixtures import Hook, Inbox, free_port, run_cli, write_jsonl

TOKEN_PATH, TOKEN = "T0AB/B0CD/s3cr3tpath", "t0k3n-value"
SMTP_PASSWORD = "smtp-pa55word"
DB_PASSWORD = "db-pa55word"
SECRETS = (TOKEN_PATH.rsplit("/", 1)[1], TOKEN, SMTP_PASSWORD, DB_PASSWORD)
DAY = "2026-11-20"


class Refusing(Inbox):
    """An SMTP inbox that refuses every login."""

    def __init__(self) -> None:
        super().__init__()
        self.passwords: list[str] = []

    def authenticate(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        self.passwords.append(data.password.decode())  # type: ignore[attr-defined]
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 (handled=True: no answer at all)


@pytest.fixture
def refusing_smtp() -> Iterator[tuple[Refusing, int]]:
    inbox, port = Refusing(), free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _leaks(*texts: str) -> list[str]:
    return [secret for secret in SECRETS if any(secret in text for text in texts)]


@pytest.mark.pipeline
def test_a_run_with_a_failing_webhook_and_smtp_login_shows_neither_secret(
    tmp_path: Path,
    refusing_smtp: tuple[Refusing, int],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = refusing_smtp
    hook = Hook(failures=1000)
    write_jsonl(
        tmp_path / "landing" / "requests.jsonl",
        [{"timestamp": f"{DAY}T10:{n:02d}:00Z", "model": "gpt-4o", "latency_ms": 100} for n in range(5)],
    )
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: busy, metric: requests_per_hour, comparison: '>=', threshold: 1, window: 1h,"
        " min_requests: 1, severity: warn}\n"
    )
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        "data_home: .\nstart_date: 2026-11-01\nalert_rules: rules.yaml\n"
        f"alert_webhook: {{url: '{hook.base}/services/{TOKEN_PATH}?token={TOKEN}', retries: 1, backoff_s: 0}}\n"
        f"mail: {{host: 127.0.0.1, port: {port}, security: none, username: reporter, sender: cp@example.org,"
        " recipients: [ops@example.org], timeout_s: 2}\n"
    )
    monkeypatch.setenv("CHATPULSE_SMTP_PASSWORD", SMTP_PASSWORD)
    # The day's report counts as mailed: the report step would otherwise fail on the login and retry for minutes.
    Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").append(
        "report_sends", pd.DataFrame([{"day": DAY, "message_id": "<m@x>", "sent_at": datetime.now(UTC)}])
    )
    caplog.set_level(logging.DEBUG)
    instance = DagsterInstance.ephemeral()
    try:
        job = build_definitions(load_settings(config), str(config)).resolve_job_def(DAILY_JOB)
        result = job.execute_in_process(partition_key=DAY, instance=instance)
    finally:
        hook.close()
    assert result.success
    assert hook.attempts == 2 and inbox.passwords == [SMTP_PASSWORD] * 2  # both tried; login: PLAIN, LOGIN
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    pending = warehouse.read("alert_deliveries").sort_values("channel")
    assert pending["target"].tolist() == ["mail", "alert_webhook"]  # configuration keys, never the URL
    assert pending["last_error"].tolist()[1] == f"webhook {hook.base}/***: HTTP 500"
    assert pending["last_error"].tolist()[0].startswith(f"cannot send mail through 127.0.0.1:{port}: ")

    run = instance.get_run_by_id(result.run_id)
    snapshot = instance.get_job_snapshot(run.job_snapshot_id)
    events = [repr(record) for record in instance.all_logs(result.run_id)]
    assert any("alert delivery failed" in event for event in events)
    tables = sa.inspect(warehouse.engine).get_table_names()
    stored = [pd.read_sql_table(table, warehouse.engine).astype(str).to_string() for table in tables]
    captured = capfd.readouterr()
    assert _leaks(caplog.text, captured.out, captured.err, *events, repr(run.run_config), repr(snapshot), *stored) == []


def test_no_database_password_in_resource_config_or_the_job_snapshot(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://reporter:{DB_PASSWORD}@db.example.org/chatpulse"
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"database_url: {url}\n")
    settings = load_settings(config)
    assert DB_PASSWORD not in repr(settings)
    defs = build_definitions(settings, str(config))
    job = defs.resolve_job_def(DAILY_JOB)
    resources = repr(job.resource_defs) + repr(defs.resources)
    assert _leaks(repr(job.get_job_snapshot()), resources) == []
    assert DB_PASSWORD in settings.database_url  # the URL itself is intact, read inside the run


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = f"postgresql+psycopg://reporter:{DB_PASSWORD}@127.0.0.1:{free_port()}/chatpulse"
    with pytest.raises(WarehouseError) as raised:
        Warehouse(url)
    message = str(raised.value)
    assert message.startswith(f"cannot open the warehouse {sa.make_url(url).render_as_string(hide_password=True)}: ")
    assert "reporter:***@127.0.0.1" in message and "Connection refused" in message
    assert raised.value.__suppress_context__ and _leaks(message) == []
    # The password as a query parameter (libpq takes ?password=), and a URL that cannot be parsed.
    for url, shown in [
        (f"postgresql+psycopg://reporter@127.0.0.1:{free_port()}/cp?password={DB_PASSWORD}", "?password=***"),
        (f"postgresql+psycopg://reporter:{DB_PASSWORD}@127.0.0.1:notaport/cp", "is not a SQLAlchemy URL"),
    ]:
        with pytest.raises(WarehouseError, match=re.escape(shown)) as raised:
            Warehouse(url)
        assert _leaks(str(raised.value)) == []
    with pytest.raises(WarehouseError, match="No module named 'MySQLdb'") as missing:
        Warehouse(f"mysql://reporter:{DB_PASSWORD}@127.0.0.1/chatpulse")
    assert _leaks(str(missing.value)) == []


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (f"database_url: [postgresql://u:{DB_PASSWORD}@h/db]\n", "database_url"),
        (f"alert_webhook: ftp://hooks.example/{TOKEN_PATH}\n", "alert_webhook.url"),
        (f"alert_webhook: [https://hooks.example/{TOKEN_PATH}]\n", "alert_webhook"),
    ],
)
def test_a_wrong_secret_value_is_never_quoted_in_configuration_errors(tmp_path: Path, config: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    with pytest.raises(ConfigError, match=rf"^{path}: {key}: expected .*\(the value is not shown") as raised:
        load_settings(path, env={})
    assert _leaks(str(raised.value)) == []


@pytest.mark.subprocess
def test_the_cli_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"database_url: postgresql+psycopg://reporter:{DB_PASSWORD}@127.0.0.1:{free_port()}/cp\n")
    result = run_cli("--config", str(path), "serve-metrics", "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatpulse: error: cannot open the warehouse postgresql+psycopg://reporter:***@")
    assert _leaks(result.stdout, result.stderr) == []


def test_a_refused_smtp_login_never_quotes_the_password(tmp_path: Path, refusing_smtp: tuple[Refusing, int]) -> None:
    from chatpulse.alerting.delivery import failure_mail
    from chatpulse.mail import MailError, send

    inbox, port = refusing_smtp
    mail = {"host": "127.0.0.1", "port": port, "security": "none", "username": "reporter", "sender": "cp@x.org"}
    settings = settings_from_mapping(
        {"mail": {**mail, "recipients": ["o@x.org"]}}, tmp_path, {"CHATPULSE_SMTP_PASSWORD": SMTP_PASSWORD}
    ).mail
    assert settings is not None and SMTP_PASSWORD not in repr(settings)
    with pytest.raises(MailError) as raised:
        send(failure_mail("daily_pipeline", "run-1", DAY, "boom", settings), settings)
    assert inbox.passwords == [SMTP_PASSWORD] * 2 and _leaks(str(raised.value)) == []
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
