"""Alert rules, evaluation on the demo's 7 days (incident included) and the alert lifecycle."""

import dataclasses
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from chatpulse.alerting.evaluate import (
    REQUEST_COLUMNS,
    TABLE_COLUMNS,
    WINDOW_COLUMNS,
    Tables,
    evaluate,
    history_days,
    update_alerts,
    window_series,
)
from chatpulse.alerting.rules import AlertRuleError, Rule, load_rules, parse_rule
from chatpulse.assets.daystate import DAY_CONSISTENT
from chatpulse.behaviour.scenarios import scenario_labels
from chatpulse.config import ConfigError, MailSettings, load_settings, settings_from_mapping
from chatpulse.days import day_bounds
from chatpulse.pipelines.cli_errors import CliError
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.pipelines.preflight import check_rule_files
from chatpulse.reports.mail import deliver
from chatpulse.reports.render import report_file
from chatpulse.sample.generate import write_sample
from chatpulse.warehouse import Warehouse, Write

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
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: 1, min_requests: -5}]",
            "rules[0].min_requests: expected a whole number, at least 0, got -5",
        ),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: 1, baseline: {days: 3, min_days: 5}}]",
            "rules[0].baseline.min_days: expected 1 to 3, got 5",
        ),
        ("rules: [{name: a, metric: tokens, comparison: '>', threshold: 1, colour: red}]", "rules[0].colour: unknown"),
        ("rules: {}", "rules: expected a list of rules"),
        (
            "# alerts\nRule:\n  - {name: a, metric: tokens, comparison: '>', threshold: 1}",
            "Rule: no 'rules' key; did you mean 'rules'? (line 2)",
        ),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: true}]",
            "rules[0].threshold: expected a finite number, got True",
        ),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: 1}, "
            "{name: a, metric: tokens, comparison: '<', threshold: 2, window: 5m}]",
            "rules[1].name: duplicate name 'a' (line 1)",  # the rule that repeats it
        ),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: .nan}]",
            "rules[0].threshold: expected a finite",
        ),
        (
            "rules: [{name: a, metric: tokens, comparison: '>', threshold: .inf}]",
            "rules[0].threshold: expected a finite",
        ),
    ],
)
def test_rule_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(AlertRuleError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_rules(path)


def test_a_rule_on_a_scenario_the_classifier_never_gives_is_refused(tmp_path: Path) -> None:
    """`scenario: codng` was accepted and never fired; a label of one's own rules file is known."""
    custom = tmp_path / "my_scenarios.yaml"
    custom.write_text("rules:\n  - {label: billing, keywords: [invoice, refund]}\n")
    known = scenario_labels(custom, None)
    assert known[-1] == "billing" and "coding" in known
    path = tmp_path / "rules.yaml"
    rule = "  - {name: %s, metric: error_rate, comparison: '>', threshold: 0.1, window: 1d, scenario: %s}\n"
    path.write_text("rules:\n" + rule % ("b", "billing") + rule % ("c", "codng"))
    message = f"{path}: rules[1].scenario: unknown scenario 'codng' (did you mean 'coding'?); the classifier gives"
    with pytest.raises(AlertRuleError, match=f"^{re.escape(message)}.* other, billing \\(line 3\\)$"):
        load_rules(path, known)
    assert len(load_rules(path)) == 2  # without the labels (the rules file read alone): not judged
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"data_home: {tmp_path}\nscenario_rules: {custom}\nalert_rules: {path}\n")
    with pytest.raises(CliError, match=re.escape(message)):  # before a run's first step
        check_rule_files(load_settings(config, env={}))


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
            if e.asset_key.path[-1] == "alerts" and e.check_name != DAY_CONSISTENT  # the alert checks only
        }
    return home, checks


@pytest.mark.pipeline
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
        ("error_rate_5m", "14:10", 24),
        ("error_rate_5m", "14:45", 28),
    ]
    by_rule = stored.set_index(["rule", stored["window_start"].dt.strftime("%H:%M")])
    # The same windows recounted from the stored clean requests, by NumPy and the plain failure definition.
    hour, burst = _window(warehouse, INCIDENT, "14:00", 60), _window(warehouse, INCIDENT, "14:10", 5)
    assert (len(hour), _failed(hour).sum(), len(burst), _failed(burst).sum()) == (234, 40, 24, 7)
    assert len(_window(warehouse, INCIDENT, "14:45", 5)) == 28
    assert by_rule.loc[("error_rate_1h", "14:00"), "value"] == pytest.approx(40 / 234)
    assert by_rule.loc[("error_rate_5m", "14:10"), "value"] == pytest.approx(7 / 24)
    # The spike's baseline: the median of the 14:00 hour's p95 latency on the five days before (min_days 5).
    p95 = np.percentile(hour["latency_ms"].dropna(), 95)
    before = _hour_p95_before(warehouse)
    baseline, mad = np.median(before), np.median(np.abs(before - np.median(before)))
    spike = by_rule.loc[("latency_p95_spike", "14:00")]
    assert (spike["value"], spike["baseline"]) == (pytest.approx(p95), pytest.approx(baseline))
    assert (p95 - baseline) / (1.4826 * mad) > 6  # the rule's threshold, in MADs scaled to a standard deviation
    assert by_rule.loc[("latency_p95_1h", "14:00"), "value"] == pytest.approx(p95)
    # The demo runs after each day has ended, so every breach is over when first seen.
    assert (stored["first_seen"] == stored["last_seen"]).all()
    assert (stored["resolved_at"] == stored["first_seen"]).all()
    assert (stored["window_end"] - stored["window_start"]).dt.total_seconds().tolist() == [3600] * 3 + [300] * 2
    assert checks[INCIDENT.isoformat()] == {
        ("no_error_alerts", False, AssetCheckSeverity.ERROR),
        ("no_warn_alerts", False, AssetCheckSeverity.WARN),
    }
    for day in DAYS:
        if day != INCIDENT:
            assert checks[day.isoformat()] == {
                ("no_error_alerts", True, AssetCheckSeverity.ERROR),
                ("no_warn_alerts", True, AssetCheckSeverity.WARN),
            }


def _window(warehouse: Warehouse, day: date, clock: str, minutes: int) -> pd.DataFrame:
    """The stored clean requests of `day` from `clock` (UTC) for `minutes`."""
    requests = warehouse.read("requests", day.isoformat())
    start = pd.Timestamp(f"{day} {clock}", tz="UTC")
    return requests[(requests["timestamp"] >= start) & (requests["timestamp"] < start + pd.Timedelta(minutes=minutes))]


def _failed(requests: pd.DataFrame) -> pd.Series:
    """A status of 400 or more, or a named error type (the demo logs no content-filter answers)."""
    return (requests["status_code"].fillna(0) >= 400) | requests["error_type"].fillna("").astype(bool)


def _hour_p95_before(warehouse: Warehouse) -> np.ndarray:
    """The p95 latency (NumPy's linear percentile) of 14:00-15:00 UTC on each demo day before the incident."""
    return np.array([np.percentile(_window(warehouse, d, "14:00", 60)["latency_ms"].dropna(), 95) for d in DAYS[:5]])


def _breach(rule: str, value: float, ongoing: bool = True) -> pd.DataFrame:
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
                "ongoing": ongoing,
            }
        ]
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_persisting_breach_is_one_alert_that_resolves(backend: str, tmp_path: Path, request) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    warehouse = Warehouse(url)
    request.addfinalizer(warehouse.engine.dispose)
    runs = [datetime(2026, 11, 26, 15, minute, tzinfo=UTC) for minute in (0, 5, 10, 15, 20)]
    for run, value in zip(runs[:3], (0.2, 0.3, 0.25), strict=True):
        stored = update_alerts(warehouse.read("alerts", "2026-11-26"), _breach("errors", value), run)
        warehouse.replace_day("2026-11-26", Write("alerts", stored))
    after_three = warehouse.read("alerts", "2026-11-26")
    assert len(after_three) == 1
    row = after_three.iloc[0]
    assert (row["value"], row["first_seen"], row["last_seen"]) == (0.25, pd.Timestamp(runs[0]), pd.Timestamp(runs[2]))
    assert pd.isna(row["resolved_at"])
    # The metric came back: the breach is over. Resolved once, it stays resolved at that run, even when
    # late data shows the breach again (a reopened alert would go out unannounced).
    for run, ongoing in zip(runs[3:], (False, True), strict=True):
        stored = update_alerts(warehouse.read("alerts", "2026-11-26"), _breach("errors", 0.25, ongoing), run)
        warehouse.replace_day("2026-11-26", Write("alerts", stored))
    resolved = warehouse.read("alerts", "2026-11-26")
    assert len(resolved) == 1
    assert (resolved.iloc[0]["first_seen"], resolved.iloc[0]["resolved_at"], resolved.iloc[0]["last_seen"]) == (
        pd.Timestamp(runs[0]),
        pd.Timestamp(runs[3]),
        pd.Timestamp(runs[4]),
    )


def test_an_open_alert_the_data_no_longer_shows_resolves() -> None:
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    opened = update_alerts(_breach("errors", 0.3).iloc[0:0], _breach("errors", 0.3), now)
    corrected = update_alerts(opened, _breach("errors", 0.3).iloc[0:0], now + timedelta(minutes=5))
    assert len(corrected) == 1 and corrected.iloc[0]["resolved_at"] == pd.Timestamp(now + timedelta(minutes=5))
    assert corrected.iloc[0]["last_seen"] == pd.Timestamp(now)


def test_late_rows_that_move_a_breach_keep_it_one_alert() -> None:
    """Rows landing late make the breach start five minutes earlier (or end later): the same breach, so the same
    alert (its first_seen, its resolution kept), not a second one beside the first resolved as gone. A breach
    elsewhere in the day is another alert."""
    now = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    over = update_alerts(_breach("errors", 0.3).iloc[0:0], _breach("errors", 0.3, ongoing=False), now)
    earlier = _breach("errors", 0.5, ongoing=False)
    earlier["window_start"] -= pd.Timedelta(minutes=5)
    later = _breach("errors", 0.2, ongoing=False)
    later["window_start"] += pd.Timedelta(hours=3)
    later["window_end"] += pd.Timedelta(hours=3)
    again = update_alerts(over, pd.concat([earlier, later], ignore_index=True), now + timedelta(hours=1))
    assert len(again) == 2
    first, other = again.iloc[0], again.iloc[1]
    assert (first["window_start"], first["value"]) == (pd.Timestamp("2026-11-26 13:55", tz="UTC"), 0.5)
    assert first["first_seen"] == first["resolved_at"] == pd.Timestamp(now)  # as first seen and resolved
    assert other["first_seen"] == pd.Timestamp(now + timedelta(hours=1))  # a new breach


def _as_of(tables: Tables, clock: str) -> tuple[Tables, datetime]:
    """The incident day's tables as a run at `clock` (UTC) sees them: only rows that have landed."""
    cut = pd.Timestamp(f"{INCIDENT} {clock}", tz="UTC")
    seen = dataclasses.replace(
        tables,
        minute_metrics=tables.minute_metrics[tables.minute_metrics["start"] < cut],
        requests=tables.requests[tables.requests["timestamp"] < cut],
    )
    return seen, cut.to_pydatetime()


@pytest.mark.pipeline
def test_during_the_day_a_breach_is_open_while_it_lasts_and_resolves_once_the_metric_is_back(demo) -> None:
    home, _ = demo
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    rules = load_rules()
    full = Tables.read(warehouse, INCIDENT, rules, warehouse.read("requests", INCIDENT.isoformat()))
    stored = warehouse.read("alerts").iloc[0:0]
    states = {}
    for clock in ("14:12", "14:20", "14:50", "14:55", "16:05"):
        tables, now = _as_of(full, clock)
        stored = update_alerts(stored, evaluate(rules, tables, INCIDENT, "UTC", now), now)
        states[clock] = {
            (row.rule, f"{row.window_start:%H:%M}"): "open" if pd.isna(row.resolved_at) else f"{row.resolved_at:%H:%M}"
            for row in stored.itertuples()
        }
    # The incident's 5-minute windows (requests, errors): 14:10 (24, 7), 14:15 (16, 5), 14:20 (18, 9),
    # 14:25 (13, 5), 14:30 (28, 3), ..., 14:45 (28, 7), 14:50 (20, 0). Below 20 requests error_rate_5m
    # cannot judge a window, so such windows neither fire nor end a breach.
    minutes = full.minute_metrics
    five = minutes.groupby(minutes["start"].dt.floor("5min"))[["requests", "errors"]].sum()
    clocks = ("14:10", "14:15", "14:20", "14:25", "14:30", "14:45", "14:50")
    recount = [_window(warehouse, INCIDENT, clock, 5) for clock in clocks]  # from the requests, not minute_metrics
    assert (
        [tuple(five.loc[pd.Timestamp(f"{INCIDENT} {clock}", tz="UTC")]) for clock in clocks]
        == [(len(rows), _failed(rows).sum()) for rows in recount]
        == [(24, 7), (16, 5), (18, 9), (13, 5), (28, 3), (28, 7), (20, 0)]
    )
    assert states["14:12"] == {}  # the 14:10 window is two minutes old: too few requests yet
    # The 14:15-14:25 windows are too thin to say the burst is over; the latency spike goes on in its hour.
    assert states["14:20"] == {("latency_p95_spike", "14:00"): "open", ("error_rate_5m", "14:10"): "open"}
    # 14:30 (28 requests, 11%) ended at 14:35: the first burst is over; the second began at 14:45.
    assert states["14:50"] == {
        ("latency_p95_spike", "14:00"): "open",
        ("error_rate_1h", "14:00"): "open",
        ("latency_p95_1h", "14:00"): "open",
        ("error_rate_5m", "14:10"): "14:50",
        ("error_rate_5m", "14:45"): "open",
    }
    assert states["14:55"] == {**states["14:50"], ("error_rate_5m", "14:45"): "14:55"}  # 14:50: 21 requests, 0 errors
    # An hour's rules judge the next hour once it has ended: the 15:00 window at 16:00.
    assert states["16:05"] == {
        **states["14:55"],
        ("latency_p95_spike", "14:00"): "16:05",
        ("error_rate_1h", "14:00"): "16:05",
        ("latency_p95_1h", "14:00"): "16:05",
    }
    first_seen = {row.rule: f"{row.first_seen:%H:%M}" for row in stored.itertuples() if row.rule != "error_rate_5m"}
    assert first_seen == {"latency_p95_spike": "14:20", "error_rate_1h": "14:50", "latency_p95_1h": "14:50"}


def _five_minute_tables(windows: list[tuple[int, int]]) -> Tables:
    """Tables holding only per-minute counts: (requests, errors) of 5-minute windows from 10:00 on the incident day."""
    day = INCIDENT.isoformat()
    starts = pd.date_range(f"{day} 10:00", periods=len(windows), freq="5min", tz="UTC")
    minute_metrics = pd.DataFrame(
        {
            "day": day,
            "start": starts,
            "requests": [float(requests) for requests, _ in windows],
            "errors": [float(errors) for _, errors in windows],
        }
    )
    empty = {name: pd.DataFrame(columns=["day", *columns]) for name, columns in TABLE_COLUMNS.items()}
    requests = pd.DataFrame(columns=["day", *REQUEST_COLUMNS])
    stored = pd.DataFrame(columns=list(WINDOW_COLUMNS))
    return Tables(**{**empty, "minute_metrics": minute_metrics}, requests=requests, windows=stored)


def _at(clock: str) -> datetime:
    return datetime.fromisoformat(f"{INCIDENT}T{clock}+00:00")


def _rule(**raw: object) -> tuple[Rule, ...]:
    return (parse_rule({"name": "r", "window": "5m", **raw}, "r"),)


def _found(breaches: pd.DataFrame) -> list[tuple]:
    return [
        (f"{row.window_start:%H:%M}", f"{row.window_end:%H:%M}", row.value, row.requests, row.ongoing)
        for row in breaches.itertuples()
    ]


def test_back_to_back_breaching_windows_are_one_alert() -> None:
    # 10 requests per window; 10:10-10:25 and 10:30 breach.
    tables = _five_minute_tables([(10, e) for e in (0, 1, 3, 4, 2, 0, 5)])
    burst = _rule(metric="error_rate", comparison=">", threshold=0.15)
    got = _found(evaluate(burst, tables, INCIDENT, "UTC", _at("10:42")))
    # 10:10-10:25 is one breach at its worst window (10:15, 4 of 10); 10:30 is the newest window: still going.
    assert got == [("10:10", "10:25", pytest.approx(0.4), 10, False), ("10:30", "10:35", pytest.approx(0.5), 10, True)]


def test_a_breach_ends_only_when_a_later_window_has_ended_with_enough_requests() -> None:
    burst = _rule(metric="error_rate", comparison=">", threshold=0.2, min_requests=20)
    one_request_after = _five_minute_tables([(25, 10), (1, 0)])
    assert _found(evaluate(burst, one_request_after, INCIDENT, "UTC", _at("10:05:20"))) == [
        ("10:00", "10:05", pytest.approx(0.4), 25, True)
    ]
    # Ended, but too thin to judge: still going. Ended with 25 clean requests: over.
    assert _found(evaluate(burst, one_request_after, INCIDENT, "UTC", _at("10:11")))[0][-1] is True
    back = _five_minute_tables([(25, 10), (25, 0)])
    assert _found(evaluate(burst, back, INCIDENT, "UTC", _at("10:07")))[0][-1] is True
    assert _found(evaluate(burst, back, INCIDENT, "UTC", _at("10:11")))[0][-1] is False


def test_a_below_rule_waits_for_its_window_to_end() -> None:
    quiet = _rule(metric="requests_per_minute", comparison="<", threshold=1.0)
    tables = _five_minute_tables([(20, 0), (2, 0)])
    assert evaluate(quiet, tables, INCIDENT, "UTC", _at("10:07")).empty  # 10:05 has only begun
    assert _found(evaluate(quiet, tables, INCIDENT, "UTC", _at("10:10"))) == [
        ("10:05", "10:10", pytest.approx(0.4), 2, True)
    ]


def test_a_baseline_compares_the_same_clock_time_across_a_clock_change() -> None:
    """New York's clocks went back on 2026-11-01 (a 25-hour day): the next day's 10:00 is compared with that day's
    10:00, not with 09:00 (ten hours after its midnight), which made a busy hour that is busy every day a spike."""
    tz = "America/New_York"
    frames = []
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        start, end = (pd.Timestamp(bound) for bound in day_bounds(day, tz))
        minutes = pd.date_range(start, end, freq="min", inclusive="left")
        counts = np.where(minutes.tz_convert(tz).hour == 10, 4.0, 1.0)  # 240 requests at 10:00, else 60 an hour
        frames.append(pd.DataFrame({"day": day.isoformat(), "start": minutes, "requests": counts, "errors": 0.0}))
    tables = dataclasses.replace(_five_minute_tables([]), minute_metrics=pd.concat(frames, ignore_index=True))
    raw = {"name": "spike", "metric": "requests_per_hour", "comparison": ">", "threshold": 3, "window": "1h"}
    spike = (parse_rule({**raw, "baseline": {"method": "ratio", "days": 1, "min_days": 1}}, "r"),)
    day = date(2026, 11, 2)
    assert evaluate(spike, tables, day, tz, datetime(2026, 11, 3, 12, tzinfo=UTC)).empty


def test_cost_per_day_is_the_spend_with_or_without_a_model() -> None:
    """The spend, as budgets count it: a log without costs (most provider responses) is judged on its estimate
    (the day's logged cost, NULL there, never fired), and a model's rule on the same kind of number."""
    day = INCIDENT.isoformat()
    daily = pd.DataFrame({"day": [day], "requests": [320], "spend_usd": [6.0]})
    models = pd.DataFrame({"day": day, "model": ["gpt-4o", "o3"], "requests": [300, 20], "spend_usd": [4.5, 1.5]})
    tables = dataclasses.replace(_five_minute_tables([]), daily_metrics=daily, model_costs=models)

    def cost(**extra: object) -> tuple[Rule, ...]:
        raw = {"name": "cost", "metric": "cost_per_day", "comparison": ">", "threshold": 4, "window": "1d", **extra}
        return (parse_rule(raw, "r"),)

    end = datetime.combine(INCIDENT + timedelta(days=1), datetime.min.time(), UTC)
    assert evaluate(cost(), tables, INCIDENT, "UTC", end)["value"].tolist() == [6.0]
    assert evaluate(cost(model="gpt-4o"), tables, INCIDENT, "UTC", end)["value"].tolist() == [4.5]
    assert evaluate(cost(model="o3"), tables, INCIDENT, "UTC", end).empty


@pytest.mark.parametrize("method", ["ratio", "mad"])
def test_a_spike_in_an_hour_that_is_always_empty_fires(method: str) -> None:
    """Seven days with no request at 07:00, then 300: a history of zeros has median and MAD 0, which scored
    nothing (the spike went silent); it scores infinitely above them. An hour empty then and now stays silent."""
    days = [INCIDENT - timedelta(days=back) for back in range(7, -1, -1)]
    frames = []
    for day in days:
        minutes = pd.date_range(f"{day} 00:00", periods=24 * 60, freq="min", tz="UTC")
        busy = (minutes.hour >= 9) & (minutes.hour < 18)  # office hours, every day
        counts = np.where(busy, 2.0, 0.0)
        if day == INCIDENT:
            counts[minutes.hour == 7] = 5.0  # 300 in the hour
        frames.append(pd.DataFrame({"day": day.isoformat(), "start": minutes, "requests": counts, "errors": 0.0}))
    tables = dataclasses.replace(_five_minute_tables([]), minute_metrics=pd.concat(frames, ignore_index=True))
    spike = (
        parse_rule(
            {
                "name": "traffic_spike",
                "metric": "requests_per_hour",
                "comparison": ">",
                "threshold": 3,
                "window": "1h",
                "min_requests": 50,
                "baseline": {"method": method, "days": 7, "min_days": 5},
            },
            "r",
        ),
    )
    found = evaluate(
        spike, tables, INCIDENT, "UTC", datetime.combine(INCIDENT + timedelta(days=1), datetime.min.time(), UTC)
    )
    assert [(f"{row.window_start:%H:%M}", row.value, row.baseline) for row in found.itertuples()] == [
        ("07:00", 300.0, 0.0)
    ]


@pytest.mark.pipeline
def test_min_requests_silences_a_rule_on_the_demo_tables(demo) -> None:
    home, _ = demo
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    rules = load_rules()
    today = warehouse.read("requests", INCIDENT.isoformat())
    tables = Tables.read(warehouse, INCIDENT, rules, today)
    quiet = [r for r in rules if r.name == "error_rate_5m"]
    loud = tuple(type(r)(**{**r.__dict__, "min_requests": 10_000}) for r in quiet)
    after = datetime(2026, 11, 27, tzinfo=UTC)
    assert len(evaluate(tuple(quiet), tables, INCIDENT, "UTC", after)) == 2
    assert evaluate(loud, tables, INCIDENT, "UTC", after).empty


@pytest.mark.pipeline
def test_baselines_read_stored_windows_and_fall_back_to_requests_for_a_day_without_them(demo, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo[0], home)
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    rules = load_rules()
    today = warehouse.read("requests", INCIDENT.isoformat())
    after = datetime(2026, 11, 27, tzinfo=UTC)
    stored = Tables.read(warehouse, INCIDENT, rules, today)
    # The demo ran its days in order, so every earlier day's windows were stored by its own run.
    assert set(stored.requests["day"]) == {INCIDENT.isoformat()}
    assert sorted(set(stored.windows["day"])) == [day.isoformat() for day in DAYS[:5]]
    assert set(stored.windows["series"]) == {"latency_p95_ms/1h/*"}
    expected = evaluate(rules, stored, INCIDENT, "UTC", after)
    baseline = np.median(_hour_p95_before(warehouse))  # from the stored requests, not the stored windows
    assert expected.loc[expected["rule"] == "latency_p95_spike", "baseline"].tolist() == [pytest.approx(baseline)]

    # A day whose windows were never stored (run before the rule existed) is read from its requests.
    missing = DAYS[2].isoformat()
    kept = warehouse.read("alert_windows", missing)
    warehouse.replace_day(missing, Write("alert_windows", kept.iloc[0:0]))
    fallback = Tables.read(warehouse, INCIDENT, rules, today)
    assert sorted(set(fallback.requests["day"])) == [missing, INCIDENT.isoformat()]
    assert missing not in set(fallback.windows["day"])
    recomputed = window_series(rules, fallback, INCIDENT, "UTC")[missing]
    assert len(kept) == 24 and recomputed["window_start"].tolist() == kept["window_start"].tolist()
    assert recomputed["value"].tolist() == pytest.approx(kept["value"].tolist())
    pd.testing.assert_frame_equal(evaluate(rules, fallback, INCIDENT, "UTC", after), expected)

    # The next run of the day stores what it had to read, so the run after reads windows only.
    config = home / "chatpulse.yaml"
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    assert job.execute_in_process(partition_key=INCIDENT.isoformat(), instance=DagsterInstance.ephemeral()).success
    assert set(Tables.read(warehouse, INCIDENT, rules, today).requests["day"]) == {INCIDENT.isoformat()}


@pytest.mark.pipeline
def test_a_baseline_series_without_traffic_is_stored_empty_and_not_read_again(demo, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo[0], home)
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    rules = (
        parse_rule(
            {"name": "absent", "metric": "latency_p95_ms", "comparison": ">", "threshold": 6, "model": "absent",
             "baseline": {"method": "mad"}},
            "rules[0]",
        ),
    )  # fmt: skip
    today = warehouse.read("requests", INCIDENT.isoformat())
    first = Tables.read(warehouse, INCIDENT, rules, today)
    assert sorted(set(first.requests["day"])) == [day.isoformat() for day in DAYS[:6]]  # never stored: all read
    for day, rows in window_series(rules, first, INCIDENT, "UTC").items():
        assert rows[["series", "requests"]].values.tolist() == [["latency_p95_ms/1h/absent", 0]]
        assert rows["value"].isna().all() and rows["window_start"].tolist() == [pd.Timestamp(day, tz="UTC")]
        warehouse.replace_day(day, Write("alert_windows", rows))
    assert set(Tables.read(warehouse, INCIDENT, rules, today).requests["day"]) == {INCIDENT.isoformat()}


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
        # A webhook URL carries its token: a wrong one is never quoted back.
        (
            {"alert_webhook": {"url": "ftp://hooks/T0/s3cret"}},
            "alert_webhook.url: expected an http(s) URL (the value is not shown: it may hold a secret)",
        ),
        ({"alert_webhook": ["https://hooks/T0/s3cret"]}, "alert_webhook: expected a URL or a mapping with url"),
        (
            {"alert_webhook": {"url": "http://x", "format": "teams"}},
            "alert_webhook.format: expected one of json, slack",
        ),
        ({"sensor_interval_seconds": 0}, "sensor_interval_seconds: expected a whole number of seconds, at least 1"),
        (
            {"alert_webhook": {"url": "http://x", "retries": -1}},
            "alert_webhook.retries: expected a whole number, got -1",
        ),
        (
            {"mail": {"host": "h", "sender": "a@x", "recipients": ["b@x"], "port": True}},
            "mail.port: expected a port number, got True",
        ),
    ):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}") as error:
            settings_from_mapping(bad, tmp_path, {})
        assert "s3cret" not in str(error.value)


@pytest.mark.pipeline
def test_the_incident_stays_five_alerts_over_three_runs_each_resolved_once(demo, tmp_path: Path) -> None:
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
    assert len(third) == 5
    assert third["first_seen"].tolist() == first["first_seen"].tolist()
    assert third["resolved_at"].tolist() == first["resolved_at"].tolist()  # not reopened, not resolved again
    assert (third["last_seen"] > first["last_seen"]).all()
    # The same day rewritten without the incident (a corrected log): the alerts stay, resolved as they were.
    write_sample(home / "landing", [INCIDENT], incident_day=date(2000, 1, 1))
    assert job.execute_in_process(partition_key=INCIDENT.isoformat(), instance=instance).success
    corrected = warehouse.read("alerts", INCIDENT.isoformat())
    # The incident's alerts (the corrected day's own traffic may breach a rule of its own: not compared here).
    key = ["rule", "window_start"]
    corrected = first[key].merge(corrected, on=key, how="left")
    assert corrected["resolved_at"].tolist() == first["resolved_at"].tolist()
    assert corrected["last_seen"].tolist() == third["last_seen"].tolist()


@pytest.mark.pipeline
def test_the_report_opens_with_the_incident_alerts_and_the_index_marks_the_day(demo) -> None:
    home, _ = demo
    stored = Warehouse(f"sqlite:///{home / 'warehouse.db'}").read("alerts", INCIDENT.isoformat())
    count = f"{len(stored)} alerts, {int(stored['resolved_at'].isna().sum())} open"
    incident = (home / "reports" / f"{INCIDENT.isoformat()}.html").read_text()
    alerts = incident[incident.index('<section class="alerts"') : incident.index("</section>")]
    assert incident.index('<section class="alerts"') < incident.index('<section class="cards"')  # above the cards
    assert f"<h2>Alerts: {count}</h2>" in alerts and alerts.count("<li ") == len(stored) == 5
    assert "latency_p95_spike" in alerts and "14:10–14:15 UTC" in alerts and "17.1%" in alerts
    assert alerts.count('class="pill error"') == (stored["severity"] == "error").sum()
    index = (home / "reports" / "index.html").read_text()
    for day in DAYS:
        row = index[index.index(f'<a href="{day.isoformat()}.html">') :].split("</tr>")[0]
        if day == INCIDENT:
            assert f'<span class="pill error">{count}</span>' in row  # the worst severity's colour
        else:
            assert "<h2>Alerts" not in (home / "reports" / f"{day.isoformat()}.html").read_text()
            assert "pill" not in row


@pytest.mark.pipeline
def test_the_incident_day_is_mailed_with_its_alert_count_in_the_subject(demo, smtp, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo[0], home)
    inbox, port = smtp
    settings = MailSettings(
        host="127.0.0.1", port=port, security="none", sender="r@example.com", recipients=("ops@example.com",)
    )
    warehouse = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    stored = warehouse.read("alerts", INCIDENT.isoformat())
    assert deliver(INCIDENT, settings, warehouse, report_file(home / "reports", INCIDENT)) is not None
    (message,) = inbox.messages
    count = f"{len(stored)} alerts, {int(stored['resolved_at'].isna().sum())} open"
    assert message["Subject"].startswith(f"ChatPulse {INCIDENT.isoformat()}: {count} · ")
    text = message.get_payload()[0].get_content()
    listed = [line for line in text.splitlines() if line.startswith(("open ", "resolved "))]
    assert f"Alerts: {count}" in text and len(listed) == len(stored)
    for row in stored.itertuples():  # rule, severity and window of each, no user content
        assert any(
            row.rule in line and row.severity in line and f"{row.window_start:%H:%M}–" in line for line in listed
        )
    quiet = INCIDENT - timedelta(days=1)
    assert deliver(quiet, settings, warehouse, report_file(home / "reports", quiet)) is not None
    assert (
        "alert" not in inbox.messages[1]["Subject"]
        and "Alerts:" not in inbox.messages[1].get_payload()[0].get_content()
    )
