"""Pseudonymous users: a keyed hash in place of user ids in reports, and before storage when asked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from chatpulse.config import ConfigError, load_settings, settings_from_mapping
from chatpulse.formatting import DASH
from chatpulse.ingest.extract import RAW, extract_day
from chatpulse.ingest.privacy import WITHHELD, protect
from chatpulse.pseudonyms import Pseudonyms, UserDisplay
from chatpulse.reports.render import render_report
from chatpulse.reports.sections import detail_sections
from chatpulse.schema import Kind

from fixtures import report_daily, report_hourly, report_quality, write_jsonl

KEY = "k3y-for-the-tests-0123456789"
ENV = {"CHATPULSE_PSEUDONYM_KEY": KEY}


def expected(user_id: str, key: str = KEY) -> str:
    """The pseudonym by its definition: `u_` and the first 16 hex digits of HMAC-SHA256(key, id)."""
    return "u_" + hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:16]


def test_a_pseudonym_is_a_stable_keyed_hash() -> None:
    pseudonyms = Pseudonyms(KEY)
    assert pseudonyms.user("alice@example.com") == expected("alice@example.com")
    assert re.fullmatch(r"u_[0-9a-f]{16}", pseudonyms.user("alice@example.com"))
    assert Pseudonyms(KEY).user("alice@example.com") == pseudonyms.user("alice@example.com")  # stable
    assert Pseudonyms(KEY + "x").user("alice@example.com") != pseudonyms.user("alice@example.com")  # keyed
    assert pseudonyms.user(pseudonyms.user("bob")) == pseudonyms.user("bob")  # never hashed twice
    assert KEY not in repr(pseudonyms)


def test_a_column_of_ids_is_hashed_once_per_user_and_keeps_missing_ones() -> None:
    ids = pd.Series(["alice", None, "bob", "alice", 42], index=[3, 4, 5, 6, 7], name="user_id", dtype=object)
    hashed = Pseudonyms(KEY).users(ids)
    assert hashed.index.tolist() == [3, 4, 5, 6, 7] and hashed.name == "user_id"
    assert hashed.iloc[[0, 2, 3, 4]].tolist() == [expected("alice"), expected("bob"), expected("alice"), expected("42")]
    assert pd.isna(hashed.iloc[1])


def test_sessions_named_after_a_user_show_its_pseudonym() -> None:
    show = UserDisplay(Pseudonyms(KEY))
    derived = "alice@example.com@2026-11-20T10:00:00+00:00"
    assert show.session(derived) == expected("alice@example.com") + "@2026-11-20T10:00:00+00:00"
    assert show.session("s-42") == "s-42"  # a session id the log gave is not a user
    assert UserDisplay().session(derived) == derived and UserDisplay()("alice") == "alice"


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ("pseudonymize_users: true\n", {}, "pseudonymize_users: needs a secret key in $CHATPULSE_PSEUDONYM_KEY"),
        (
            "pseudonymize_storage: true\npseudonym_key_env: MY_KEY\n",
            {"CHATPULSE_PSEUDONYM_KEY": KEY},
            "pseudonymize_storage: needs a secret key in $MY_KEY, which is not set",
        ),
        ("pseudonymize_users: true\n", {"CHATPULSE_PSEUDONYM_KEY": "short"}, "needs at least 16 characters"),
        ("pseudonymize_users: yes please\n", {}, "pseudonymize_users: expected true or false"),
    ],
)
def test_a_missing_key_is_one_configuration_error(tmp_path: Path, config: str, env: dict, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_settings(path, env=env)
    assert "\n" not in str(raised.value) and str(raised.value).startswith(str(path))


def test_the_key_never_shows_in_the_settings(tmp_path: Path) -> None:
    settings = settings_from_mapping({"pseudonymize_users": True}, tmp_path, ENV)
    assert settings.user_pseudonyms is not None and settings.storage_pseudonyms is None
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert settings_from_mapping({}, tmp_path, ENV).user_pseudonyms is None  # the key alone changes nothing


def test_the_report_shows_pseudonyms_in_its_user_and_session_columns(tmp_path: Path) -> None:
    day = "2026-11-20"
    tables = {
        "slowest_requests": pd.DataFrame(
            {"day": day, "rank": [1, 2], "request_id": ["r1", "r2"], "model": "gpt-4o",
             "user_id": ["alice@example.com", None], "latency_ms": [9000.0, 8000.0], "ttft_ms": [100.0, 90.0]}
        ),
        "negative_sessions": pd.DataFrame(
            {"day": day, "session_id": ["bob@example.com@2026-11-20T09:00:00+00:00"], "scenario": "coding",
             "model": "gpt-4o", "satisfaction": [0.0], "latency_mean_ms": [500.0], "errors": [0]}
        ),
    }  # fmt: skip
    sections = {s.title: s for s in detail_sections(tables, UserDisplay(Pseudonyms(KEY)))}
    assert [row["user_id"] for row in sections["Slowest requests"].rows] == [expected("alice@example.com"), DASH]
    assert sections["Worst-rated sessions"].rows[0]["session_id"] == (
        expected("bob@example.com") + "@2026-11-20T09:00:00+00:00"
    )
    html = render_report(
        dt.date(2026, 11, 20),
        report_daily(),
        report_hourly([10] * 24, [1] * 24),
        pd.Series([100.0]),
        report_quality({}),
        list(sections.values()),
        tmp_path,
    ).read_text(encoding="utf-8")
    mail_body = (tmp_path / "2026-11-20" / "mail.json").read_text(encoding="utf-8")
    for text in (html, mail_body):
        assert "alice@example.com" not in text and "bob@example.com" not in text
        assert expected("alice@example.com") in text


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    write_jsonl(
        landing / "requests.jsonl",
        [
            {"timestamp": "2026-11-20T10:00:00Z", "user_id": "alice@example.com", "model": "gpt-4o"},
            {"timestamp": "2026-11-20T10:01:00Z", "user_id": 12345, "latency_ms": "slow"},  # a faulty row
            '{"timestamp": "2026-11-20T10:02:00Z", "user_id": "bob@example.com", "latency_ms": 1',  # malformed
            '{"timestamp": "2026-11-20T10:03:00Z", "user_id": "carol.smith',  # cut off inside the id
        ],
    )
    (landing / "messages.csv").write_text(
        "timestamp,user_id,role,content\n"
        "2026-11-20T10:00:00Z,dave,user,hello\n"
        "not-a-time,erin,user,hi\n"  # a faulty row, read: its id is replaced field by field
        "2026-11-20T10:05:00Z,frank,user,hi,extra\n",  # malformed: its fields cannot be told apart
        encoding="utf-8",
    )
    return landing


def test_pseudonymized_storage_leaves_no_id_in_rows_or_original_lines(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    sources = [
        {"kind": "requests", "pattern": "requests*"},
        {"kind": "messages", "pattern": "messages*", "timestamp": "iso"},
    ]
    settings = settings_from_mapping(
        {"landing_dir": "landing", "pseudonymize_storage": True, "sources": sources}, tmp_path, ENV
    )
    day = dt.date(2026, 11, 20)
    requests = extract_day(landing, settings.sources, Kind.REQUESTS, day, "UTC").frame
    protect(requests, Kind.REQUESTS, settings)
    assert requests["user_id"].tolist()[:2] == [expected("alice@example.com"), expected("12345")]
    lines = requests[RAW].dropna().tolist()
    assert json.loads(lines[0])["user_id"] == expected("12345")
    assert f'"user_id": "{expected("bob@example.com")}"' in lines[1]  # malformed JSON: its key is still found
    assert lines[2].endswith('"user_id": "[USER_ID]"')  # cut off: no pseudonym of half an id

    messages = extract_day(landing, settings.sources, Kind.MESSAGES, day, "UTC").frame
    protect(messages, Kind.MESSAGES, settings)
    assert messages["user_id"].dropna().tolist()[:2] == [expected("dave"), expected("erin")]
    raw = messages[RAW].dropna().tolist()
    assert raw == [f"not-a-time,{expected('erin')},user,hi", WITHHELD]
    stored = pd.concat([requests, messages]).astype(str).to_string()
    for user in ("alice@example.com", "12345", "bob@example.com", "carol.smith", "dave", "erin", "frank"):
        assert user not in stored, user


@pytest.mark.pipeline
def test_a_pseudonymized_day_holds_no_user_id_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables, hand-offs, the report, its e-mail body, alert payloads and the Prometheus file of a day stored
    pseudonymised: no user id, and per-user numbers as the raw ids give them."""
    from dagster import DagsterInstance

    from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
    from chatpulse.warehouse import Warehouse

    from fixtures import Hook

    users = ["alice@example.com", "bob.jones@example.org", "carol", "13812345678"]
    requests = [
        {"timestamp": f"2026-11-20T{10 + n % 5:02d}:{n % 60:02d}:00Z", "user_id": users[n % 4 if n < 30 else 0],
         "model": "gpt-4o", "status_code": 500 if n % 7 == 0 else 200, "latency_ms": 100 + 40 * n}
        for n in range(40)
    ] + [{"timestamp": "2026-11-20T12:00:00Z", "user_id": "carol", "latency_ms": "slow"}]  # fmt: skip
    write_jsonl(tmp_path / "landing" / "requests.jsonl", requests)
    write_jsonl(
        tmp_path / "landing" / "messages.jsonl",
        [{"timestamp": "2026-11-20T10:00:00Z", "user_id": "carol", "role": "user", "content": "hi"}],
    )
    write_jsonl(
        tmp_path / "landing" / "feedback.jsonl",
        [{"timestamp": "2026-11-20T10:01:00Z", "user_id": "carol", "rating": -1}],
    )
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: busy, metric: requests_per_hour, comparison: '>=', threshold: 1, window: 1h,"
        " min_requests: 1, severity: warn}\n"
    )
    hook = Hook(failures=0)
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        "data_home: .\nstart_date: 2026-11-01\ncontent_retention_days: 36500\nalert_rules: rules.yaml\n"
        f"alert_webhook: {hook.url}\npseudonymize_storage: true\n"
    )
    monkeypatch.setenv("CHATPULSE_PSEUDONYM_KEY", KEY)
    try:
        job = build_definitions(load_settings(config), str(config)).resolve_job_def(DAILY_JOB)
        assert job.execute_in_process(partition_key="2026-11-20", instance=DagsterInstance.ephemeral()).success
    finally:
        hook.close()

    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    daily_users = warehouse.read("daily_users", "2026-11-20").set_index("user_id")
    counts = pd.Series([r["user_id"] for r in requests[:40]]).value_counts()  # the clean rows, by raw id
    assert daily_users["requests"].to_dict() == {expected(user): count for user, count in counts.items()}
    assert hook.received, "the alert was not delivered"

    shown = [json.dumps(hook.received), (tmp_path / "metrics" / "chatpulse.prom").read_text()]
    shown += [path.read_text(encoding="utf-8") for path in (tmp_path / "reports").rglob("*.htm*")]
    shown += [path.read_text(encoding="utf-8") for path in (tmp_path / "reports").rglob("*.json")]
    shown += [pd.read_parquet(path).astype(str).to_string() for path in (tmp_path / "storage").rglob("*.parquet")]
    tables = sa.inspect(warehouse.engine).get_table_names()
    shown += [pd.read_sql_table(table, warehouse.engine).astype(str).to_string() for table in tables]
    assert len(tables) > 20
    for user in users:
        leaks = [text[:200] for text in shown if user in text]
        assert not leaks, (user, leaks)
