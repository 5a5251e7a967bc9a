"""Field cases 05, 08, 10 and 11 (../shared/field-cases): odd times and odd text, run as a user runs them.

Each case is copied to a temporary folder and run with `chatpulse --config cfg.yaml run` in a
process of its own, with CHATPULSE_HOME in the temporary folder, and the warehouse tables are
compared with the case's EXPECTED.md. (In this process a second `run` with another configuration
would reuse the first run's job: Dagster caches the reconstructed job definition.) Input row
counts are taken from the case's own files, so "every row in exactly one place" is checked
against what was written.
"""

import csv
import json
from pathlib import Path

import pytest

from chatpulse.config import load_settings
from chatpulse.schema import Kind
from chatpulse.warehouse import Warehouse

from fixtures import clean_every_day, field_case, run_cli


def _run(case: Path, home: Path, start: str, end: str | None = None) -> Warehouse:
    """`chatpulse --config cfg.yaml run --start START [--end END]` for a case; fails the test if the run does."""
    args = ["--config", str(case / "cfg.yaml"), "run", "--start", start, *(["--end", end] if end else [])]
    result = run_cli(*args, CHATPULSE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    assert result.returncode == 0, result.stderr
    return Warehouse(f"sqlite:///{home / 'warehouse.db'}")


def _records(path: Path) -> int:
    """Records a landing file holds, counted without ChatPulse: CSV rows after the header, or non-blank lines."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            csv.field_size_limit(1 << 30)
            return sum(1 for _ in csv.reader(handle)) - 1
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def _accounted(warehouse: Warehouse, *days: str) -> dict[str, int]:
    quality = warehouse.read_days("data_quality", days[0], days[-1], kind="requests")
    totals = {key: int(quality[key].sum()) for key in ("rows_in", "clean", "quarantined", "duplicates")}
    assert totals["rows_in"] == totals["clean"] + totals["quarantined"] + totals["duplicates"]
    return totals


@pytest.mark.subprocess
def test_05_hour_only_offsets_beside_naive_local_times(tmp_path: Path) -> None:
    case = field_case("05-hour-only-utc-offset", tmp_path)
    warehouse = _run(case, tmp_path / "home", "2026-08-28")
    requests = warehouse.read("requests", "2026-08-28")
    assert sorted(requests["request_id"]) == ["n-j1", "n-j2", "n-j3"]
    hourly = warehouse.read("hourly_metrics", "2026-08-28").set_index("hour")["requests"]
    assert {hour: n for hour, n in hourly.items() if n} == {1: 1, 18: 2}
    assert _accounted(warehouse, "2026-08-28") == {
        "rows_in": _records(case / "export.csv"),
        "clean": 3,
        "quarantined": 0,
        "duplicates": 0,
    }


@pytest.mark.subprocess
def test_08_a_year_9999_is_quarantined_once_and_no_run_fails(tmp_path: Path) -> None:
    case = field_case("08-timestamp-out-of-range", tmp_path)
    home = tmp_path / "home"
    _run(case, home, "2026-11-20", "2026-11-21")
    warehouse = _run(case, home, "2026-11-21")  # every later run still works, and replaces the day
    assert sorted(warehouse.read("requests", "2026-11-20")["request_id"]) == ["g1", "g2"]
    assert warehouse.read("requests", "2026-11-21")["request_id"].tolist() == ["o1"]
    quarantine = warehouse.read_days("quarantine", "2026-11-20", "2026-11-21")
    assert quarantine["record_id"].tolist() == ["o2"]
    assert quarantine[["source_file", "source_line"]].values.tolist() == [["requests-oob.jsonl", 2]]
    assert json.loads(quarantine["reasons"].iloc[0])[0].startswith("timestamp: outside what a timestamp holds")
    inputs = _records(case / "requests-good.jsonl") + _records(case / "requests-oob.jsonl")
    totals = _accounted(warehouse, "2026-11-20", "2026-11-21")
    assert totals == {"rows_in": inputs, "clean": 3, "quarantined": 1, "duplicates": 0}


@pytest.mark.subprocess
def test_10_a_csv_field_past_128_kib_is_read_by_default(tmp_path: Path) -> None:
    case = field_case("10-csv-huge-field", tmp_path)
    warehouse = _run(case, tmp_path / "home", "2026-11-20")
    inputs = _records(case / "requests-big.csv") + _records(case / "requests-good.jsonl")
    assert _accounted(warehouse, "2026-11-20") == {
        "rows_in": inputs,
        "clean": inputs,
        "quarantined": 0,
        "duplicates": 0,
    }
    models = warehouse.read("requests", "2026-11-20").set_index("request_id")["model"]
    with (case / "requests-big.csv").open(newline="") as handle:
        csv.field_size_limit(1 << 30)
        big = [row for row in csv.DictReader(handle) if row["request_id"] == "r99"][0]
    assert models["r99"] == big["model"] and len(big["model"]) > 128 * 1024


def test_10_with_a_lower_limit_the_row_is_quarantined_with_its_line(tmp_path: Path) -> None:
    case = field_case("10-csv-huge-field", tmp_path)
    config = case / "cfg.yaml"
    config.write_text(config.read_text() + "max_field_bytes: 65536\n")
    settings = load_settings(config, env={})
    outcome = clean_every_day(settings.landing_dir, settings.sources, Kind.REQUESTS)["2026-11-20"]
    inputs = _records(case / "requests-big.csv") + _records(case / "requests-good.jsonl")
    assert (outcome.quality["rows_in"], outcome.quality["clean"], outcome.quality["quarantined"]) == (
        inputs,
        inputs - 1,
        1,
    )
    assert outcome.quarantine[["source_file", "source_line", "record_id"]].values.tolist() == [
        ["requests-big.csv", 22, "r99"]
    ]
    assert json.loads(outcome.quarantine["reasons"].iloc[0]) == ["model: longer than max_field_bytes (65536)"]


@pytest.mark.subprocess
def test_11_a_jsonl_file_starting_with_a_byte_order_mark(tmp_path: Path) -> None:
    case = field_case("11-jsonl-with-bom", tmp_path)
    assert (case / "requests-bom.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")
    warehouse = _run(case, tmp_path / "home", "2026-11-20")
    requests = warehouse.read("requests", "2026-11-20").sort_values("source_line")
    assert requests["request_id"].tolist() == ["a", "b"]
    assert requests["latency_ms"].tolist() == [5.0, 6.0]
    inputs = _records(case / "requests-bom.jsonl")
    assert _accounted(warehouse, "2026-11-20") == {"rows_in": inputs, "clean": 2, "quarantined": 0, "duplicates": 0}
