"""The PostgreSQL warehouse's bulk load (COPY FROM STDIN through psycopg) against the real local server.

Every frame is also written to a SQLite warehouse, whose ADBC ingest shares nothing with COPY, and
both read-backs are compared with each other and with the values that went in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from chatpulse import warehouse as warehouse_module
from chatpulse.daystate import TABLE, StepRun
from chatpulse.warehouse import Warehouse, Write

pytestmark = pytest.mark.postgres

DAY = "2026-11-20"
# Text COPY's CSV format must carry as data, not as syntax: its delimiter, quote and NULL marker,
# the text format's escapes, its end-of-data marker, line breaks, and characters beyond ASCII.
AWKWARD_TEXTS = [
    "plain",
    "",  # an empty string, which must not come back as NULL
    "tab\there",
    "line\nbreak",
    "carriage\r\nreturn",
    "back\\slash \\N \\t",
    "\\.",  # COPY's end-of-data marker, alone
    "\\.\nafter the marker",
    'quote " and "" doubled',
    "comma, semicolon; pipe |",
    "NULL",
    "\\N",
    "中文的提示：解释一下递归",
    "emoji 🚀 and combining e\u0301",
    "  leading and trailing spaces  ",
    "ends with a backslash\\",
]


def _awkward_requests() -> pd.DataFrame:
    """One request per awkward text, with every column type the requests table has and a missing value of each."""
    n = len(AWKWARD_TEXTS)
    metadata = [json.dumps({"note": text, "n": i}, ensure_ascii=False) for i, text in enumerate(AWKWARD_TEXTS)]
    return pd.DataFrame(
        {
            "request_id": [f"r{i:02d}" for i in range(n)],
            # microseconds, another zone (converted to UTC), the epoch, a leap day, a missing time
            "timestamp": [
                pd.Timestamp("2026-11-20T10:00:00.123456Z"),
                pd.Timestamp("2026-11-20T23:59:59.999999+08:00"),
                pd.Timestamp("1970-01-01T00:00:00Z"),
                pd.Timestamp("2024-02-29T12:00:00.000001Z"),
                pd.NaT,
            ]
            + [pd.Timestamp("2026-11-20T00:00:00Z") + pd.Timedelta(seconds=i) for i in range(5, n)],
            "user_id": AWKWARD_TEXTS,
            "model": [None if i % 4 == 0 else text for i, text in enumerate(reversed(AWKWARD_TEXTS))],
            "status_code": pd.array([200, 429, None, 500] + [200] * (n - 4), dtype="Int64"),
            # ints past 32 bits, both signs, and missing
            "prompt_tokens": pd.array([2**31, 2**40, -(2**62), None, 2**63 - 1] + list(range(n - 5)), dtype="Int64"),
            "latency_ms": [0.1 + 0.2, 1e-300, 1.7976931348623157e308, math.nan, -0.0, math.inf, -math.inf]
            + [i / 3 for i in range(n - 7)],
            "cost_usd": [None] * n,  # a column with no value at all
            "metadata": metadata,
            "source_file": ["requests 2026-11-20.jsonl"] * n,
            "source_line": pd.array(range(1, n + 1), dtype="Int64") * 2**33,
            "unmetered": pd.array([True, False, None] * (n // 3) + [True] * (n % 3), dtype="boolean"),
        }
    )


@pytest.fixture
def both(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Warehouse, Warehouse]]:
    """A PostgreSQL warehouse and a SQLite one."""
    postgres, sqlite = Warehouse(postgres_url), Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    yield postgres, sqlite
    postgres.engine.dispose()
    sqlite.engine.dispose()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """COPY sent in batches of 3 rows, so a small frame takes several batches."""
    monkeypatch.setattr(warehouse_module, "COPY_BATCH", 3)
    return 3


def _integers(warehouse: Warehouse, column: str) -> list[int | None]:
    """A requests column of the day as the database holds it, by request id, without pandas in between."""
    with warehouse.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT {column} FROM requests WHERE day = '{DAY}' ORDER BY request_id")
        return [value for (value,) in rows]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("request_id").reset_index(drop=True)


def test_awkward_values_round_trip_through_copy(both: tuple[Warehouse, Warehouse], small_batches: int) -> None:
    postgres, sqlite = both
    sent = _awkward_requests()
    assert len(sent) > 2 * small_batches
    for warehouse in both:
        warehouse.replace_day(DAY, Write("requests", sent))
    from_postgres, from_sqlite = _sorted(postgres.read("requests", DAY)), _sorted(sqlite.read("requests", DAY))
    pd.testing.assert_frame_equal(from_postgres, from_sqlite, check_dtype=False)

    # and both hold what was sent, value by value
    assert from_postgres["user_id"].tolist() == AWKWARD_TEXTS  # "" stays "", "NULL" and "\N" stay text
    assert from_postgres["model"].tolist() == sent["model"].tolist()
    assert from_postgres["metadata"].map(json.loads).map(lambda m: m["note"]).tolist() == AWKWARD_TEXTS
    assert from_postgres["timestamp"].tolist()[:4] == [
        pd.Timestamp("2026-11-20T10:00:00.123456Z"),
        pd.Timestamp("2026-11-20T15:59:59.999999Z"),
        pd.Timestamp("1970-01-01T00:00:00Z"),
        pd.Timestamp("2024-02-29T12:00:00.000001Z"),
    ]
    assert pd.isna(from_postgres["timestamp"].iloc[4])
    # read() gives an integer column with a NULL as floats; the stored integers are exact
    stored = [_integers(warehouse, "prompt_tokens") for warehouse in both]
    assert stored[0] == stored[1] == [None if pd.isna(v) else int(v) for v in sent["prompt_tokens"]]
    assert _integers(postgres, "source_line") == [int(v) for v in sent["source_line"]]
    latency = from_postgres["latency_ms"].tolist()
    expected = sent["latency_ms"].tolist()
    assert [repr(v) for v in latency if not math.isnan(v)] == [repr(v) for v in expected if not math.isnan(v)]
    assert math.isnan(latency[3])  # NaN is missing, stored as NULL (as on SQLite)
    assert from_postgres["cost_usd"].isna().all()
    assert from_postgres["unmetered"].tolist() == [None if pd.isna(v) else bool(v) for v in sent["unmetered"]]


def test_replacing_a_day_twice_never_doubles_it(both: tuple[Warehouse, Warehouse], small_batches: int) -> None:
    postgres, _ = both
    first, second = _awkward_requests(), _awkward_requests().iloc[: small_batches * 2 + 1]
    postgres.replace_day("2026-11-19", Write("requests", first))
    postgres.replace_day(DAY, Write("requests", first))
    postgres.replace_day(DAY, Write("requests", second))
    postgres.replace_day(DAY, Write("requests", second))
    assert _sorted(postgres.read("requests", DAY))["request_id"].tolist() == second["request_id"].tolist()
    assert len(postgres.read("requests", "2026-11-19")) == len(first)  # the other day is left alone


def test_a_copy_failing_midway_leaves_the_day_as_it_was(both: tuple[Warehouse, Warehouse], small_batches: int) -> None:
    """The server refuses a row in a later batch of the second table's COPY: nothing of the rerun stays."""
    postgres, _ = both
    first = StepRun("hourly_metrics", "run-1", datetime(2026, 11, 21, 6, tzinfo=UTC))
    old = pd.DataFrame({"hour": [0, 1], "requests": [5, 6]})
    postgres.replace_day(DAY, Write("requests", _awkward_requests()), Write("hourly_metrics", old), done=first)

    hours = list(range(24))
    hours[small_batches * 3 + 1] = 2**40  # past the 32-bit `hour` column: the server refuses it mid-COPY
    broken = pd.DataFrame({"hour": hours, "requests": range(24)})
    rerun = StepRun("hourly_metrics", "run-2", datetime(2026, 11, 21, 7, tzinfo=UTC))
    with pytest.raises(psycopg.errors.NumericValueOutOfRange, match=r"COPY hourly_metrics, line 11, column hour"):
        postgres.replace_day(
            DAY, Write("requests", _awkward_requests().iloc[:2]), Write("hourly_metrics", broken), done=rerun
        )
    assert len(postgres.read("requests", DAY)) == len(AWKWARD_TEXTS)
    assert postgres.read("hourly_metrics", DAY)[["hour", "requests"]].values.tolist() == [[0, 5], [1, 6]]
    assert postgres.read(TABLE, DAY)["run_id"].tolist() == ["run-1"]


def test_text_arrives_as_utf8_whatever_the_client_encoding(postgres_url: str) -> None:
    latin1 = Warehouse(f"{postgres_url}?client_encoding=LATIN1")
    latin1.replace_day(DAY, Write("requests", _awkward_requests()))
    latin1.engine.dispose()
    reader = Warehouse(postgres_url)
    assert _sorted(reader.read("requests", DAY))["user_id"].tolist() == AWKWARD_TEXTS
    reader.engine.dispose()


def test_appended_rows_go_through_copy_too(both: tuple[Warehouse, Warehouse]) -> None:
    postgres, sqlite = both
    sends = pd.DataFrame(
        {"day": [DAY, DAY], "sent_at": [pd.Timestamp("2026-11-21T06:00:00.5Z")] * 2, "recipients": ["a@x", "b\tc@x"]}
    )
    for warehouse in both:
        warehouse.append("report_sends", sends)
        warehouse.append("report_sends", sends)
    from_postgres = postgres.read("report_sends", DAY).sort_values("recipients").reset_index(drop=True)
    from_sqlite = sqlite.read("report_sends", DAY).sort_values("recipients").reset_index(drop=True)
    pd.testing.assert_frame_equal(from_postgres, from_sqlite, check_dtype=False)
    assert from_postgres["recipients"].tolist() == ["a@x", "a@x", "b\tc@x", "b\tc@x"]
