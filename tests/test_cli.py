"""The `chatpulse` command as a user runs it: demo, run, and the errors it explains."""

import pytest
import gzip
import json
import re
from pathlib import Path

from chatpulse.warehouse import Warehouse
from fixtures import run_cli, write_jsonl
from tests.test_report import embedded_charts


@pytest.mark.subprocess
def test_demo_generates_runs_and_prints_the_report(tmp_path: Path) -> None:
    result = run_cli("demo", "--days", "2", CHATPULSE_HOME=str(tmp_path), DAGSTER_HOME=str(tmp_path / "dagster"))
    assert result.returncode == 0, result.stderr
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


@pytest.mark.subprocess
def test_an_unreadable_file_fails_the_run_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests-broken.jsonl.gz").write_bytes(b"not gzip")
    result = run_cli("run", "--start", "2026-11-20", CHATPULSE_HOME=str(tmp_path), DAGSTER_HOME=str(tmp_path / "d"))
    assert result.returncode == 2
    assert "requests-broken.jsonl.gz: cannot read file" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("chatpulse: error: run for 2026-11-20 failed:")


@pytest.mark.subprocess
def test_a_configuration_error_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("sources:\n  - kind: requests\n    pattern: '*.csv'\n    latency_unit: minutes\n")
    result = run_cli("--config", str(config), "run", "--start", "2026-11-20")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"chatpulse: error: {config}: sources[0].latency_unit: expected one of ms, s, got 'minutes'"
    )


@pytest.mark.subprocess
def test_days_before_the_first_partition_are_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "landing" / "requests.jsonl", [{"timestamp": "2020-01-01T00:00:00Z"}])
    result = run_cli("run", "--start", "2020-01-01", CHATPULSE_HOME=str(tmp_path))
    assert result.returncode == 2
    assert "day 2020-01-01 is before start_date 2026-01-01" in result.stderr


@pytest.mark.subprocess
def test_a_range_runs_every_day(tmp_path: Path) -> None:
    lines = [{"timestamp": f"2026-11-{d}T12:00:00Z", "latency_ms": 5} for d in (20, 21, 22)]
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests.jsonl.gz").write_bytes(
        gzip.compress("\n".join(json.dumps(line) for line in lines).encode())
    )
    result = run_cli(
        "run",
        "--start",
        "2026-11-20",
        "--end",
        "2026-11-22",
        CHATPULSE_HOME=str(tmp_path),
        DAGSTER_HOME=str(tmp_path / "d"),
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    # 2026-11-22 is a Sunday: its run also writes the week that began on Monday the 16th.
    assert sorted(p.name for p in (tmp_path / "reports").glob("*.html")) == [
        "2026-11-20.html",
        "2026-11-21.html",
        "2026-11-22.html",
        "index.html",
        "week-2026-11-16.html",
    ]
