"""Privacy: personal data masked before storage, content dropped after the retention period (masking itself:
test_masking.py; pseudonyms: test_pseudonyms.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from chatpulse.config import settings_from_mapping
from chatpulse.ingest.extract import RAW, extract_day
from chatpulse.ingest.privacy import drop_content, drop_stored_content, protect, retention_cutoff
from chatpulse.schema import Kind
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse, Write

from fixtures import write_jsonl

DAY = dt.date(2026, 11, 20)
# A request log with free text in fields no canonical column maps: they land in `metadata`.
PRIVATE_REQUESTS = [
    {
        "request_id": "r1",
        "timestamp": "2026-11-20T10:00:00Z",
        "model": "gpt-4o",
        "app": "helpdesk",
        "prompt": "I am a.b@corp.com, call 13812345678",
        "messages": [{"role": "user", "content": "from 10.1.2.3, card 4111 1111 1111 1111"}],
        "input": "id_110101199003077578",
        "response": "noted, tel13912345678",
    },
    # A faulty row keeps its original line for the quarantine: masked too.
    {
        "request_id": "r2",
        "timestamp": "2026-11-20T10:01:00Z",
        "latency_ms": "slow",
        "app": "helpdesk",
        "prompt": "write to alice@localhost",
    },
    '{"request_id": "r3", "timestamp": "2026-11-20T10:02:00Z", "prompt": "broken 13812345678',
]
PERSONAL = ["a.b@corp.com", "13812345678", "10.1.2.3", "4111 1111 1111 1111", "110101199003077578", "13912345678"]
PERSONAL += ["alice@localhost"]


def _protected_requests(tmp_path: Path, **config: object) -> pd.DataFrame:
    write_jsonl(tmp_path / "landing" / "requests.jsonl", PRIVATE_REQUESTS)
    settings = settings_from_mapping({"landing_dir": "landing", **config}, tmp_path, {})
    frame = extract_day(settings.landing_dir, settings.sources, Kind.REQUESTS, DAY, "UTC").frame
    return protect(frame, Kind.REQUESTS, settings)


def test_request_metadata_and_original_lines_are_masked(tmp_path: Path) -> None:
    frame = _protected_requests(tmp_path)
    assert json.loads(frame["metadata"].iloc[0]) == {
        "app": "helpdesk",
        "prompt": "I am [EMAIL], call [PHONE]",
        "messages": [{"role": "user", "content": "from [IP], card [CARD]"}],
        "input": "id_[ID_NUMBER]",
        "response": "noted, tel[PHONE]",
    }
    lines = frame[RAW].dropna().tolist()
    assert len(lines) == 2  # the row with a bad latency, the malformed line
    assert "alice@localhost" not in lines[0] and "[EMAIL]" in lines[0]
    assert lines[1].endswith('"prompt": "broken [PHONE]')
    stored = frame.astype(str).to_string()
    assert not [value for value in PERSONAL if value in stored]


def test_metadata_keys_cut_metadata_and_original_lines(tmp_path: Path) -> None:
    frame = _protected_requests(tmp_path, metadata_keys=["app"])
    assert frame["metadata"].tolist()[:2] == ['{"app":"helpdesk"}', '{"app":"helpdesk"}']
    line = json.loads(frame[RAW].dropna().iloc[0])
    # The faulty row's line keeps its mapped fields (what was wrong) and the kept key, nothing else.
    assert line == {"request_id": "r2", "timestamp": "2026-11-20T10:01:00Z", "latency_ms": "slow", "app": "helpdesk"}


def _write_day(warehouse: Warehouse, day: str) -> None:
    warehouse.replace_day(
        day,
        Write("messages", pd.DataFrame({"message_id": ["m"], "role": ["user"], "content": ["secret"]})),
        Write("feedback", pd.DataFrame({"feedback_id": ["f"], "rating": [1.0], "comment": ["nice"]})),
        Write("requests", pd.DataFrame({"request_id": ["r"], "metadata": ['{"prompt":"text"}']})),
        Write("quarantine", pd.DataFrame({"kind": ["messages"], "raw": ["{secret}"]}), kind="messages"),
        Write("quarantine", pd.DataFrame({"kind": ["requests"], "raw": ["{request}"]}), kind="requests"),
    )


def test_retention_clears_old_content_and_keeps_rows(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    for day in ("2026-10-01", "2026-11-20"):
        _write_day(warehouse, day)
    cutoff = retention_cutoff(dt.date(2026, 11, 27), 30)
    assert cutoff == dt.date(2026, 10, 28)
    cleared = {"messages": 1, "feedback": 1, "quarantine": 2, "requests": 1}
    assert drop_content(warehouse.engine, TABLES, cutoff) == cleared
    messages = warehouse.read("messages").set_index("day")
    assert pd.isna(messages.loc["2026-10-01", "content"]) and messages.loc["2026-11-20", "content"] == "secret"
    assert warehouse.read("feedback").set_index("day")["comment"].isna().tolist() == [True, False]
    requests = warehouse.read("requests").set_index("day")
    assert requests["metadata"].isna().tolist() == [True, False] and requests["request_id"].tolist() == ["r", "r"]
    quarantine = warehouse.read("quarantine").sort_values(["day", "kind"])
    assert quarantine["raw"].isna().tolist() == [True, True, False, False]
    assert drop_content(warehouse.engine, TABLES, cutoff) == dict.fromkeys(cleared, 0)

    storage = tmp_path / "storage"
    for asset in ("clean_messages", "raw_feedback", "raw_requests", "sessions"):
        (storage / asset).mkdir(parents=True)
        for day in ("2026-10-01", "2026-11-20"):
            frame = pd.DataFrame(
                {"content": ["secret"], "comment": ["nice"], "metadata": ["{}"], "_raw": ["line"], "n": [1]}
            )
            frame.to_parquet(storage / asset / f"{day}.parquet")
    rewritten = drop_stored_content(storage, cutoff)
    assert [p.relative_to(storage).as_posix() for p in rewritten] == [
        "clean_messages/2026-10-01.parquet",
        "raw_feedback/2026-10-01.parquet",
        "raw_requests/2026-10-01.parquet",
    ]
    old = pd.read_parquet(storage / "clean_messages" / "2026-10-01.parquet")
    assert old["content"].isna().all() and old["_raw"].isna().all() and old["n"].tolist() == [1]
    assert pd.read_parquet(storage / "raw_feedback" / "2026-10-01.parquet")["comment"].isna().all()
    old_requests = pd.read_parquet(storage / "raw_requests" / "2026-10-01.parquet")
    assert old_requests[["metadata", "_raw"]].isna().all().all() and old_requests["content"].tolist() == ["secret"]
    assert pd.read_parquet(storage / "clean_messages" / "2026-11-20.parquet")["content"].tolist() == ["secret"]
    assert pd.read_parquet(storage / "sessions" / "2026-10-01.parquet")["content"].tolist() == ["secret"]
    assert drop_stored_content(storage, cutoff) == []


def test_retention_clears_a_stored_day_row_group_by_row_group(tmp_path: Path) -> None:
    """A hand-off of several row groups (a day above a million rows) is cleared group by group: text found in
    its last group alone still counts, and every other column, the groups and the pandas types stay."""
    storage = tmp_path / "storage"
    (storage / "raw_requests").mkdir(parents=True)
    path = storage / "raw_requests" / "2026-10-01.parquet"
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(5)],
            "metadata": [None, None, None, None, '{"team": "a"}'],
            "_raw": [None] * 5,
            "prompt_tokens": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "timestamp": pd.date_range("2026-10-01", periods=5, freq="h", tz="UTC"),
        }
    )
    frame.to_parquet(path, index=False, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 3

    assert drop_stored_content(storage, dt.date(2026, 10, 28)) == [path]
    assert pq.ParquetFile(path).num_row_groups == 3
    assert not list(path.parent.glob(".*"))  # no scratch file left
    pd.testing.assert_frame_equal(
        pd.read_parquet(path), frame.assign(metadata=pd.Series([None] * 5, dtype=frame["metadata"].dtype))
    )
    assert drop_stored_content(storage, dt.date(2026, 10, 28)) == []


def test_retention_keeps_metadata_cut_to_the_configured_keys(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    _write_day(warehouse, "2026-10-01")
    cleared = drop_content(warehouse.engine, TABLES, dt.date(2026, 10, 28), keep_metadata=True)
    assert cleared == {"messages": 1, "feedback": 1, "quarantine": 2}  # original lines go all the same
    assert warehouse.read("requests")["metadata"].tolist() == ['{"prompt":"text"}']


@pytest.mark.subprocess
def test_extracted_content_is_masked_before_storage(tmp_path: Path) -> None:
    """The raw assets mask content, comments, request metadata and original lines: tables and hand-offs never
    hold them."""
    from fixtures import run_cli

    landing = tmp_path / "landing"
    write_jsonl(
        landing / "messages.jsonl",
        [
            {
                "session_id": "s1",
                "timestamp": "2026-11-20T10:00:00Z",
                "role": "user",
                "content": "email me: a.b@corp.com",
            },
            # malformed: quarantined with its raw line
            '{"session_id": "s1", "role": "user", "content": "broken 13812345678',
        ],
    )
    write_jsonl(
        landing / "feedback.jsonl",
        [
            {"session_id": "s1", "timestamp": "2026-11-20T10:01:00Z", "rating": -1, "comment": "call 13812345678"},
        ],
    )
    write_jsonl(landing / "requests.jsonl", PRIVATE_REQUESTS)
    config = tmp_path / "c.yaml"
    # Retention clears content older than 30 days by the wall clock: keep it here, whatever the date.
    config.write_text(
        f"data_home: {tmp_path / 'home'}\nlanding_dir: {landing}\nstart_date: 2026-11-01\n"
        "content_retention_days: 36500\n"
    )
    result = run_cli("--config", str(config), "run", "--start", "2026-11-20")
    assert result.returncode == 0, result.stderr
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}")
    assert warehouse.read("messages", "2026-11-20")["content"].tolist() == ["email me: [EMAIL]"]
    assert warehouse.read("feedback", "2026-11-20")["comment"].tolist() == ["call [PHONE]"]
    metadata = json.loads(warehouse.read("requests", "2026-11-20")["metadata"].iloc[0])
    assert metadata["prompt"] == "I am [EMAIL], call [PHONE]"
    stored = "".join(warehouse.read("quarantine")["raw"].dropna())
    assert "13812345678" not in stored and "[PHONE]" in stored and "[EMAIL]" in stored
    for table in ("requests", "quarantine"):
        text = warehouse.read(table).astype(str).to_string()
        assert not [value for value in PERSONAL if value in text], table
    handoffs = sorted((tmp_path / "home" / "storage").rglob("*.parquet"))
    assert {path.parent.name for path in handoffs} >= {
        "raw_messages",
        "clean_messages",
        "raw_feedback",
        "raw_requests",
        "clean_requests",
        "sessions",
    }
    for path in handoffs:
        text = pd.read_parquet(path).astype(str).to_string()
        assert not [value for value in [*PERSONAL, "a.b@corp.com"] if value in text], path
