"""A JSON lines file read a block at a time gives what one block gives, and its original lines back."""

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.ingest import files
from chatpulse.ingest.files import read_file

LINES = [
    json.dumps({"request_id": f"r{n}", "latency_ms": n, "metadata": {"team": f"t{n % 3}", "n": n}}) for n in range(40)
]
LINES[7] = '{"request_id": "cut", "latency_ms": '  # malformed
LINES[21] = ""  # blank
LINES[30] = '{"request_id": "nested", "metadata": {"deep": {"x": 1}}}'  # not a flat object
TEXT = "\ufeff" + "\n".join(LINES) + "\r\n"


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
# A few lines a read, lines longer than a read (pending across reads), a first read of the byte order mark
# alone; the last line ended or not.
@pytest.mark.parametrize("read_bytes", [64, 16, 3])
@pytest.mark.parametrize("end", ["\r\n", ""])
def test_small_blocks_read_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, read_bytes: int, end: str
) -> None:
    path = tmp_path / name
    data = TEXT.removesuffix("\r\n").encode() + end.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    whole = read_file(path)
    monkeypatch.setattr(files, "JSON_CHUNK_BYTES", read_bytes)
    blocked = read_file(path)
    assert len(blocked.blocks) > 10
    pd.testing.assert_frame_equal(blocked.records, whole.records)
    assert blocked.lines.tolist() == whole.lines.tolist()
    assert blocked.malformed == whole.malformed == [(8, "malformed JSON: unexpected end of data")]
    # Every line's own text (the byte order mark and the CR are not part of it), from either.
    numbers = range(1, len(LINES) + 1)
    expected = {n: line for n, line in zip(numbers, TEXT.removeprefix("\ufeff").split("\n"), strict=False)}
    expected[len(LINES)] = LINES[-1]
    assert blocked.original_lines(numbers) == whole.original_lines(numbers) == expected
    assert blocked.byte_size() == whole.byte_size() == len(data) - 3
    assert blocked.records["metadata"].iloc[0] == {"team": "t0", "n": 0}


def test_a_gzipped_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    """gzip data under a plain name (a rotated log) is read as the lines it holds, not as one undecodable line."""
    records = [{"request_id": f"r{n}", "timestamp": "2026-11-20T10:00:00Z"} for n in range(3)]
    text = "".join(json.dumps(record) + "\n" for record in records).encode()
    (tmp_path / "named.jsonl.gz").write_bytes(gzip.compress(text))
    (tmp_path / "unnamed.jsonl").write_bytes(gzip.compress(text))
    named, unnamed = (read_file(tmp_path / name, "rows") for name in ("named.jsonl.gz", "unnamed.jsonl"))
    assert unnamed.records["request_id"].tolist() == ["r0", "r1", "r2"]
    pd.testing.assert_frame_equal(unnamed.records, named.records)
    assert not unnamed.malformed


@pytest.mark.parametrize("streamed", [True, False])
def test_damaged_gzip_data_is_an_error_naming_the_file(tmp_path: Path, streamed: bool) -> None:
    data = bytearray(gzip.compress(TEXT.encode()))
    data[10] = 0xFF  # the first deflate block's header: block type 3, which RFC 1951 reserves (an error)
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(files.ExtractError, match=f"^{path}: cannot read file: "):
        # A document layout reads the file whole, rows stream it a block at a time.
        read_file(path, "rows" if streamed else "document")


def test_a_gz_file_that_is_no_gzip_says_so(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(b"no")  # shorter than a gzip header
    with pytest.raises(files.ExtractError, match=r"cannot read file: Not a gzipped file \(b'no'\)$"):
        read_file(path)
    path.write_bytes(b"")
    assert read_file(path).records.empty
