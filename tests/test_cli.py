"""The `chatpulse` command as a user runs it: demo, run, generate, and the errors it explains.

The commands run in this process through click's CliRunner; the console script is run as a process.
"""

import csv
import gzip
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
import traceback
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster_shared.error import SerializableErrorInfo

from chatpulse.config import CONFIG_ENV
from chatpulse.daystate import STEPS, StepRun, day_state, describe
from chatpulse.ingest.files import ExtractError
from chatpulse.pipelines.cli import cli, run_error
from chatpulse.warehouse import Warehouse, Write

from fixtures import ROOT, embedded_charts, write_jsonl
from fixtures import invoke_cli as chatpulse


@pytest.mark.pipeline
def test_demo_generates_runs_and_prints_the_report(tmp_path: Path) -> None:
    result = chatpulse("demo", "--days", "2", CHATPULSE_HOME=str(tmp_path), DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"\[1/2\] \d{4}-\d\d-\d\d done in [\d.]+ s", lines[-3])
    report = Path(lines[-1].removeprefix("report: "))
    assert report.parent == tmp_path / "reports" and report.is_file()
    pngs = {p.name: p.read_bytes() for p in report.with_suffix("").glob("*.png")}
    assert set(pngs) == {
        "requests_per_hour.png", "latency_distribution.png", "error_rate_by_hour.png", "error_rate_by_kind.png",
        "session_length.png", "scenarios.png", "tokens_and_cost.png", "daily_trends.png",
    }  # fmt: skip
    embedded = sorted((f"{name}.png", data) for name, data in embedded_charts(report.read_text()))
    assert embedded == sorted(pngs.items())  # the page carries every chart, each once
    assert f'href="{report.name}"' in (report.parent / "index.html").read_text()
    daily = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").read("daily_metrics", report.stem).iloc[0]
    assert daily["requests"] > 500
    shown = re.search(r'"label">Requests</div>\s*<div class="value">([\d,]+)<', report.read_text()).group(1)
    assert shown == f"{daily['requests']:,}"
    # Without a configuration of its own the demo runs on its spend settings, written into the data home.
    assert (tmp_path / "demo.yaml").is_file()
    assert all(f"<h2>{title}</h2>" in report.read_text() for title in ("Who spends", "Budgets", "Provider bill"))
    # The newest day has the incident: its report opens with the alerts it fired.
    assert "<h2>Alerts: " in report.read_text()
    assert "findfont" not in result.stderr


@pytest.mark.pipeline
def test_demo_announces_its_deliberately_broken_lines_before_the_runs_warn_of_them(tmp_path: Path) -> None:
    result = chatpulse("demo", "--days", "2", CHATPULSE_HOME=str(tmp_path), DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    (said,) = [n for n, line in enumerate(lines) if "deliberately broken" in line]
    assert said < next(n for n, line in enumerate(lines) if line.startswith("[1/2]"))  # before any run
    found = re.fullmatch(
        r"the sample has (\d+) deliberately broken lines \((\d+) malformed, (\d+) invalid\) and (\d+) repeated ones, "
        r"to show the quarantine: the runs below set them aside with a 'quarantined \.\.\. rows' warning each day; "
        r"see each report's Data quality section and the quarantine table",
        lines[said],
    )
    assert found, lines[said]
    broken, malformed, invalid, repeated = (int(n) for n in found.groups())
    # The same numbers, counted another way: lines that are not JSON in the landing files, and what the runs
    # quarantined and counted as duplicates.
    not_json = 0
    for path in (tmp_path / "landing").glob("*.jsonl.gz"):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                not_json += 1
    quality = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").read("data_quality")
    assert (broken, malformed, invalid) == (malformed + invalid, not_json, broken - not_json)
    assert (int(quality["quarantined"].sum()), int(quality["duplicates"].sum())) == (broken, repeated)
    assert broken > 0 and repeated > 0
    # Each day's warning names exactly the rows it quarantined.
    warned = [int(n) for n in re.findall(r"quarantined (\d+) \w+ rows", result.stderr)]
    assert sorted(warned) == sorted(int(n) for n in quality["quarantined"] if n)


@pytest.mark.pipeline
def test_an_unreadable_file_fails_only_the_days_it_could_hold_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "landing" / "requests-2026-11-25.jsonl.gz"
    write_jsonl(tmp_path / "landing" / "requests.jsonl", [{"timestamp": "2026-11-20T10:00:00Z"}])
    broken.write_bytes(b"not gzip")
    env = {"CHATPULSE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "d")}
    other_day = chatpulse("run", "--start", "2026-11-20", **env)
    assert other_day.exit_code == 0, other_day.stderr
    its_day = chatpulse("run", "--start", "2026-11-25", **env)
    assert its_day.exit_code == 2
    # That one line, not a stack trace per failed step and a line per step left out before it (the run's
    # event log in the UI keeps them).
    assert its_day.stderr.strip().splitlines() == [
        f"chatpulse: error: run for 2026-11-25 failed: {broken}: cannot read file: Not a gzipped file (b'no')"
    ]


def test_a_failed_steps_error_is_the_one_the_step_raised_with_its_file_and_line() -> None:
    """The chain Dagster records for a step that raised ExtractError from a csv.Error, read as Dagster writes it."""

    def info(exc: BaseException, cause: SerializableErrorInfo | None = None) -> SerializableErrorInfo:
        message = "".join(traceback.format_exception_only(type(exc), exc))
        return SerializableErrorInfo(message, [], type(exc).__name__, cause)

    csv_error = info(csv.Error("field larger than field limit (131072)"))
    extract = info(ExtractError("/data/landing/requests.csv: line 3: field larger than field limit"), csv_error)
    wrapper = (
        'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "raw_requests":'
    )
    step = SerializableErrorInfo(wrapper + "\n", [], "DagsterExecutionStepExecutionError", extract)
    assert run_error(step) == "/data/landing/requests.csv: line 3: field larger than field limit"
    assert run_error(info(KeyError("model"))) == "KeyError: 'model'"  # not ours: the class name says what it is
    # After a retry policy's last try: "Exceeded max_retries of 3", raised from the step's own error.
    mail = info(ConnectionRefusedError(111, "Connection refused"))
    retried = SerializableErrorInfo("Exceeded max_retries of 3\n", [], "RetryRequestedFromPolicy", mail)
    assert run_error(retried) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_a_configuration_error_names_the_key(tmp_path: Path) -> None:
    config = _bad_config(tmp_path)
    result = chatpulse("--config", str(config), "run", "--start", "2026-11-20")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"chatpulse: error: {config}: sources[0].latency_unit: expected one of ms, s, got 'minutes' (line 4)"
    )


def _bad_config(folder: Path) -> Path:
    config = folder / "bad.yaml"
    config.write_text("sources:\n  - kind: requests\n    pattern: '*.csv'\n    latency_unit: minutes\n")
    return config


def test_the_configuration_comes_from_the_environment_or_after_the_command(tmp_path: Path) -> None:
    config = _bad_config(tmp_path)
    error = f"chatpulse: error: {config}: sources[0].latency_unit: expected one of ms, s, got 'minutes' (line 4)\n"
    from_env = chatpulse("run", "--start", "2026-11-20", CHATPULSE_CONFIG=str(config))
    after = chatpulse("run", "--config", str(config), "--start", "2026-11-20")
    assert (from_env.exit_code, from_env.stderr) == (after.exit_code, after.stderr) == (2, error)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["run", "--start", "2026-13-01"],
            "Invalid value for '--start': expected a day YYYY-MM-DD, got '2026-13-01' (see 'chatpulse run --help')",
        ),
        (["run", "--start", "2026-11-20", "--end", "2026-11-19"], "--end 2026-11-19 is before --start 2026-11-20"),
        (["send-report"], "Missing option '--date'. (see 'chatpulse send-report --help')"),
        (
            ["send-report", "--date", "2026-11-20"],
            "no mail settings: add a `mail` section to the configuration (see the README)",
        ),
        (
            ["convert-oasst", "missing.jsonl"],
            "Invalid value for 'SOURCE': File 'missing.jsonl' does not exist. (see 'chatpulse convert-oasst --help')",
        ),
        (["--config", "missing.yaml", "generate"], "cannot read config file missing.yaml: No such file or directory"),
        (["nonsense"], "No such command 'nonsense'. (see 'chatpulse --help')"),
    ],
)
def test_a_usage_error_is_one_line_on_stderr(args: list[str], error: str, tmp_path: Path) -> None:
    result = chatpulse(*args, CHATPULSE_HOME=str(tmp_path))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"chatpulse: error: {error}\n")


def test_generate_writes_the_sample_and_says_what(tmp_path: Path) -> None:
    result = chatpulse("generate", "--days", "1", "--requests-per-day", "150", CHATPULSE_HOME=str(tmp_path))
    assert result.exit_code == 0, result.stderr
    counts = re.fullmatch(
        rf"wrote sample data for (\S+) \.\. (\S+) to {re.escape(str(tmp_path / 'landing'))}: "
        r"(\d+) requests, (\d+) messages, (\d+) feedback, (\d+) sessions\n",
        result.stdout,
    )
    assert counts is not None and counts[1] == counts[2] and int(counts[3]) >= 150
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "landing").iterdir()) == [
        "bills",  # the sample's bill (sample.bill): bills/openai-costs-DAY-DAY.json
        "feedback",
        "messages",
        "requests",
    ]
    too_few = chatpulse("generate", "--days", "1", "--requests-per-day", "5", CHATPULSE_HOME=str(tmp_path))
    assert (too_few.exit_code, too_few.stderr) == (
        2,
        "chatpulse: error: requests_per_day must be at least 100, got 5\n",
    )


def test_version_is_the_installed_package_version() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = chatpulse("--version")
    assert importlib.metadata.version("chatpulse") == declared
    assert (result.exit_code, result.stdout) == (0, f"chatpulse, version {declared}\n")


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        ([], ["[env var: CHATPULSE_CONFIG; default: (./chatpulse.yaml if it exists, else built-in defaults)]"]),
        (["demo"], ["--days INTEGER RANGE How many days before today. [default: 6; x>=1]"]),
        (["generate"], ["[default: 7; x>=1]", "[default: (about 3000 on weekdays, fewer at weekends)]"]),
        (["run"], ["--start DAY First day. [required]", "--end DAY Last day. [default: (the start day)]"]),
        (["convert-oasst"], ["--out DIRECTORY Folder to write into. [default: (the landing folder)]"]),
        (["serve-metrics"], ["[default: 127.0.0.1]", "[default: 9464; 0<=x<=65535]"]),
        (["ui"], ["[default: 3000; 1<=x<=65535]"]),
        (["status"], ["--days INTEGER RANGE How many days, ending today. [default: 7; x>=1]"]),
    ],
)
def test_help_shows_every_default(command: list[str], defaults: list[str]) -> None:
    result = chatpulse(*command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # the help wraps to the terminal's width
    for default in defaults:
        assert default in text


@pytest.mark.subprocess
def test_the_console_script_runs_as_a_process(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("chatpulse")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout == f"chatpulse, version {importlib.metadata.version('chatpulse')}\n"
    config = _bad_config(tmp_path)
    failed = subprocess.run(
        [script, "--config", config, "run", "--start", "2026-11-20"], capture_output=True, text=True, timeout=60
    )
    assert (failed.returncode, failed.stdout) == (2, "")
    assert (
        failed.stderr
        == f"chatpulse: error: {config}: sources[0].latency_unit: expected one of ms, s, got 'minutes' (line 4)\n"
    )


@pytest.mark.parametrize(
    ("day", "why"), [("2020-01-01", "before start_date 2026-01-01"), ("2099-01-01", "after today")]
)
def test_days_that_are_never_run_are_refused_naming_those_that_are(tmp_path: Path, day: str, why: str) -> None:
    write_jsonl(tmp_path / "landing" / "requests.jsonl", [{"timestamp": f"{day}T00:00:00Z"}])
    result = chatpulse("run", "--start", day, CHATPULSE_HOME=str(tmp_path))
    today = datetime.now(UTC).date()  # the default time zone is UTC
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"chatpulse: error: day {day} is {why}: the days that can be run are 2026-01-01 (start_date) "
        f"to {today} (today in UTC)\n"
    )


@pytest.mark.pipeline
def test_a_missing_landing_folder_fails_the_run_and_keeps_the_day(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "landing" / "requests.jsonl", [{"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 5}] * 3)
    env = {"CHATPULSE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "d")}
    assert chatpulse("run", "--start", "2026-11-20", **env).exit_code == 0
    (tmp_path / "landing").rename(tmp_path / "unmounted")
    result = chatpulse("run", "--start", "2026-11-20", **env)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"chatpulse: error: run for 2026-11-20 failed: landing folder {tmp_path / 'landing'} does not exist "
        "(see landing_dir)"
    )
    daily = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").read("daily_metrics", "2026-11-20")
    assert daily["requests"].tolist() == [3]  # the day loaded before is still there


@pytest.mark.pipeline
def test_a_range_runs_every_day(tmp_path: Path) -> None:
    lines = [{"timestamp": f"2026-11-{d}T12:00:00Z", "latency_ms": 5} for d in (20, 21, 22)]
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests.jsonl.gz").write_bytes(
        gzip.compress("\n".join(json.dumps(line) for line in lines).encode())
    )
    result = chatpulse(
        "run",
        "--start",
        "2026-11-20",
        "--end",
        "2026-11-22",
        CHATPULSE_HOME=str(tmp_path),
        DAGSTER_HOME=str(tmp_path / "d"),
    )
    assert result.exit_code == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    # 2026-11-22 is a Sunday: its run also writes the week that began on Monday the 16th.
    assert sorted(p.name for p in (tmp_path / "reports").glob("*.html")) == [
        "2026-11-20.html",
        "2026-11-21.html",
        "2026-11-22.html",
        "index.html",
        "week-2026-11-16.html",
    ]


def test_status_prints_each_days_state(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=back)).isoformat() for back in (3, 2, 1, 0)]
    (tmp_path / "chatpulse.yaml").write_text(f"data_home: .\nstart_date: {days[0]}\n")
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.replace_day(days[0], Write("daily_metrics", pd.DataFrame({"requests": [5]})))  # run before records
    at = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    for number, step in enumerate(STEPS):
        for day in days[1:3]:
            warehouse.replace_day(day, done=StepRun(step, "run-1", at + timedelta(seconds=number)))
    warehouse.replace_day(days[2], done=StepRun("clean_requests", "run-2", at + timedelta(hours=1)))  # then cut
    result = chatpulse("--config", str(tmp_path / "chatpulse.yaml"), "status", "--days", "6")
    assert result.exit_code == 0, result.stderr
    records = warehouse.read("day_steps")
    expected = [
        f"{days[0]}  no record   (run before day states were recorded: run it again to record one)",
        *describe(days[1], day_state(days[1], records), False, "UTC"),
        *describe(days[2], day_state(days[2], records), False, "UTC"),
        f"{days[3]}  not run",
        f"1 incomplete: run again with chatpulse run --start {days[2]}",
    ]  # two days before start_date are not shown
    assert result.stdout.splitlines() == expected
    assert expected[1].split()[1] == "complete" and expected[2].split()[1] == "incomplete"
    assert "stale: daily_report" in result.stdout and days[2] in result.stdout.splitlines()[-1]
    # A backfill's days by their dates, however long ago: the same lines for the days chosen.
    chosen = chatpulse("--config", str(tmp_path / "chatpulse.yaml"), "status", "--start", days[1], "--end", days[2])
    assert chosen.stdout.splitlines() == expected[1:-2] + expected[-1:]
    wrong = chatpulse("--config", str(tmp_path / "chatpulse.yaml"), "status", "--start", days[2], "--end", days[1])
    assert wrong.exit_code != 0 and f"--end {days[1]} is before --start {days[2]}" in wrong.stderr


def test_a_warehouse_that_cannot_be_opened_is_one_line_in_every_command(tmp_path: Path) -> None:
    """status (and any command reading the warehouse) says why in one line, the URL's password hidden."""
    config = tmp_path / "chatpulse.yaml"  # nothing listens on port 1: refused at once
    config.write_text("data_home: .\ndatabase_url: postgresql+psycopg://cp:pw-s3cret@127.0.0.1:1/wh\n")
    result = chatpulse("--config", str(config), "status")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(
        "chatpulse: error: cannot open the warehouse postgresql+psycopg://cp:***@127.0.0.1:1/wh"
    )
    assert "Traceback" not in result.stderr and "pw-s3cret" not in result.stdout + result.stderr


def test_ui_after_the_demo_runs_on_the_demos_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make ui` after `make demo` (no configuration of one's own): a day run from the UI kept none of the demo's
    teams, budgets and bill, whose page sections it removed. The UI's processes are left out here (test_ui
    starts them): what is checked is the configuration handed to them."""
    from chatpulse.pipelines import child
    from chatpulse.sample.demo import write_demo_config

    monkeypatch.chdir(tmp_path)
    handed: list[str | None] = []
    monkeypatch.setattr(child, "run_group", lambda command: handed.append(os.environ.get(CONFIG_ENV)) or 0)
    env = {"CHATPULSE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    assert chatpulse("ui", **env).exit_code == 0 and handed == [None]  # no demo yet: the defaults
    demo = write_demo_config(tmp_path / "home")
    started = chatpulse("ui", **env)
    assert handed[-1] == str(demo.resolve()) and f"on the demo's, {demo}" in started.stdout
    (tmp_path / "chatpulse.yaml").write_text("data_home: home\n")  # one's own: used, the demo's left alone
    assert chatpulse("ui", **env).exit_code == 0 and handed[-1] is None


def test_status_says_which_past_days_report_was_not_mailed(tmp_path: Path) -> None:
    """A run whose mail failed after its retries wrote the whole day: complete, yet the report never left."""
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=back)).isoformat() for back in (2, 1, 0)]
    mail = "mail: {host: 127.0.0.1, security: none, sender: cp@x.org, recipients: [o@x.org]}\n"
    (tmp_path / "chatpulse.yaml").write_text(f"data_home: .\nstart_date: {days[0]}\n{mail}")
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    for day in days:
        warehouse.replace_day(day, Write("daily_metrics", pd.DataFrame({"requests": [5]})))
    sent = pd.DataFrame({"message_id": ["<m@x.org>"], "sent_at": [datetime.now(UTC)], "subject": ["s"]})
    warehouse.replace_day(days[1], Write("report_sends", sent))
    lines = chatpulse("--config", str(tmp_path / "chatpulse.yaml"), "status", "--days", "3").stdout.splitlines()
    unsent = [line.strip() for line in lines if "not mailed" in line]
    assert unsent == [f"report not mailed: chatpulse send-report --date {days[0]}"]  # today's is mailed tomorrow


@pytest.mark.parametrize(
    ("rules", "model", "error"),
    [
        ("rules: [{label: x, patterns: ['(']}]\n", None, "{rules}: rules[0].patterns[0]: not a valid RE2"),
        ("rules: [{label: x, keywords: [a, b}]\n", None, "{rules}: not valid YAML at line 1, column 35: "),
        (None, "absent.npz", "{model}: no such file; `chatpulse scenarios train --out {model}` writes one"),
        (None, "my_rules.yaml", "{model}: not a scenario model file (an .npz written by `chatpulse scenarios train`)"),
    ],
)
def test_a_wrong_scenario_file_fails_run_and_check_before_any_step(
    tmp_path: Path, rules: str | None, model: str | None, error: str
) -> None:
    """Not at the sessions step, after the steps before it wrote: the run starts no step at all."""
    write_jsonl(tmp_path / "landing" / "requests.jsonl", [{"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 5}])
    (tmp_path / "my_rules.yaml").write_text(rules or "rules: [{label: x, keywords: [a]}]\n", encoding="utf-8")
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: {tmp_path}\nscenario_rules: my_rules.yaml\n" + (f"scenario_model: {model}\n" if model else ""),
        encoding="utf-8",
    )
    said = error.format(rules=tmp_path / "my_rules.yaml", model=tmp_path / (model or ""))
    env = {"DAGSTER_HOME": str(tmp_path / "dagster")}
    for command in (["run", "--start", "2026-11-20"], ["check"]):
        result = chatpulse("--config", str(config), *command, **env)
        assert (result.exit_code, result.stdout) == (2, ""), result.output
        assert result.stderr.startswith(f"chatpulse: error: {said}") and result.stderr.count("\n") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["chatpulse.yaml", "landing", "my_rules.yaml"]


def test_a_wrong_alert_rules_file_fails_run_and_check_before_any_step(tmp_path: Path) -> None:
    """It failed the alerts step, after the day's tables were written: no report, no mail, and check said nothing."""
    (tmp_path / "alerts.yaml").write_text(
        'rules:\n  - {name: spend, metric: cost_per_day, window: 1h, comparison: ">", threshold: 5}\n',
        encoding="utf-8",
    )
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"data_home: {tmp_path / 'home'}\nalert_rules: alerts.yaml\n", encoding="utf-8")
    for command in (["run", "--start", date.today().isoformat()], ["check"]):
        result = CliRunner().invoke(cli, ["--config", str(config), *command])
        assert result.exit_code == 2, result.output
        assert f"{tmp_path / 'alerts.yaml'}: rules[0]" in result.output and "window" in result.output
    assert not (tmp_path / "home").exists()  # no step ran, nothing was written


@pytest.mark.pipeline
def test_a_failed_cli_run_is_mailed_with_its_error(tmp_path: Path, smtp) -> None:
    """The run_failure_mail sensor never sees a `chatpulse run` (a cron job's), so its failure went unsaid."""
    inbox, port = smtp
    broken = tmp_path / "landing" / "requests-2026-11-25.jsonl.gz"
    broken.parent.mkdir()
    broken.write_bytes(b"not gzip")
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: {tmp_path}\nmail: {{host: 127.0.0.1, port: {port}, security: none, sender: cp@x.org,"
        " recipients: [ops@x.org]}\n",
        encoding="utf-8",
    )
    result = chatpulse("--config", str(config), "run", "--start", "2026-11-25", DAGSTER_HOME=str(tmp_path / "d"))
    error = f"{broken}: cannot read file: Not a gzipped file (b'no')"
    assert result.exit_code == 2 and result.stderr.strip() == f"chatpulse: error: run for 2026-11-25 failed: {error}"
    [message] = inbox.messages
    assert message["Subject"] == "ChatPulse: daily_pipeline failed for 2026-11-25"
    assert message.get_content().replace("\r\n", "\n").endswith(f"for 2026-11-25 failed:\n\n{error}\n")
