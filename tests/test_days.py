import os
from datetime import date
from pathlib import Path

import pandas as pd

from chatpulse.config import SourceConfig
from chatpulse.days import day_bounds, local_days, window_text
from chatpulse.ingest.extract import extract_day
from chatpulse.ingest.watch import file_days
from chatpulse.schema import Kind

from fixtures import write_jsonl

REQUESTS = SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*")
# In Santiago clocks jump from 00:00 to 01:00 on 2024-09-08 (04:00 UTC): that day has no midnight.
SANTIAGO = "America/Santiago"


def test_local_days_where_daylight_saving_skips_midnight() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-09-08T03:59:59Z", "2024-09-08T04:00:00Z", "2024-09-09T02:59:59Z"]))
    assert [day.date() for day in local_days(stamps, SANTIAGO)] == [
        date(2024, 9, 7),
        date(2024, 9, 8),
        date(2024, 9, 8),
    ]


def test_the_sensor_and_extract_agree_on_a_files_days(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "requests.jsonl",
        [{"timestamp": "2024-09-08T05:30:00Z"}, {"timestamp": "2024-09-08T03:59:59Z"}, {"timestamp": "soon"}],
    )
    extracted = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2024, 9, 8), SANTIAGO)
    assert (
        file_days(path, REQUESTS, SANTIAGO) == extracted.stamps["requests.jsonl"].days == {"2024-09-07", "2024-09-08"}
    )


def test_an_undatable_file_goes_to_its_mtime_day_even_without_a_midnight(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "requests.jsonl", [{"timestamp": "soon"}])
    mtime = pd.Timestamp("2024-09-08T04:30:00Z").timestamp()
    os.utime(path, (mtime, mtime))
    assert file_days(path, REQUESTS, SANTIAGO) == {"2024-09-08"}
    frame = extract_day(tmp_path, [REQUESTS], Kind.REQUESTS, date(2024, 9, 8), SANTIAGO).frame
    assert len(frame) == 1


def test_a_window_across_a_daylight_saving_change_names_each_ends_offset() -> None:
    """New York's 1 November 2026 has 25 hours: it starts at 00:00 EDT and ends at 00:00 EST."""
    start, end = (t.tz_convert("America/New_York") for t in day_bounds(date(2026, 11, 1), "America/New_York"))
    assert (end - start) == pd.Timedelta(hours=25)
    assert window_text(start, end) == "2026-11-01 00:00 EDT–2026-11-02 00:00 EST"
    before, after = (t.tz_convert("America/New_York") for t in day_bounds(date(2026, 10, 31), "America/New_York"))
    assert window_text(before, after) == "2026-10-31 00:00–2026-11-01 00:00 EDT"
    hour = pd.Timestamp("2026-11-01T05:00Z").tz_convert("America/New_York")  # the repeated 01:00
    assert window_text(hour, hour + pd.Timedelta(hours=1)) == "01:00 EDT–01:00 EST"
