import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import adbc_driver_manager.dbapi as adbc_dbapi
import pandas as pd
import pyarrow as pa
import pytest

from chatpulse import warehouse as warehouse_module
from chatpulse.daystate import TABLE, StepRun
from chatpulse.schema import Kind
from chatpulse.tables import LANDING_FILES, TABLES
from chatpulse.warehouse import FileStamp, Warehouse, Write


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """The same tests on the default SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sub' / 'w.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    warehouse = Warehouse(url)
    yield warehouse
    warehouse.engine.dispose()


def _requests(*ids: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": list(ids),
            "timestamp": pd.to_datetime(["2026-11-20T10:00:00.123456Z"] * len(ids), utc=True),
            "latency_ms": [1.5] * len(ids),
            "status_code": pd.array([200] * len(ids), dtype="Int64"),
            "prompt_tokens": pd.array([None] * len(ids), dtype="Int64"),
        }
    )


def test_replacing_a_day_never_doubles_it(warehouse: Warehouse) -> None:
    warehouse.replace_day("2026-11-20", Write("requests", _requests("a", "b")))
    warehouse.replace_day("2026-11-21", Write("requests", _requests("c")))
    warehouse.replace_day("2026-11-20", Write("requests", _requests("a", "b")))
    assert sorted(warehouse.read("requests")["request_id"]) == ["a", "b", "c"]


def test_a_step_record_commits_with_its_tables_or_not_at_all(warehouse: Warehouse) -> None:
    first = StepRun("clean_requests", "run-1", datetime(2026, 11, 21, 6, 0, 0, 123456, tzinfo=UTC))
    warehouse.replace_day("2026-11-20", Write("requests", _requests("a")), done=first)
    rerun = StepRun("clean_requests", "run-2", datetime(2026, 11, 21, 7, 0, tzinfo=UTC))
    broken = pd.DataFrame({"hour": [1], "latency_mean_ms": ["not a number"]})  # the insert fails mid-transaction
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type differs between SQLite and PostgreSQL
        warehouse.replace_day(
            "2026-11-20", Write("requests", _requests("b")), Write("hourly_metrics", broken), done=rerun
        )
    assert warehouse.read("requests")["request_id"].tolist() == ["a"]
    records = warehouse.read(TABLE)
    assert records[["day", "step", "run_id"]].values.tolist() == [["2026-11-20", "clean_requests", "run-1"]]
    assert records["finished_at"].iloc[0] == pd.Timestamp(first.finished_at)  # microseconds kept: steps compare by it
    warehouse.replace_day("2026-11-20", Write("requests", _requests("b")), done=rerun)
    warehouse.replace_day("2026-11-20", done=StepRun("daily_report", "run-2", datetime.now(UTC), output="/r.html"))
    records = warehouse.read(TABLE).set_index("step")
    assert records["run_id"].to_dict() == {"clean_requests": "run-2", "daily_report": "run-2"}  # one row per step
    assert records.loc["daily_report", "output"] == "/r.html"


def test_reading_a_range_of_days(warehouse: Warehouse) -> None:
    for day, rid in (("2026-11-19", "a"), ("2026-11-20", "b"), ("2026-11-21", "c")):
        warehouse.replace_day(day, Write("requests", _requests(rid)))
    assert sorted(warehouse.read_days("requests", "2026-11-20", None)["request_id"]) == ["b", "c"]
    assert sorted(warehouse.read_days("requests", None, "2026-11-20")["request_id"]) == ["a", "b"]


def test_values_round_trip_with_types(warehouse: Warehouse) -> None:
    warehouse.replace_day("2026-11-20", Write("requests", _requests("a")))
    row = warehouse.read("requests", "2026-11-20").iloc[0]
    assert row["timestamp"] == pd.Timestamp("2026-11-20T10:00:00.123456Z")
    assert row["latency_ms"] == 1.5 and row["status_code"] == 200 and pd.isna(row["prompt_tokens"])


def test_coded_columns_are_written_as_their_values(warehouse: Warehouse) -> None:
    # Categoricals (as extract codes text) with a missing value and an unused category, beside the same plain text.
    frame = _requests("a", "b", "c", "d").assign(
        model=pd.Categorical(["m2", None, "m1", "m2"], categories=["m1", "m2", "unused"]),
        provider=pd.Categorical([None] * 4, categories=[]),
        status_code=pd.Categorical([200, 500, None, 200], categories=[200, 500, 1.5]),  # 1.5: no row's, no integer
    )
    plain = frame.astype({"model": object, "provider": object, "status_code": "Int64"})
    warehouse.replace_day("2026-11-20", Write("requests", frame))
    warehouse.replace_day("2026-11-21", Write("requests", plain))
    coded, written = warehouse.read("requests", "2026-11-20"), warehouse.read("requests", "2026-11-21")
    columns = ["model", "provider", "status_code"]
    pd.testing.assert_frame_equal(coded[columns], written[columns])
    assert coded["model"].fillna("-").tolist() == ["m2", "-", "m1", "m2"] and coded["provider"].isna().all()
    assert coded["status_code"].fillna(0).tolist() == [200, 500, 0, 200]


def test_a_new_sqlite_warehouse_has_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new = Warehouse(f"sqlite:///{tmp_path / 'new.db'}")
    new.replace_day("2026-11-20", Write("requests", _requests("a")))
    old_file = tmp_path / "old.db"
    with sqlite3.connect(old_file) as conn:  # a warehouse made before: SQLite's default pages, one table
        conn.execute("CREATE TABLE requests (day VARCHAR(10) NOT NULL, request_id TEXT)")
        conn.execute("INSERT INTO requests VALUES ('2026-11-19', 'x')")
    old = Warehouse(f"sqlite:///{old_file}")
    old.replace_day("2026-11-20", Write("requests", _requests("a")))
    pages = {}
    for name, store in (("new", new), ("old", old)):
        store.engine.dispose()
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            pages[name] = conn.execute("PRAGMA page_size").fetchone()[0]
    assert pages == {"new": warehouse_module.SQLITE_PAGE_BYTES, "old": 4096}
    assert sorted(old.read_days("requests", None, None)["request_id"]) == ["a", "x"]


def test_kind_scoped_writes_leave_other_kinds_alone(warehouse: Warehouse) -> None:
    quality = pd.DataFrame([{"rows_in": 1, "clean": 1, "quarantined": 0, "duplicates": 0, "repaired": 0}])
    warehouse.replace_day("2026-11-20", Write("data_quality", quality.assign(kind="requests"), kind="requests"))
    warehouse.replace_day("2026-11-20", Write("data_quality", quality.assign(kind="messages"), kind="messages"))
    warehouse.replace_day(
        "2026-11-20", Write("data_quality", quality.assign(kind="messages", rows_in=5), kind="messages")
    )
    table = warehouse.read("data_quality", "2026-11-20").set_index("kind")
    assert table["rows_in"].to_dict() == {"requests": 1, "messages": 5}


def test_a_failed_write_leaves_the_day_as_it_was(warehouse: Warehouse) -> None:
    warehouse.replace_day("2026-11-20", Write("requests", _requests("a")))
    with pytest.raises(KeyError):
        warehouse.replace_day("2026-11-20", Write("requests", _requests("b")), Write("no_such_table", _requests("x")))
    assert warehouse.read("requests")["request_id"].tolist() == ["a"]


def test_a_write_in_several_slices_arrives_whole_and_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # SQLite ingests one slice in a second thread while the next is made Arrow.
    monkeypatch.setattr(warehouse_module, "INGEST_BATCH", 2)
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    ids = [f"r{n}" for n in range(7)]
    store.replace_day("2026-11-20", Write("requests", _requests(*ids)))
    assert store.read("requests")["request_id"].tolist() == ids


def test_a_slice_failing_in_either_thread_leaves_the_day_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(warehouse_module, "INGEST_BATCH", 2)
    store = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    store.replace_day("2026-11-20", Write("requests", _requests("a")))
    # The fifth row's latency is no number: its slice cannot be made Arrow while the slice before is ingested.
    bad = _requests(*[f"r{n}" for n in range(6)]).astype({"latency_ms": object})
    bad.loc[4, "latency_ms"] = "slow"
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        store.replace_day("2026-11-20", Write("requests", bad))
    assert store.read("requests")["request_id"].tolist() == ["a"]

    # The second slice's ingest fails in the ingesting thread.
    calls = []
    real_ingest = adbc_dbapi.Cursor.adbc_ingest

    def failing_ingest(self: adbc_dbapi.Cursor, *args: object, **kwargs: object) -> int:
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError("disk full")
        return real_ingest(self, *args, **kwargs)

    monkeypatch.setattr(adbc_dbapi.Cursor, "adbc_ingest", failing_ingest)
    with pytest.raises(OSError, match="disk full"):
        store.replace_day("2026-11-20", Write("requests", _requests("b", "c", "d", "e", "f")))
    assert calls == ["requests", "requests"]
    assert store.read("requests")["request_id"].tolist() == ["a"]


def test_file_stamps_round_trip(warehouse: Warehouse) -> None:
    stamp = FileStamp(10, 20, frozenset({"2026-11-20"}))
    warehouse.save_stamps(Kind.REQUESTS, {"a.jsonl": stamp})
    warehouse.save_stamps(Kind.REQUESTS, {"a.jsonl": FileStamp(11, 21, frozenset({"2026-11-21"}))})
    assert warehouse.file_stamps(Kind.REQUESTS) == {"a.jsonl": FileStamp(11, 21, frozenset({"2026-11-21"}))}
    assert warehouse.file_stamps(Kind.MESSAGES) == {}


def _outside(file: str, *days: str) -> pd.DataFrame:
    """Quarantine rows of `file` on the given days, one line each."""
    return pd.DataFrame(
        {"day": list(days), "kind": "requests", "source_file": file, "source_line": range(1, len(days) + 1)}
    )


def test_a_files_rows_outside_the_range_are_replaced_by_file(warehouse: Warehouse) -> None:
    span = ("2026-11-01", "2026-11-29")
    stamp = FileStamp(1, 1, frozenset())
    warehouse.replace_day("2026-11-20", Write("quarantine", _outside("a.jsonl", "2026-11-20"), kind="requests"))
    warehouse.save_stamps(Kind.REQUESTS, {"a.jsonl": stamp, "b.jsonl": stamp}, _outside("a.jsonl", "1970-01-01"), span)
    warehouse.save_stamps(Kind.REQUESTS, {"b.jsonl": stamp}, _outside("b.jsonl", "2099-01-01", "2099-01-02"), span)
    warehouse.save_stamps(Kind.REQUESTS, {"b.jsonl": stamp}, _outside("b.jsonl", "2099-01-01", "2099-01-02"), span)
    rows = warehouse.read("quarantine").sort_values(["source_file", "day"])
    assert rows[["source_file", "day"]].values.tolist() == [
        ["a.jsonl", "1970-01-01"],
        ["a.jsonl", "2026-11-20"],  # a day that can be run belongs to that day's run
        ["b.jsonl", "2099-01-01"],
        ["b.jsonl", "2099-01-02"],
    ]
    assert warehouse.outside_counts(*span).values.tolist() == [["requests", 3, 2]]
    warehouse.save_stamps(Kind.REQUESTS, {"a.jsonl": stamp}, _outside("a.jsonl"), span)
    assert warehouse.outside_counts(*span).values.tolist() == [["requests", 2, 1]]


@pytest.mark.postgres
def test_two_runs_recording_the_same_file_at_once_record_it_once(postgres_url: str) -> None:
    """A run that has recorded a new file but not committed yet makes another run wait, then be replaced.

    Without the wait, the second run would not see the first's rows to delete them, and would then
    fail on the file's stamp (or, for the quarantine rows alone, hold them twice).
    """
    warehouse, span = Warehouse(postgres_url), ("2026-11-01", "2026-11-29")
    errors: list[BaseException] = []

    def record() -> None:
        try:
            stamp = {"a.jsonl": FileStamp(1, 1, frozenset())}
            warehouse.save_stamps(Kind.REQUESTS, stamp, _outside("a.jsonl", "2099-01-01"), span)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    second = threading.Thread(target=record)
    with warehouse.engine.begin() as first:
        stamp = {"kind": "requests", "path": "a.jsonl", "size": 1, "mtime_ns": 1, "days": "[]"}
        first.execute(LANDING_FILES.insert(), [stamp])
        first.execute(TABLES["quarantine"].insert(), _outside("a.jsonl", "2099-01-01").to_dict("records"))
        second.start()
        second.join(timeout=1)
        assert second.is_alive()  # waiting for the first to commit
    second.join(timeout=30)
    assert errors == []
    assert len(warehouse.read("quarantine")) == 1
    warehouse.engine.dispose()


def test_an_older_warehouse_gains_new_columns(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE scenario_daily DROP COLUMN requests")
    upgraded = Warehouse(warehouse.engine.url.render_as_string(hide_password=False))
    upgraded.replace_day("2026-11-20", Write("scenario_daily", pd.DataFrame({"scenario": ["coding"], "requests": [3]})))
    assert upgraded.read("scenario_daily")[["scenario", "requests"]].values.tolist() == [["coding", 3]]
    upgraded.engine.dispose()


@pytest.mark.subprocess
def test_a_sqlite_day_waits_for_another_writer(tmp_path: Path) -> None:
    # The lock is held from another process: ADBC bundles its own SQLite, and POSIX file
    # locks taken by one copy of SQLite do not block another copy in the same process.
    path = tmp_path / "w.db"
    warehouse = Warehouse(f"sqlite:///{path}")
    hold = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(1)\n"
        "db.execute('COMMIT')\n"
    )
    with subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        warehouse.replace_day("2026-11-20", Write("requests", _requests("a")))
    assert holder.returncode == 0
    assert warehouse.read("requests")["request_id"].tolist() == ["a"]
    warehouse.engine.dispose()
