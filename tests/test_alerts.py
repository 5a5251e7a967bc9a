"""Alert rules, evaluation on the demo's 7 days (incident included) and the alert lifecycle."""

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from chatpulse.alerts import AlertRuleError, Tables, evaluate, history_days, load_rules, update_alerts
from chatpulse.config import ConfigError, load_settings, settings_from_mapping
from chatpulse.sample import write_sample
from chatpulse.warehouse import Warehouse, Write
from pipelines.definitions import DAILY_JOB, build_definitions

DAYS = [date(2026, 11, 21) + timedelta(days=i) for i in range(7)]
INCIDENT = date(2026, 11, 26)


def test_default_rules_load() -> None:
    rules = load_rules()
    assert [rule.name for rule in rules] == [
        "error_rate_5m",
        "error_rate_1h",
        "latency_p95_1h",
        "latency_p95_spike",
        "traffic_spike",
        "quarantine_rate",
    ]
    spike = rules[3]
    assert (spike.metric, spike.window, spike.threshold, spike.severity) == ("latency_p95_ms", "1h", 6.0, "error")
    assert spike.baseline is not None and (spike.baseline.method, spike.baseline.days) == ("mad", 7)
    assert history_days(rules) == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{name: a, metric: speed, comparison: '>', threshold: 1}]", "rules[0].metric: expected one of"),
        (
            "rules: [{name: a, metric: cost_per_day, comparison: '>', threshold: 1, window: 1h}]",
            "rules[0].window: cost_per_day needs window 1d",
        ),
        ("rules: [{name: a, metric: tokens, comparison: '>'}]", "rules[0].threshold: required"),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: 1, baseline: {method: mean}}]",
            "rules[0].baseline.method: expected one of mad, ratio",
        ),
        ("rules: [{name: a, metric: tokens, comparison: '>', threshold: 1, colour: red}]", "rules[0].colour: unknown"),
        ("rules: {}", "rules: expected a list of rules"),
    ],
)
def test_rule_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(AlertRuleError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_rules(path)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The demo's 7 days run through the daily job (alerts asset included)."""
    home = tmp_path_factory.mktemp("demo")
    write_sample(home / "landing", DAYS, incident_day=INCIDENT)
    config = home / "chatpulse.yaml"
    config.write_text(f"data_home: .\nstart_date: {DAYS[0]}\n")
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    checks = {}
    instance = DagsterInstance.ephemeral()
    for day in DAYS:
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
        assert result.success
        checks[day.isoformat()] = {
            (e.check_name, e.passed, e.severity)
            for e in result.get_asset_check_evaluations()
            if e.asset_key.path[-1] == "alerts"
        }
    return home, checks


def test_the_incident_fires_exactly_the_expected_alerts_and_normal_days_none(demo) -> None:
    home, checks = demo
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    stored = warehouse.read("alerts")
    assert set(stored["day"]) == {INCIDENT.isoformat()}
    got = [(row.rule, f"{row.window_start:%H:%M}", row.requests) for row in stored.itertuples()]
    assert got == [
        ("error_rate_1h", "14:00", 234),
        ("latency_p95_1h", "14:00", 234),
        ("latency_p95_spike", "14:00", 234),
        ("error_rate_5m", "14:10", 23),
        ("error_rate_5m", "14:45", 27),
    ]
    by_rule = stored.set_index(["rule", stored["window_start"].dt.strftime("%H:%M")])
    assert by_rule.loc[("error_rate_1h", "14:00"), "value"] == pytest.approx(40 / 234)
    assert by_rule.loc[("latency_p95_spike", "14:00"), "baseline"] == pytest.approx(9635.62)
    assert by_rule.loc[("error_rate_5m", "14:10"), "value"] == pytest.approx(6 / 23)
    assert stored["resolved_at"].isna().all() and (stored["first_seen"] == stored["last_seen"]).all()
    assert (stored["window_end"] - stored["window_start"]).dt.total_seconds().tolist() == [3600] * 3 + [300] * 2
    assert checks[INCIDENT.isoformat()] == {
        ("no_open_error_alerts", False, AssetCheckSeverity.ERROR),
        ("no_open_warn_alerts", False, AssetCheckSeverity.WARN),
    }
    for day in DAYS:
        if day != INCIDENT:
            assert checks[day.isoformat()] == {
                ("no_open_error_alerts", True, AssetCheckSeverity.ERROR),
                ("no_open_warn_alerts", True, AssetCheckSeverity.WARN),
            }


def _breach(rule: str, value: float) -> pd.DataFrame:
    start = pd.Timestamp("2026-11-26 14:00", tz="UTC")
    return pd.DataFrame(
        [
            {
                "day": "2026-11-26",
                "rule": rule,
                "metric": "error_rate",
                "severity": "error",
                "window_start": start,
                "window_end": start + pd.Timedelta(hours=1),
                "value": value,
                "threshold": 0.1,
                "baseline": float("nan"),
                "requests": 200,
            }
        ]
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_persisting_breach_is_one_alert_that_resolves(backend: str, tmp_path: Path, request) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    warehouse = Warehouse(url)
    request.addfinalizer(warehouse.engine.dispose)
    runs = [datetime(2026, 11, 26, 15, minute, tzinfo=UTC) for minute in (0, 5, 10, 15)]
    for run, value in zip(runs[:3], (0.2, 0.3, 0.25), strict=True):
        stored = update_alerts(warehouse.read("alerts", "2026-11-26"), _breach("errors", value), run)
        warehouse.replace_day("2026-11-26", Write("alerts", stored))
    after_three = warehouse.read("alerts", "2026-11-26")
    assert len(after_three) == 1
    row = after_three.iloc[0]
    assert (row["value"], row["first_seen"], row["last_seen"]) == (0.25, pd.Timestamp(runs[0]), pd.Timestamp(runs[2]))
    assert pd.isna(row["resolved_at"])
    stored = update_alerts(after_three, _breach("errors", 0.05).iloc[0:0], runs[3])
    warehouse.replace_day("2026-11-26", Write("alerts", stored))
    resolved = warehouse.read("alerts", "2026-11-26").iloc[0]
    assert (resolved["resolved_at"], resolved["last_seen"], resolved["value"]) == (
        pd.Timestamp(runs[3]),
        pd.Timestamp(runs[2]),
        0.25,
    )


def test_baseline_and_min_requests_on_the_demo_tables(demo) -> None:
    home, _ = demo
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    rules = load_rules()
    today = warehouse.read("requests", INCIDENT.isoformat())
    tables = Tables.read(warehouse, INCIDENT, history_days(rules), today)
    quiet = [r for r in rules if r.name == "error_rate_5m"]
    loud = tuple(type(r)(**{**r.__dict__, "min_requests": 10_000}) for r in quiet)
    assert len(evaluate(tuple(quiet), tables, INCIDENT, "UTC")) == 2
    assert evaluate(loud, tables, INCIDENT, "UTC").empty


def test_alert_settings_resolve_and_errors_name_the_key(tmp_path: Path) -> None:
    raw = {"alert_rules": "rules.yaml", "alert_webhook": "https://hooks.example/x", "sensor_interval_seconds": 30}
    settings = settings_from_mapping(raw, tmp_path, {})
    assert settings.alert_rules == tmp_path / "rules.yaml" and settings.sensor_interval_seconds == 30
    hook = settings.alert_webhook
    assert (hook.url, hook.format, hook.timeout_s, hook.retries, hook.backoff_s) == (
        "https://hooks.example/x",
        "json",
        10.0,
        3,
        1.0,
    )
    defaults = settings_from_mapping({}, tmp_path, {})
    assert (defaults.alert_rules, defaults.alert_webhook, defaults.sensor_interval_seconds) == (None, None, 60)
    for bad, message in (
        ({"alert_webhook": {"url": "ftp://x"}}, "alert_webhook.url: expected an http(s) URL, got 'ftp://x'"),
        (
            {"alert_webhook": {"url": "http://x", "format": "teams"}},
            "alert_webhook.format: expected one of json, slack",
        ),
        ({"sensor_interval_seconds": 0}, "sensor_interval_seconds: expected a whole number of seconds, at least 1"),
    ):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
            settings_from_mapping(bad, tmp_path, {})


def test_the_incident_stays_five_alerts_over_three_runs_and_resolves_when_the_data_does(demo, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo[0], home)
    config = home / "chatpulse.yaml"
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    instance = DagsterInstance.ephemeral()
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    first = warehouse.read("alerts", INCIDENT.isoformat())
    for _ in range(2):
        assert job.execute_in_process(partition_key=INCIDENT.isoformat(), instance=instance).success
    third = warehouse.read("alerts", INCIDENT.isoformat())
    assert len(third) == 5 and third["resolved_at"].isna().all()
    assert third["first_seen"].tolist() == first["first_seen"].tolist()
    assert (third["last_seen"] > first["last_seen"]).all()
    # The same day rewritten without the incident (a corrected log): every alert resolves.
    write_sample(home / "landing", [INCIDENT], incident_day=date(2000, 1, 1))
    assert job.execute_in_process(partition_key=INCIDENT.isoformat(), instance=instance).success
    resolved = warehouse.read("alerts", INCIDENT.isoformat())
    assert len(resolved) == 5 and resolved["resolved_at"].notna().all()
    assert (resolved["resolved_at"] > third["last_seen"]).all()
    assert resolved["last_seen"].tolist() == third["last_seen"].tolist()


def test_the_report_shows_the_incident_alerts(demo) -> None:
    home, _ = demo
    incident = (home / "reports" / f"{INCIDENT.isoformat()}.html").read_text()
    section = incident[incident.index("<h2>Alerts</h2>") : incident.index("<h2>Trends</h2>")]
    assert section.count("<tr>") == 6  # the header and the five alerts
    assert "latency_p95_spike" in section and "14:10–14:15 UTC" in section and "17.1%" in section
    for day in DAYS:
        if day != INCIDENT:
            assert "<h2>Alerts</h2>" not in (home / "reports" / f"{day.isoformat()}.html").read_text()
