"""Privacy: personal data masked before storage, content dropped after the retention period."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.ingest.privacy import drop_content, drop_stored_content, mask, retention_cutoff
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse, Write

MASKED = {
    "mail me at jane.doe+work@example.co.uk today": "mail me at [EMAIL] today",
    "我的手机是13812345678，谢谢": "我的手机是[PHONE]，谢谢",
    "call +86 138 1234 5678 or 0086-13912345678": "call [PHONE] or [PHONE]",
    "办公室电话 010-62345678 或 (0755) 2345678": "办公室电话 [PHONE] 或 [PHONE]",
    "US office (415) 555-0100, UK +44 20 7946 0958": "US office [PHONE], UK [PHONE]",
    "key sk-proj-abcDEF1234567890xyzXYZ and AKIAABCDEFGHIJKLMNOP": "key [API_KEY] and [API_KEY]",
    "身份证号 11010519491231002X 请核对": "身份证号 [ID_NUMBER] 请核对",
    "id 110105194912310021.": "id [ID_NUMBER].",
}
# Not personal data, left as they are: dates, versions, amounts, short numbers, near-keys.
UNTOUCHED = ["on 2026-11-20 version 3.11.7 costs $1,234.56, order 12345", "sk-short is not a key"]
MASKED.update({text: text for text in UNTOUCHED})


@pytest.mark.parametrize(("text", "expected"), MASKED.items())
def test_mask(text: str, expected: str) -> None:
    assert mask(pd.Series([text], dtype="str")).tolist() == [expected]


def test_mask_keeps_index_dtype_and_missing_values() -> None:
    texts = pd.Series(["a@b.io", None, "plain"], index=[5, 6, 7], dtype="str", name="content")
    masked = mask(texts)
    assert masked.index.tolist() == [5, 6, 7] and masked.dtype == texts.dtype and masked.name == "content"
    assert masked.iloc[0] == "[EMAIL]" and pd.isna(masked.iloc[1]) and masked.iloc[2] == "plain"


@pytest.mark.subprocess
def test_extracted_content_is_masked_before_storage(tmp_path: Path) -> None:
    """The raw asset masks content, comments and original lines: tables and hand-offs never hold them."""
    from fixtures import run_cli, write_jsonl

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
    stored = "".join(warehouse.read("quarantine")["raw"].dropna())
    assert "13812345678" not in stored and "[PHONE]" in stored
    handoffs = sorted((tmp_path / "home" / "storage").rglob("*.parquet"))
    assert {path.parent.name for path in handoffs} >= {"raw_messages", "clean_messages", "raw_feedback", "sessions"}
    for path in handoffs:
        text = pd.read_parquet(path).astype(str).to_string()
        assert "a.b@corp.com" not in text and "13812345678" not in text, path


def test_retention_clears_old_content_and_keeps_rows(tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    for day in ("2026-10-01", "2026-11-20"):
        warehouse.replace_day(
            day,
            Write("messages", pd.DataFrame({"message_id": ["m"], "role": ["user"], "content": ["secret"]})),
            Write("feedback", pd.DataFrame({"feedback_id": ["f"], "rating": [1.0], "comment": ["nice"]})),
            Write("quarantine", pd.DataFrame({"kind": ["messages"], "raw": ["{secret}"]}), kind="messages"),
            Write("quarantine", pd.DataFrame({"kind": ["requests"], "raw": ["{request}"]}), kind="requests"),
        )
    cutoff = retention_cutoff(dt.date(2026, 11, 27), 30)
    assert cutoff == dt.date(2026, 10, 28)
    assert drop_content(warehouse.engine, TABLES, cutoff) == {"messages": 1, "feedback": 1, "quarantine": 1}
    messages = warehouse.read("messages").set_index("day")
    assert pd.isna(messages.loc["2026-10-01", "content"]) and messages.loc["2026-11-20", "content"] == "secret"
    assert warehouse.read("feedback").set_index("day")["comment"].isna().tolist() == [True, False]
    quarantine = warehouse.read("quarantine").sort_values(["day", "kind"])
    assert quarantine["raw"].isna().tolist() == [True, False, False, False]
    assert drop_content(warehouse.engine, TABLES, cutoff) == {"messages": 0, "feedback": 0, "quarantine": 0}

    storage = tmp_path / "storage"
    for asset in ("clean_messages", "raw_feedback", "sessions"):
        (storage / asset).mkdir(parents=True)
        for day in ("2026-10-01", "2026-11-20"):
            frame = pd.DataFrame({"content": ["secret"], "comment": ["nice"], "_raw": ["line"], "n": [1]})
            frame.to_parquet(storage / asset / f"{day}.parquet")
    rewritten = drop_stored_content(storage, cutoff)
    assert [p.relative_to(storage).as_posix() for p in rewritten] == [
        "clean_messages/2026-10-01.parquet",
        "raw_feedback/2026-10-01.parquet",
    ]
    old = pd.read_parquet(storage / "clean_messages" / "2026-10-01.parquet")
    assert old["content"].isna().all() and old["_raw"].isna().all() and old["n"].tolist() == [1]
    assert pd.read_parquet(storage / "raw_feedback" / "2026-10-01.parquet")["comment"].isna().all()
    assert pd.read_parquet(storage / "clean_messages" / "2026-11-20.parquet")["content"].tolist() == ["secret"]
    assert pd.read_parquet(storage / "sessions" / "2026-10-01.parquet")["content"].tolist() == ["secret"]
    assert drop_stored_content(storage, cutoff) == []
