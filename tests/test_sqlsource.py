"""SQL sources (issue 12, item 7): a source that reads a database query per day instead of files.

Rows from a database go through the same mapping, cleaning and quarantine as a landing file's; the
day's bounds are bind parameters; a rerun replaces the day; the password is nowhere but in the
connection. PostgreSQL with a table shaped like LiteLLM's `LiteLLM_SpendLogs` (its schema.prisma
model; skips where no server answers), and SQLite, which needs no server. Every expected number is
computed here from the rows inserted, with the day each falls on worked out by zoneinfo.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance

from chatpulse.config import ConfigError, load_settings, settings_from_mapping
from chatpulse.ingest.check_report import check_day
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.sqlsource import NOT_ON_DAY, SqlSourceError, extract_sources, read_day
from chatpulse.ingest.times import parse_timestamps
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.schema import Kind
from chatpulse.warehouse import Warehouse

from fixtures import SPEND_LOGS, invoke_cli

TZ = "Asia/Shanghai"  # local midnight is 16:00 UTC: the bounds are not UTC midnights
PASSWORD, PASSWORD_ENV = "litellm-pa55word", "CHATPULSE_TEST_LITELLM_PASSWORD"
DAY, NEXT = date(2026, 11, 20), date(2026, 11, 21)
QUERY = 'SELECT * FROM litellm."LiteLLM_SpendLogs" WHERE "startTime" >= :day_start AND "startTime" < :day_end'
COLUMNS = {
    "request_id": "request_id",
    "timestamp": "startTime",
    "user_id": "user",
    "session_id": "session_id",
    "model": "model",
    "endpoint": "call_type",
    "latency_ms": "request_duration_ms",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "total_tokens": "total_tokens",
    "cost_usd": "spend",
    "metadata": "metadata",
}
CONTENT = "my card is 4111 1111 1111 1111, call me at alice@example.org"


def _local_day(naive_utc: datetime) -> date:
    return naive_utc.replace(tzinfo=UTC).astimezone(ZoneInfo(TZ)).date()


def _spend_logs() -> list[dict]:
    """LiteLLM spend-log rows around the local days 2026-11-20 and 21 (times naive UTC, as LiteLLM writes them),
    in no key order; the last is faulty (negative completion tokens)."""
    rng = random.Random(12)
    starts = [datetime(2026, 11, 19, 15, 0) + timedelta(seconds=rng.randint(0, 3 * 86400)) for _ in range(40)]
    # Either side of local midnight (16:00 UTC) and of the bounds the query is given.
    starts += [datetime(2026, 11, 20, 15, 59, 59, 999000), datetime(2026, 11, 20, 16, 0), datetime(2026, 11, 19, 16, 0)]
    rows = []
    for number, start in enumerate(starts):
        prompt, completion, duration = rng.randint(5, 3000), rng.randint(0, 900), rng.randint(80, 20000)
        rows.append(
            {
                "request_id": f"chatcmpl-{rng.getrandbits(40):010x}",
                "call_type": "acompletion",
                "api_key": f"88dc28{number:04d}",
                "spend": round(rng.uniform(0, 0.05), 6),
                "total_tokens": prompt + completion,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "startTime": start,
                "endTime": start + timedelta(milliseconds=duration),
                "request_duration_ms": duration,
                "completionStartTime": start + timedelta(milliseconds=duration // 3),
                "model": rng.choice(["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"]),
                "user": f"user-{rng.randint(1, 6)}",
                "metadata": json.dumps({"user_api_key_alias": f"key-{number % 3}", "user_api_key_team_id": "team-a"}),
                "messages": json.dumps([{"role": "user", "content": CONTENT}]),
                "response": json.dumps({"choices": [{"message": {"content": CONTENT}}]}),
                "session_id": f"s-{rng.randint(1, 9)}",
                "status": "success",
            }
        )
    rows.append({**rows[5], "request_id": "chatcmpl-bad", "completion_tokens": -3, "startTime": starts[-3]})
    rng.shuffle(rows)
    return rows


def _insert(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # A server whose sessions default to another zone than the one LiteLLM's naive times are written in.
        conn.exec_driver_sql(f"ALTER DATABASE {sa.make_url(url).database} SET timezone TO 'America/New_York'")
        conn.exec_driver_sql(SPEND_LOGS)
        names = list(rows[0])
        columns = ", ".join(f'"{name}"' for name in names)
        values = ", ".join(
            f"CAST(:{name} AS jsonb)" if name in ("metadata", "messages", "response") else f":{name}" for name in names
        )
        conn.execute(sa.text(f'INSERT INTO litellm."LiteLLM_SpendLogs" ({columns}) VALUES ({values})'), rows)
    engine.dispose()


def _pg_source(url: str, **sql: object) -> dict:
    return {
        "name": "litellm",
        "kind": "requests",
        "sql": {"url": url, "password_env": PASSWORD_ENV, "query": QUERY, "key": "request_id", "chunk_rows": 7, **sql},
        "columns": COLUMNS,
    }


def _expected(rows: list[dict], day: date) -> dict[str, object]:
    kept = [r for r in rows if _local_day(r["startTime"]) == day and r["completion_tokens"] >= 0]
    return {
        "requests": len(kept),
        "prompt_tokens": sum(r["prompt_tokens"] for r in kept),
        "completion_tokens": sum(r["completion_tokens"] for r in kept),
        "total_tokens": sum(r["total_tokens"] for r in kept),
        "cost_usd": pytest.approx(sum(r["spend"] for r in kept)),
        "latency_p95_ms": pytest.approx(float(np.percentile([r["request_duration_ms"] for r in kept], 95))),
    }


@pytest.mark.postgres
@pytest.mark.pipeline
def test_a_day_of_litellm_spend_logs_read_from_postgresql(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rows = _spend_logs()
    _insert(postgres_url, rows)
    config = tmp_path / "chatpulse.yaml"
    settings = {"data_home": "home", "start_date": "2026-11-01", "timezone": TZ, "sources": [_pg_source(postgres_url)]}
    config.write_text(yaml.safe_dump(settings))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    caplog.set_level(logging.DEBUG)
    instance = DagsterInstance.ephemeral()

    def run(day: date) -> str:
        job = build_definitions(load_settings(config), str(config)).resolve_job_def(DAILY_JOB)
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
        assert result.success
        return result.run_id

    runs = [run(DAY), run(DAY), run(NEXT)]  # the second run of the day replaces the first
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}")
    for day in (DAY, NEXT):
        daily = warehouse.read("daily_metrics", day.isoformat()).iloc[0]
        expected = _expected(rows, day)
        assert {key: daily[key] for key in expected} == expected
        requests = warehouse.read("requests", day.isoformat())
        on_day = sorted(r["request_id"] for r in rows if _local_day(r["startTime"]) == day)
        assert sorted([*requests["request_id"], *(["chatcmpl-bad"] if day == DAY else [])]) == on_day
        assert set(requests["source_file"]) == {"sql:litellm"}

    quality = warehouse.read_days("data_quality", DAY.isoformat(), NEXT.isoformat(), kind="requests")
    assert quality[["day", "rows_in", "quarantined"]].values.tolist() == [
        [DAY.isoformat(), _expected(rows, DAY)["requests"] + 1, 1],
        [NEXT.isoformat(), _expected(rows, NEXT)["requests"], 0],
    ]
    quarantine = warehouse.read("quarantine", DAY.isoformat())
    keys = sorted(r["request_id"] for r in rows if _local_day(r["startTime"]) == DAY)
    assert quarantine[["source_file", "source_line", "record_id"]].values.tolist() == [
        ["sql:litellm", keys.index("chatcmpl-bad") + 1, "chatcmpl-bad"]
    ]
    assert json.loads(quarantine["reasons"].iloc[0]) == ["completion_tokens: expect_column_values_to_be_between"]

    # jsonb metadata arrives as a mapping and is stored as its JSON; message content is read by no column.
    stored = warehouse.read("requests", DAY.isoformat()).set_index("request_id")
    first = next(r for r in rows if r["request_id"] == stored.index[0])
    assert json.loads(stored["metadata"].iloc[0]) == json.loads(first["metadata"])
    assert stored.loc[first["request_id"], "timestamp"] == pd.Timestamp(first["startTime"], tz="UTC")

    # The password is in no log, event, run config, table or file the runs wrote.
    events = [repr(record) for run_id in runs for record in instance.all_logs(run_id)]
    configs = [repr(instance.get_run_by_id(run_id).run_config) for run_id in runs]
    tables = sa.inspect(warehouse.engine).get_table_names()
    stored_tables = [pd.read_sql_table(table, warehouse.engine).astype(str).to_string() for table in tables]
    written = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    captured = capfd.readouterr()
    texts = [caplog.text, captured.out, captured.err, *events, *configs, *stored_tables]
    assert not any(PASSWORD in text for text in texts)
    assert not any(PASSWORD.encode() in data for data in written)
    assert not any(CONTENT in text for text in stored_tables)


@pytest.mark.postgres
def test_a_database_that_cannot_be_read_is_named_without_its_password(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/chatpulse_no_such_database"
    settings = settings_from_mapping({"sources": [_pg_source(missing)]}, tmp_path, {PASSWORD_ENV: PASSWORD})
    with pytest.raises(SqlSourceError) as raised:
        read_day(settings.sources[0], DAY, TZ, {PASSWORD_ENV: PASSWORD})
    message = str(raised.value)
    assert message.startswith("source 'litellm': cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:5432/")
    assert "chatpulse_no_such_database" in message and PASSWORD not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # the driver's error is not shown

    config = tmp_path / "chatpulse.yaml"
    config.write_text(yaml.safe_dump({"data_home": ".", "sources": [_pg_source(missing)]}))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    result = invoke_cli("--config", str(config), "check", "--date", DAY.isoformat())
    assert result.exit_code == 3 and PASSWORD not in result.output
    warning = (
        "warning: source 'litellm': sql:litellm cannot be read: cannot connect to postgresql+psycopg://postgres:***@"
    )
    assert warning in result.output


# SQLite: no time type, so the times are text, in its own layout or ISO 8601 with a T; the bounds come as UTC text
# in the layout of its datetime(), through which the query compares them.
LOGS = "CREATE TABLE logs (id TEXT, ts TEXT, ended TEXT, model TEXT, ptok INTEGER, ctok INTEGER, meta TEXT, note TEXT)"
SQLITE_ROWS = [
    ("r-07", "2026-11-19 16:00:00", "2026-11-19 16:00:02", "gpt-4o", 10, 5, '{"team": "a"}', "x"),  # local midnight
    ("r-03", "2026-11-19 15:59:59", "2026-11-19 16:00:01", "gpt-4o", 11, 6, None, "x"),  # the day before
    ("r-01", "2026-11-20T09:30:00.250", "2026-11-20T09:30:01", "gpt-4o", 12, 7, '{"team": "b"}', None),
    ("r-09", "2026-11-20 15:59:58", "2026-11-20 16:00:03", "o3", 13, 8, None, None),  # ends the next day
    ("r-02", "2026-11-20 16:00:00", "2026-11-20 16:00:04", "o3", 14, 9, None, None),  # the next local day
    ("r-05", "2026-11-20 01:00:00", "2026-11-20 01:00:01", "o3", "ten", 9, None, None),  # not a number
    ("r-04", "2026-11-20 02:00:00", "2026-11-20 02:00:01", "o3", 15, 1, '{"team": "a"}', None),
]
SQLITE_COLUMNS = {"request_id": "id", "timestamp": "ts", "prompt_tokens": "ptok", "completion_tokens": "ctok"}


@pytest.fixture
def sqlite_logs(tmp_path: Path) -> str:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as conn:
        conn.execute(LOGS)
        conn.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", SQLITE_ROWS)
    conn.close()
    return f"sqlite:///{path}"


def _sqlite_source(url: str, **overrides: object) -> dict:
    query = "SELECT * FROM logs WHERE datetime(ts) >= :day_start AND datetime(ts) < :day_end"
    sql = {"url": url, "query": query, "chunk_rows": 2}
    return {
        "name": "logs",
        "kind": "requests",
        "sql": sql,
        "columns": {**SQLITE_COLUMNS, "metadata": "meta"},
        **overrides,
    }


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_sqlite_source_is_mapped_cleaned_and_quarantined_as_files_are(sqlite_logs: str, tmp_path: Path) -> None:
    settings = settings_from_mapping({"timezone": TZ, "sources": [_sqlite_source(sqlite_logs)]}, tmp_path, {})
    # No landing folder: a configuration of SQL sources alone needs none.
    read = extract_sources(tmp_path / "absent", settings.sources, Kind.REQUESTS, DAY, TZ, env={})
    assert read.columns == {"logs": ("id", "ts", "ended", "model", "ptok", "ctok", "meta", "note")}
    on_day = sorted(
        (row for row in SQLITE_ROWS if _utc(row[1]).astimezone(ZoneInfo(TZ)).date() == DAY), key=lambda row: row[0]
    )
    frame = read.extract.frame
    assert frame["request_id"].tolist() == [row[0] for row in on_day]  # in key order, lines numbered so
    assert frame["source_line"].tolist() == list(range(1, len(on_day) + 1))

    cleaned = clean_partition(frame, Kind.REQUESTS, DAY.isoformat())
    good = [row for row in on_day if isinstance(row[4], int)]
    assert sorted(cleaned.clean["request_id"]) == sorted(row[0] for row in good)
    assert cleaned.clean["prompt_tokens"].sum() == sum(row[4] for row in good)
    assert cleaned.clean.set_index("request_id")["timestamp"].to_dict() == {row[0]: _utc(row[1]) for row in good}
    metadata = cleaned.clean.set_index("request_id")["metadata"]
    assert {key: json.loads(value) for key, value in metadata.dropna().items()} == {
        row[0]: json.loads(row[6]) for row in good if row[6]
    }
    bad = next(row for row in on_day if not isinstance(row[4], int))
    quarantine = cleaned.quarantine
    assert quarantine[["source_file", "source_line", "record_id"]].values.tolist() == [
        ["sql:logs", [row[0] for row in on_day].index(bad[0]) + 1, bad[0]]
    ]
    assert json.loads(quarantine["reasons"].iloc[0]) == ["prompt_tokens: not a number"]
    assert json.loads(quarantine["raw"].iloc[0])["id"] == bad[0]  # the row itself, its key included
    assert cleaned.quality["rows_in"] == len(on_day) == cleaned.quality["clean"] + cleaned.quality["quarantined"]


def test_a_row_whose_own_time_is_on_another_day_is_quarantined_not_lost(sqlite_logs: str, tmp_path: Path) -> None:
    # The query is bounded on the start, the timestamp is the end: a request running over midnight is
    # read by the start's day alone, and must not vanish between the two.
    source = _sqlite_source(sqlite_logs, columns={**SQLITE_COLUMNS, "timestamp": "ended"})
    settings = settings_from_mapping({"timezone": TZ, "sources": [source]}, tmp_path, {})
    frame = read_day(settings.sources[0], DAY, TZ, {}).frame
    cleaned = clean_partition(frame, Kind.REQUESTS, DAY.isoformat())
    started = [row for row in SQLITE_ROWS if _utc(row[1]).astimezone(ZoneInfo(TZ)).date() == DAY]
    away = sorted(row[0] for row in started if _utc(row[2]).astimezone(ZoneInfo(TZ)).date() != DAY)
    assert away == ["r-09"]
    quarantined = cleaned.quarantine.set_index("record_id")["reasons"].map(json.loads)
    assert quarantined["r-09"] == [NOT_ON_DAY]
    assert json.loads(cleaned.quarantine.set_index("record_id").loc["r-09", "raw"])["ended"] == "2026-11-20 16:00:03"
    assert len(cleaned.clean) + len(cleaned.quarantine) == len(started)


def test_a_day_without_rows_and_a_query_without_its_key(sqlite_logs: str, tmp_path: Path) -> None:
    settings = settings_from_mapping({"timezone": TZ, "sources": [_sqlite_source(sqlite_logs)]}, tmp_path, {})
    empty = read_day(settings.sources[0], date(2026, 12, 1), TZ, {})
    assert len(empty.frame) == 0 and "ptok" in empty.columns

    keyless = _sqlite_source(sqlite_logs)
    keyless["sql"] = {**keyless["sql"], "query": "SELECT ts, ptok FROM logs WHERE ts >= :day_start AND ts < :day_end"}
    source = settings_from_mapping({"sources": [keyless]}, tmp_path, {}).sources[0]
    with pytest.raises(SqlSourceError, match=r"source 'logs': sql.key 'id' is not a column of its query's result"):
        read_day(source, DAY, TZ, {})


def test_check_connects_counts_and_names_unmapped_and_missing_columns(sqlite_logs: str, tmp_path: Path) -> None:
    typo = _sqlite_source(sqlite_logs, columns={**SQLITE_COLUMNS, "completion_tokens": "ctoks", "metadata": "meta"})
    config = tmp_path / "chatpulse.yaml"
    config.write_text(yaml.safe_dump({"data_home": ".", "timezone": TZ, "sources": [typo]}))
    result = invoke_cli("--config", str(config), "check", "--date", DAY.isoformat(), "--rows", "2")
    on_day = [row for row in SQLITE_ROWS if _utc(row[1]).astimezone(ZoneInfo(TZ)).date() == DAY]
    lines = result.output.splitlines()
    assert result.exit_code == 3, result.output
    assert f"source 'logs' (requests), sql {sqlite_logs}, query for {DAY}:" in lines
    assert f"  sql:logs: {len(on_day)} rows for {DAY} (the first 2 read)" in lines
    assert "  other columns (not read): ctok, ended, note" in lines  # `model` is a canonical name, read as it is
    assert lines[-2:] == [
        "warning: source 'logs': column 'ctoks' (completion_tokens) is not among its query's columns "
        "(did you mean 'ctok'?)",
        "1 warning",
    ]


def test_check_reads_a_sql_source_with_derived_values(sqlite_logs: str, tmp_path: Path) -> None:
    """A preset such as litellm_spend_logs maps columns to derived values (duration, first, map): check copies
    the source to count the day's rows and must keep them (it failed with a validation error)."""
    columns = {
        **SQLITE_COLUMNS,
        "latency_ms": {"duration": {"start": "ts", "end": "ended"}},
        "provider": {"first": ["note", {"map": {"from": "meta", "missing": "openai", "default": "openai"}}]},
    }
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        yaml.safe_dump({"data_home": ".", "timezone": TZ, "sources": [_sqlite_source(sqlite_logs, columns=columns)]})
    )
    result = invoke_cli("--config", str(config), "check", "--date", DAY.isoformat())
    on_day = [row for row in SQLITE_ROWS if _utc(row[1]).astimezone(ZoneInfo(TZ)).date() == DAY]
    lines = result.output.splitlines()
    assert not [line for line in lines if "cannot be read" in line], result.output
    (latency,) = [line for line in lines if line.startswith("  latency_ms <- 'ended - ts': ")]
    assert latency.startswith(f"  latency_ms <- 'ended - ts': {len(on_day)} of {len(on_day)} rows filled")


def test_a_run_judges_a_sql_source_by_its_query_columns(sqlite_logs: str, tmp_path: Path) -> None:
    typo = _sqlite_source(sqlite_logs, columns={**SQLITE_COLUMNS, "completion_tokens": "ctoks"})
    on_day = [row for row in SQLITE_ROWS if _utc(row[1]).astimezone(ZoneInfo(TZ)).date() == DAY]
    twins = settings_from_mapping({"sources": [typo, _sqlite_source(sqlite_logs)]}, tmp_path, {}).sources
    # Two sources of one name are both read: none is lost.
    assert len(extract_sources(tmp_path, twins, Kind.REQUESTS, DAY, TZ, env={}).extract.frame) == 2 * len(on_day)
    settings = settings_from_mapping({"timezone": TZ, "sources": [typo]}, tmp_path, {})
    read = extract_sources(tmp_path, settings.sources, Kind.REQUESTS, DAY, TZ, env={})
    day = check_day(tmp_path, settings.sources, Kind.REQUESTS, read.extract.frame, TZ, sql_columns=read.columns)
    assert list(day.missing) == [
        {"source": "logs", "column": "completion_tokens", "source_column": "ctoks", "files": ["sql:logs"]}
    ]
    assert [str(finding) for finding in day.findings] == [
        "source 'logs': column 'ctoks' (completion_tokens) is not among its query's columns"
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ({"url": "sqlite://", "query": "SELECT 1"}, "sources[0].sql.query: the query needs the bind parameters"),
        ({"url": f"postgresql://u:{PASSWORD}@h/db", "query": QUERY}, "sources[0].sql.url: expected a SQLAlchemy URL"),
        ({"url": f"postgresql://u@h/db?password={PASSWORD}", "query": QUERY}, "sources[0].sql.url: expected a SQLAlch"),
        ({"url": f"postgresql://u:{PASSWORD}@h:port/db", "query": QUERY}, "sources[0].sql.url: expected a SQLAlchemy"),
        ({"url": f"not a url {PASSWORD}", "query": QUERY}, "sources[0].sql.url: expected a SQLAlchemy URL"),
        ({"query": QUERY}, "sources[0].sql.url: give either url or url_env"),
        ({"url": "sqlite://", "query": QUERY, "password_env": "UNSET_VAR"}, "password_env: the variable UNSET_VAR"),
        ({"url": "sqlite://", "query": QUERY, "chunk_rows": 0}, "sources[0].sql.chunk_rows: expected a whole number"),
        ({"url": "sqlite://", "query": QUERY + " AND :other"}, "sources[0].sql.query: unknown bind parameter :other"),
    ],
)
def test_sql_settings_errors_name_the_key_and_never_the_password(tmp_path: Path, sql: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"sources": [{"kind": "requests", "sql": sql}]}, tmp_path, {})
    assert message in str(raised.value) and PASSWORD not in str(raised.value)


def test_the_url_may_come_whole_from_a_variable_and_a_bare_postgresql_gets_psycopg(tmp_path: Path) -> None:
    source = {"kind": "requests", "sql": {"url_env": "DATABASE_URL", "query": QUERY}}
    env = {"DATABASE_URL": f"postgresql://litellm:{PASSWORD}@db.example.org:5432/litellm"}
    sql = settings_from_mapping({"sources": [source]}, tmp_path, env).sources[0].sql
    assert sql.connect_url(env).drivername == "postgresql+psycopg"
    assert sql.connect_url(env).password == PASSWORD
    assert sql.shown_url(env) == "postgresql+psycopg://litellm:***@db.example.org:5432/litellm"
    # libpq also takes the password as a query parameter (and a key's passphrase as sslpassword).
    env = {"DATABASE_URL": f"postgresql://litellm@db.example.org/litellm?sslmode=require&password={PASSWORD}"}
    assert sql.connect_url(env).query["password"] == PASSWORD
    assert sql.shown_url(env) == "postgresql+psycopg://litellm@db.example.org/litellm?password=***&sslmode=require"
    assert PASSWORD not in repr(sql)
    with pytest.raises(ConfigError, match=r"sources\[0\].sql.url_env: the variable DATABASE_URL is not set"):
        settings_from_mapping({"sources": [source]}, tmp_path, {})


def test_date_times_as_a_database_gives_them(tmp_path: Path) -> None:
    """Naive date-times are wall-clock times in timestamp.timezone; aware ones are instants, whatever the format."""
    source = settings_from_mapping(
        {"sources": [{"kind": "requests", "pattern": "*", "timestamp": {"format": "epoch_ms", "timezone": TZ}}]},
        tmp_path,
        {},
    ).sources[0]
    zone = ZoneInfo(TZ)
    naive = [datetime(2026, 11, 20, 0, 30), None, datetime(2026, 3, 1, 12)]
    aware = [datetime(2026, 11, 20, 0, 30, tzinfo=UTC), datetime(2026, 11, 20, 9, tzinfo=ZoneInfo("America/New_York"))]
    mixed = [naive[0], aware[1], None]
    for given, values in (
        (naive, pd.Series(naive)),
        (aware, pd.Series(aware)),
        (mixed, pd.Series(mixed, dtype=object)),
    ):
        times = parse_timestamps(values, source)
        expected = [None if v is None else (v if v.tzinfo else v.replace(tzinfo=zone)).astimezone(UTC) for v in given]
        assert [None if pd.isna(t) else t.to_pydatetime() for t in times.utc] == expected
        assert times.problems.isna().all()
    far = parse_timestamps(pd.Series([datetime(9999, 12, 31)]), source)
    assert far.utc.isna().all() and far.problems.iloc[0].startswith("outside what a timestamp holds")
