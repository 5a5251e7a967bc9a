"""The extract cache (chatpulse.ingest.daycache): a first run over a folder of many days parses each landing
file once, and every day's rows equal those the run without the cache (each day parsing its files) gives."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

import chatpulse.ingest.extract as extract_module
from chatpulse.config import Settings, load_settings, settings_from_mapping
from chatpulse.days import DaySpan
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.daycache import drop_cached_older
from chatpulse.ingest.extract import RAW, Extract, extract_day
from chatpulse.ingest.files import read_file
from chatpulse.ingest.privacy import day_cache, protect
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.schema import Kind
from chatpulse.warehouse import FileStamp

from fixtures import field_case, write_jsonl

START = date(2026, 11, 1)
DAYS = [START + timedelta(days=n) for n in range(30)]
SPAN = DaySpan(DAYS[0], DAYS[-1], "UTC")
ENV = {"CHATPULSE_PSEUDONYM_KEY": "a-key-for-the-test-only-0123456789"}


def _request(rid: str, ts: str, user: str, **fields: object) -> dict:
    return {"request_id": rid, "timestamp": ts, "model": "gpt-4o", "user_id": user, "latency_ms": 120, **fields}


def _day_file(day: date) -> list[dict | str]:
    """A day's log: rows every three hours, one after the next midnight (the file spans two days), a faulty
    row and a line cut off (both keep their original line, masked, with the user id replaced)."""
    rows: list[dict | str] = [
        _request(f"r{day}-{h}", f"{day}T{h:02}:15:00Z", f"u{h % 4}", prompt=f"write to a{h}@corp.com")
        for h in range(0, 24, 3)
    ]
    rows.append(_request(f"late{day}", f"{day + timedelta(days=1)}T00:05:00Z", "u1"))
    rows.append(_request(f"slow{day}", f"{day}T12:30:00Z", "u2", latency_ms="slow", prompt="call 13812345678"))
    rows.append(f'{{"request_id": "cut{day}", "timestamp": "{day}T13:00:00Z", "user_id": "u3", "prompt": "b@x.com')
    return rows


def _landing(folder: Path) -> Path:
    """30 daily files (gzip and not) and one undated file with a row on every day and one row without a time."""
    for day in DAYS:
        write_jsonl(folder / f"requests-{day}.jsonl{'.gz' if day.day % 2 else ''}", _day_file(day))
    spanning = [_request(f"s{day}", f"{day}T18:00:00Z", "u9", prompt="c@corp.com") for day in DAYS]
    write_jsonl(folder / "requests-all.jsonl", [*spanning, {"request_id": "undated", "model": "gpt-4o"}])
    return folder


def _settings(tmp_path: Path, **config: object) -> Settings:
    base = {"landing_dir": "landing", "start_date": str(START), "pseudonymize_storage": True}
    return settings_from_mapping(base | config, tmp_path, ENV)


def _handed_off(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The frame as the next step reads it: through the Parquet hand-off (missing text is None either way)."""
    path = folder / "handoff.parquet"
    frame.to_parquet(path, index=False)
    return pd.read_parquet(path)


class Run:
    """Days extracted in turn as the raw step does: stamps kept between days, a day's cache entries dropped
    once it has been extracted; `cached` False for the extract without a cache (then protected after)."""

    def __init__(self, settings: Settings, cached: bool) -> None:
        self.settings, self.cached = settings, cached
        self.known: dict[str, FileStamp] = {}
        self.parsed = 0

    def day(self, day: date) -> Extract:
        settings = self.settings
        cache = day_cache(settings, Kind.REQUESTS) if self.cached else None
        args = (settings.landing_dir, settings.sources, Kind.REQUESTS, day, "UTC", self.known, SPAN)
        extract = extract_day(*args, cache=cache)
        if cache is None:
            protect(extract.frame, Kind.REQUESTS, settings)
        else:
            cache.drop_day(day)
        self.known.update(extract.stamps)
        self.parsed += len(extract.stamps)
        return extract


def _entries(settings: Settings) -> list[Path]:
    return sorted((settings.storage_dir / "extract_cache").rglob("*.parquet"))


def _same(cached: Extract, plain: Extract, day: date, folder: Path) -> None:
    """The frames are equal as handed off, and so are the clean rows and the quarantine (original lines included)."""
    pd.testing.assert_frame_equal(_handed_off(cached.frame, folder), _handed_off(plain.frame, folder))
    ours, theirs = (
        clean_partition(cached.frame, Kind.REQUESTS, str(day)),
        clean_partition(plain.frame, Kind.REQUESTS, str(day)),
    )
    pd.testing.assert_frame_equal(ours.clean, theirs.clean)
    pd.testing.assert_frame_equal(ours.quarantine, theirs.quarantine)
    assert ours.quality == theirs.quality
    assert cached.unresolved == plain.unresolved


def test_a_first_run_over_30_days_parses_each_file_once_and_gives_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _landing(tmp_path / "landing")
    settings = _settings(tmp_path)
    files = len(list(settings.landing_dir.iterdir()))
    reads: list[Path] = []

    def counted(path: Path, *args: object) -> object:  # the real reader, counted
        reads.append(path)
        return read_file(path, *args)

    monkeypatch.setattr(extract_module, "read_file", counted)
    with_cache, without = Run(settings, cached=True), Run(_settings(tmp_path, extract_cache=False), cached=False)
    for day in DAYS:
        ours = with_cache.day(day)
        parsed = len(reads)
        theirs = without.day(day)
        assert len(reads) - parsed == len(theirs.stamps)  # the count the runs keep is the reader's
        _same(ours, theirs, day, tmp_path)
        if day != DAYS[0]:  # the first day parses every file; later days take their rows from the cache
            assert ours.stamps == {} and set(ours.cached) == set(ours.frame["source_file"])
    assert with_cache.parsed == files == len(set(reads))
    # Without the cache each day parses again the files that hold it: its own, the day before's and the undated.
    assert without.parsed == files + 3 * (len(DAYS) - 1)
    assert _entries(settings) == []  # every day's entries went once it was extracted


def test_rows_from_the_cache_are_protected_once(tmp_path: Path) -> None:
    _landing(tmp_path / "landing")
    settings = _settings(tmp_path)
    run = Run(settings, cached=True)
    run.day(DAYS[0])
    frame = run.day(DAYS[1]).frame
    assert not frame["user_id"].isin(["u0", "u1", "u2", "u3", "u9"]).any()
    pseudonyms = settings.storage_pseudonyms
    assert set(frame["user_id"].dropna()) <= set(pseudonyms.users(pd.Series(["u0", "u1", "u2", "u3", "u9"])))
    texts = " ".join(frame[RAW].dropna()) + " ".join(frame["metadata"].dropna())
    assert "corp.com" not in texts and "13812345678" not in texts and "[EMAIL]" in texts
    for entry in _entries(settings):  # nothing unmasked on disk either
        stored = pd.read_parquet(entry)
        assert not stored["user_id"].isin(["u0", "u1", "u2", "u3", "u9"]).any()
        assert not stored["metadata"].dropna().str.contains("corp.com").any()


def test_a_changed_a_late_and_a_deleted_file(tmp_path: Path) -> None:
    _landing(tmp_path / "landing")
    settings = _settings(tmp_path)
    with_cache, without = Run(settings, cached=True), Run(_settings(tmp_path, extract_cache=False), cached=False)

    def both(day: date) -> Extract:
        ours = with_cache.day(day)
        _same(ours, without.day(day), day, tmp_path)
        return ours

    for day in DAYS[:10]:
        both(day)
    # Changed: day 12's file gets a row of day 11 (already cached from day 1's run under the old stamp).
    changed = settings.landing_dir / f"requests-{DAYS[11]}.jsonl"
    write_jsonl(changed, [*_day_file(DAYS[11]), _request("added", f"{DAYS[10]}T23:00:00Z", "u5")])
    read = both(DAYS[11])
    assert changed.name in read.stamps  # parsed again: its stamp changed
    eleventh = both(DAYS[10])
    assert "added" in set(eleventh.frame["request_id"]) and changed.name in eleventh.cached
    # Late: a new file with rows of an extracted day (5) and of a later one (14), read first by day 14's run.
    late = [_request("l5", f"{DAYS[4]}T09:00:00Z", "u6"), _request("l14", f"{DAYS[13]}T09:00:00Z", "u6")]
    write_jsonl(settings.landing_dir / "requests-late.jsonl", late)
    both(DAYS[13])
    fifth = both(DAYS[4])  # as the landing sensor asks: day 5 run again
    assert "requests-late.jsonl" in fifth.cached and "l5" in set(fifth.frame["request_id"])
    # Deleted: the undated file goes; its cached rows of the days not yet run go with the next run.
    (settings.landing_dir / "requests-all.jsonl").unlink()
    thirteenth = both(DAYS[12])
    assert "requests-all.jsonl" not in set(thirteenth.frame["source_file"])
    # Left: the days not yet run (15 to 30), each from its own file and the day before's (past midnight).
    left = pd.Series([entry.parent.name for entry in _entries(settings)]).value_counts().to_dict()
    assert left == {str(day): 2 for day in DAYS[14:]}
    for day in DAYS[14:]:
        both(day)
    assert _entries(settings) == []


def test_other_settings_never_read_the_cache_and_retention_clears_it(tmp_path: Path) -> None:
    _landing(tmp_path / "landing")
    first = Run(_settings(tmp_path), cached=True)
    first.day(DAYS[0])
    storage = first.settings.storage_dir
    assert drop_cached_older(storage, timedelta(days=30)) == []  # written just now, whatever their days
    old = [entry for entry in _entries(first.settings) if entry.parent.name < str(DAYS[20])]
    for entry in old:  # as if written 31 days ago
        os.utime(entry, (time.time() - 31 * 86400,) * 2)
    assert drop_cached_older(storage, timedelta(days=30)) == old
    assert {entry.parent.name for entry in _entries(first.settings)} == {str(day) for day in DAYS[20:]}
    other = Run(_settings(tmp_path, metadata_keys=["app"]), cached=True)
    other.known = dict(first.known)
    read = other.day(DAYS[21])
    assert read.cached == () and len(read.stamps) == 3  # masked under other settings: parsed again
    assert {entry.parent.name for entry in _entries(first.settings)} == set()  # and those entries gone


@pytest.mark.pipeline
def test_two_days_of_the_pipeline_parse_a_file_spanning_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field case 07 (one file, sessions across midnight): the first day's extract parses it, the first day's
    neighbour step and the second day's extract take the second day's rows from the cache, which is empty after."""
    case = field_case("07-sessions-across-midnight", tmp_path)
    with (case / "cfg.yaml").open("a") as cfg:
        cfg.write(f"data_home: {tmp_path / 'home'}\n")
    lines = (case / "requests.jsonl").read_text().splitlines()
    on_day = Counter(json.loads(line)["timestamp"][:10] for line in lines if line.strip())  # UTC, as its days
    settings = load_settings(case / "cfg.yaml", env={})
    job = build_definitions(settings, str(case / "cfg.yaml")).resolve_job_def(DAILY_JOB)
    reads: list[Path] = []

    def counted(path: Path, *args: object) -> object:  # the real reader, counted
        reads.append(path)
        return read_file(path, *args)

    monkeypatch.setattr(extract_module, "read_file", counted)
    instance = DagsterInstance.ephemeral()
    extracted = {}
    for day in sorted(on_day):
        result = job.execute_in_process(partition_key=day, instance=instance)
        assert result.success
        (raw,) = result.asset_materializations_for_node("raw_requests")
        extracted[day] = tuple(raw.metadata[key].value for key in ("files_read", "files_cached", "rows"))
    first, second = sorted(on_day)
    assert extracted == {first: (1, 0, on_day[first]), second: (0, 1, on_day[second])}
    # The mapping check reads a copy of the first rows of each day's files (chatpulse.ingest.check.sample_file)
    # from a folder of its own; the landing file itself is parsed once.
    assert [path for path in reads if path.parent == case] == [case / "requests.jsonl"]
    assert _entries(settings) == []
