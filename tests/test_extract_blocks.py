"""A big JSON lines file is mapped a group of blocks at a time, each row as in the whole file's records."""

import json
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.config import SourceConfig
from chatpulse.ingest import blocks, files
from chatpulse.ingest.extract import mapped_records, read_mapped

T = "2026-11-20T10:00:{:02d}+00:00"


def _line(n: int) -> str:
    """Records whose keys and value types change from one group of ten lines to the next."""
    record: dict[str, object] = {"request_id": f"r{n}", "timestamp": T.format(n)}
    group = n // 10
    if group == 0:  # integers, keys in one order, a key only these hold
        record |= {"latency_ms": n, "user_id": n, "extra_b": 1, "extra_a": "x", "only_first": True}
    elif group == 1:  # floats, text ids, the extras the other way round, a nested path only these reach
        record |= {"latency_ms": n + 0.5, "user_id": f"u{n}", "extra_a": "y", "extra_b": None}
        record["usage"] = {"input": n}
    elif group == 2:  # text where numbers were, a NUL escape, no latency at all
        record |= {"status_code": "200", "model": "m\u0000x", "user_id": None}
    else:
        record |= {"latency_ms": None, "status_code": 500, "model": "m"}
    return json.dumps(record)


LINES = [_line(n) for n in range(40)]
LINES[15] = '{"request_id": "cut", "latency_ms": '  # malformed, mid-file


@pytest.mark.parametrize("usage_path", ["usage.input", "usage.missing"])
def test_a_file_mapped_by_blocks_is_mapped_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usage_path: str
) -> None:
    path = tmp_path / "requests-1.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    source = SourceConfig(
        name="requests",
        kind="requests",
        pattern="requests*",
        columns={"prompt_tokens": usage_path},
        defaults={"prompt_tokens": 7, "provider": "acme"},
    )
    monkeypatch.setattr(files, "JSON_CHUNK_BYTES", 200)  # about two lines a block
    monkeypatch.setattr(blocks, "GROUP_ROWS", 3)
    parts: list[pd.DataFrame] = []
    raw = files.read_file(path, "rows", ("timestamp",), None, parts)
    assert len(parts) > 10 and len({tuple(p.columns) for p in parts}) > 3  # the blocks differ
    # Mapped from the blocks' records concatenated by pandas, as before blocks were mapped apart.
    whole = mapped_records(raw, source, "requests-1.jsonl", [pd.concat(parts, ignore_index=True)])
    blocked = read_mapped(path, source, "requests-1.jsonl")
    pd.testing.assert_frame_equal(blocked.frame, whole.frame, check_exact=True)
    assert blocked.unresolved == whole.unresolved
    # Checked against what the lines say: the default only where no record of the file has the path.
    frame = whole.frame.set_index("request_id")
    tokens = frame["prompt_tokens"].dropna().astype(int).to_dict()
    read = {f"r{n}": n for n in range(10, 20) if n != 15}
    assert tokens == (read if usage_path == "usage.input" else {f"r{n}": 7 for n in range(40) if n != 15})
    assert (usage_path in whole.unresolved) == (usage_path == "usage.missing")
    assert (frame["provider"].iloc[:-1] == "acme").all() and frame.loc["r5", "user_id"] == "5"
    assert json.loads(frame.loc["r12", "metadata"]) == {"extra_a": "y"}  # usage is read, so no extra
    assert json.loads(frame.loc["r3", "metadata"]) == {"extra_b": 1.0, "extra_a": "x", "only_first": True}
    assert frame.loc["r25", "model"] == "mx" and frame.loc["r25", "status_code"] == 200
    # The malformed line's row comes after every record's, as its file's records end.
    assert whole.frame["_errors"].iloc[-1] == ["line: malformed JSON: unexpected end of data"]
    assert whole.frame["source_line"].iloc[-1] == 16
