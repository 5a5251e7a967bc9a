"""A mapped file read both ways extract can read it: by Arrow and line by line."""

from pathlib import Path

import pandas as pd
import pytest

from chatpulse.config import SourceConfig
from chatpulse.ingest import files
from chatpulse.ingest.extract import read_source


def both_read_paths(path: Path, source: SourceConfig, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """The file as Arrow reads it (checked), which must equal it read line by line (forced)."""
    by_line: list[int] = []
    parse_lines = files._parse_lines
    monkeypatch.setattr(files, "_parse_lines", lambda *args: by_line.append(1) or parse_lines(*args))
    arrow = read_source(path, source, "f")
    assert not by_line, "Arrow did not read the file"
    monkeypatch.setattr(files, "arrow_records", lambda *args: None)
    lines = read_source(path, source, "f")
    assert by_line
    pd.testing.assert_frame_equal(arrow, lines)
    return arrow
