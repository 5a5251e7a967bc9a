"""Which days new or changed landing files touch, for the landing-folder sensor.

A file is known by (size, mtime): one seen before with the same stamp is skipped, so each
version of a file counts once; a changed file is read again and its days re-run, whatever
day they are (a late file for an old day re-runs that day).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chatpulse.config import SourceConfig
from chatpulse.ingest.extract import landing_files, read_source, touched_days
from chatpulse.ingest.files import ExtractError
from chatpulse.schema import Kind
from chatpulse.warehouse import Warehouse

# The kinds whose rows make sessions, and the columns that link a row to a session.
EVENT_KINDS = (Kind.REQUESTS, Kind.MESSAGES)
EVENT_COLUMNS = ("day", "timestamp", "user_id", "session_id")


@dataclass(frozen=True)
class Scan:
    """Days touched by the changed files, every file's stamp now, and files that could not be read.

    `events` holds the dated request and message rows of the changed files (EVENT_COLUMNS: local day as
    YYYY-MM-DD, timestamp UTC, user_id as logged, session_id), which can join sessions of the days either side,
    and their ratings, without their user (a rating joins the session its session_id names, which may have
    started the day before: the sessions step reads the next day's ratings).
    """

    days: frozenset[str]
    stamps: dict[str, tuple[int, int]]
    unreadable: dict[str, str]
    events: pd.DataFrame


def file_days(path: Path, source: SourceConfig, tz: str) -> set[str]:
    """The local days a file's rows fall on (undatable rows count on the file's busiest day)."""
    return touched_days(read_source(path, source, path.name), tz, path)


def _event_keys(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    """A mapped file's dated rows in EVENT_COLUMNS (a row without a time cannot join a session: it is quarantined)."""
    dated = frame[frame["timestamp"].notna()]
    days = dated["timestamp"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d")
    return dated.assign(day=days).reindex(columns=list(EVENT_COLUMNS))


def scan(landing_dir: Path, sources: Iterable[SourceConfig], tz: str, seen: Mapping[str, tuple[int, int]]) -> Scan:
    """Read only the files whose (size, mtime_ns) differ from `seen`."""
    sources = tuple(sources)
    days: set[str] = set()
    stamps: dict[str, tuple[int, int]] = {}
    unreadable: dict[str, str] = {}
    events = [pd.DataFrame(columns=list(EVENT_COLUMNS))]
    for kind in Kind:
        for path, source in landing_files(landing_dir, sources, kind):
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            stamps[str(path)] = stamp
            if tuple(seen.get(str(path), ())) == stamp:
                continue
            try:
                frame = read_source(path, source, path.name)
            except ExtractError as exc:
                unreadable[str(path)] = str(exc)
                continue
            days |= touched_days(frame, tz, path)
            if kind in EVENT_KINDS:
                events.append(_event_keys(frame, tz))
            elif kind is Kind.FEEDBACK:  # a rating joins its session_id's session, never a user's by time
                events.append(_event_keys(frame.assign(user_id=None), tz))
    return Scan(frozenset(days), stamps, unreadable, pd.concat(events, ignore_index=True))


def held_days(warehouse: Warehouse) -> set[str]:
    """The days (YYYY-MM-DD) the landing files runs have read hold rows of, as their reads recorded."""
    return {day for kind in Kind for stamp in warehouse.file_stamps(kind).values() for day in stamp.days}


def already_read(warehouse: Warehouse, landing_dir: Path) -> dict[str, tuple[int, int]]:
    """The stamps of the landing files whose current version a pipeline run has read.

    The sensor starts from these, so turning it on after the CLI (or an earlier deployment)
    ran the landing folder's days re-runs nothing; a file no run has read still counts as new.
    """
    return {
        str(landing_dir / label): (stamp.size, stamp.mtime_ns)
        for kind in Kind
        for label, stamp in warehouse.file_stamps(kind).items()
    }
