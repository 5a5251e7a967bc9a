"""Field cases 09 (rows on days never run) and 13 (identical rows without ids), run as a user runs them.

Each case is copied from the shared field-case folder and run through the `chatpulse` CLI in this
process; the warehouse tables are compared with the case's EXPECTED.md, the numbers counted again
from the case's own files.
"""

import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from chatpulse.config import load_settings
from chatpulse.pipelines.cli import run_error
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.warehouse import Warehouse

from fixtures import invoke_cli

pytestmark = pytest.mark.pipeline


def _run(case: Path, home: Path, *args: str) -> None:
    result = invoke_cli(
        "--config", str(case / "cfg.yaml"), "run", *args, CHATPULSE_HOME=str(home), DAGSTER_HOME=str(home / "dagster")
    )
    assert result.exit_code == 0, result.stderr


def test_case_09_rows_on_days_never_run_are_quarantined_once(field_case: Callable[[str], Path], tmp_path: Path) -> None:
    case, home = field_case("09-rows-on-days-never-run"), tmp_path / "home"
    start, today = date(2026, 11, 1), datetime.now(UTC).date()  # cfg.yaml: start_date, no time zone (UTC)
    refused = invoke_cli("--config", str(case / "cfg.yaml"), "run", "--start", "2099-01-01", CHATPULSE_HOME=str(home))
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == (
        "chatpulse: error: day 2099-01-01 is after today: the days that can be run are "
        f"{start} (start_date) to {today} (today in UTC)\n"
    )
    _run(case, home, "--start", "2026-11-20")
    _run(case, home, "--start", "2026-11-20")  # a rerun replaces
    os.utime(case / "requests-days.jsonl")  # changed: another day's run reads the file again
    _run(case, home, "--start", "2026-11-21")

    lines = [json.loads(line) for line in (case / "requests-days.jsonl").read_text().splitlines() if line.strip()]
    days = [datetime.fromisoformat(line["timestamp"]).date() for line in lines]
    never_run = [
        (n + 1, line, day) for n, (line, day) in enumerate(zip(lines, days, strict=True)) if not start <= day <= today
    ]
    store = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    runnable = [
        [day.isoformat(), line["request_id"]] for line, day in zip(lines, days, strict=True) if start <= day <= today
    ]
    assert runnable == [["2026-11-20", "a"]]  # EXPECTED: 1 clean request on 2026-11-20
    assert store.read("requests")[["day", "request_id"]].values.tolist() == runnable
    quarantine = store.read("quarantine").sort_values("source_line")
    assert len(never_run) == 2  # EXPECTED: the 2099 and the 1970 row
    assert quarantine[["day", "source_file", "source_line", "record_id"]].values.tolist() == [
        [day.isoformat(), "requests-days.jsonl", n, line["request_id"]] for n, line, day in never_run
    ]
    assert [json.loads(r) for r in quarantine["reasons"]] == [
        [f"timestamp: outside the partition range ({'before start_date' if day < start else 'after today'})"]
        for _, _, day in never_run
    ]
    quality = store.read("data_quality", kind="requests")
    assert quality["rows_in"].sum() + len(quarantine) == len(lines)  # every line in exactly one place
    assert store.outside_counts(start.isoformat(), today.isoformat()).values.tolist() == [["requests", 2, 1]]
    for day in ("2026-11-20", "2026-11-21"):
        page = " ".join((home / "reports" / f"{day}.html").read_text().split())
        assert f"Outside the partition range ({start} to {today}): 2 requests rows in 1 file," in page
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(AssetKey("raw_requests"))
        assert event.asset_materialization.metadata["outside_range"].value == 2


def test_case_13_identical_lines_of_a_file_are_calls_and_its_copy_duplicates(
    field_case: Callable[[str], Path], tmp_path: Path
) -> None:
    case, home = field_case("13-identical-rows-without-ids"), tmp_path / "home"
    _run(case, home, "--start", "2026-11-20")
    store = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    first_ids = sorted(store.read("requests")["request_id"])
    _run(case, home, "--start", "2026-11-20")

    # Counted again from the files: a line is a call as often as the file holding it most often holds it.
    files = [path.read_text().splitlines() for path in sorted(case.glob("requests-*.jsonl"))]
    calls = Counter()
    for lines in files:
        for line, count in Counter(lines).items():
            calls[line] = max(calls[line], count)
    tokens = {
        key: sum(json.loads(line)[key] * count for line, count in calls.items())
        for key in ("prompt_tokens", "completion_tokens")
    }
    assert (sum(calls.values()), tokens) == (3, {"prompt_tokens": 1852, "completion_tokens": 39})  # EXPECTED.md
    requests = store.read("requests", "2026-11-20")
    quality = store.read("data_quality", "2026-11-20", "requests").iloc[0]
    assert (len(requests), quality["clean"], quality["duplicates"]) == (3, 3, sum(map(len, files)) - 3)
    assert sorted(requests["request_id"]) == first_ids  # the same ids on a rerun
    assert requests[["prompt_tokens", "completion_tokens"]].sum().to_dict() == tokens
    daily = store.read("daily_metrics", "2026-11-20").iloc[0]
    assert (daily["requests"], daily["prompt_tokens"], daily["completion_tokens"]) == (3, *tokens.values())


def test_a_dagster_run_of_a_day_never_run_fails_naming_the_days_that_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATPULSE_HOME", str(tmp_path))
    settings = load_settings()
    job = build_definitions(settings).resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(tags={"dagster/partition": "2099-01-01"}, raise_on_error=False)
    failures = {event.step_key: run_error(event.step_failure_data.error) for event in result.get_step_failure_events()}
    today = datetime.now(UTC).date()
    message = (
        f"day 2099-01-01 is after today: the days that can be run are {settings.start_date} (start_date) "
        f"to {today} (today in UTC)"
    )
    assert failures == {f"raw_{kind}": message for kind in ("requests", "messages", "feedback")}
