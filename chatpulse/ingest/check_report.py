"""What a check says: the text `chatpulse check` prints, and the findings about one day's files for a run.

The numbers come from `chatpulse.ingest.check` (a bounded sample of each file, mapped as a run
maps it); this module adds up a source's files and words the result. `check_landing` looks at
every file for the CLI; `check_day` at the files a day's rows came from, for the raw_<kind> assets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from chatpulse.config import Settings, SourceConfig
from chatpulse.formatting import plural
from chatpulse.ingest.check import (
    DEFAULT_ROWS,
    FAILURE_COLUMNS,
    ColumnSample,
    FileSample,
    Finding,
    column_text,
    label_of,
    match_landing,
    option_findings,
    readable,
    relied_on,
    sample_file,
    sample_findings,
    sample_query,
    unmet,
)
from chatpulse.ingest.extract import landing_files
from chatpulse.ingest.sqlsource import source_label
from chatpulse.mapping import split_path
from chatpulse.schema import COLUMNS, SOURCE_FILE, Kind


@dataclass(frozen=True)
class CheckResult:
    """The lines to print, and the findings among them (a check passes when there are none)."""

    lines: tuple[str, ...]
    findings: tuple[Finding, ...]


def span(days: Sequence[date]) -> str:
    """Sorted days as '2026-11-20', or '2026-11-20 .. 2026-11-22 (3 days)' (first, last and how many)."""
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0]} .. {days[-1]} ({plural(len(days), 'day')})"


def outside_findings(source: SourceConfig, days: Iterable[date], start: date, today: date) -> list[Finding]:
    """Days of a source's rows that are no partition: before start_date (never run) or after today (not yet)."""
    days = sorted(set(days))
    early, late = [d for d in days if d < start], [d for d in days if d > today]
    texts = []
    if early:
        texts.append(f"rows on {span(early)} are before start_date {start}: never run")
    if late:
        texts.append(f"rows on {span(late)} are after today {today}: no partition yet")
    return [Finding(text, source.name, source.kind) for text in texts]


def _file_line(sample: FileSample) -> str:
    if sample.error is not None:
        return f"  {sample.label}: cannot be read"
    rows = plural(sample.rows, "row") + (" (the file goes on)" if sample.more else "")
    parts = [rows, span(list(sample.days)) if sample.days else "no readable time"]
    if sample.malformed:
        parts.append(plural(sample.malformed, "malformed line") + _at(sample.malformed_lines, sample.malformed))
    if sample.undated and sample.days:
        parts.append(f"{sample.undated:,} without a readable time" + _at(sample.undated_lines, sample.undated))
    return f"  {sample.label}: " + ", ".join(parts)


def _at(lines: tuple[int, ...], count: int) -> str:
    """ " (line 4)", " (lines 2, 7)" or, when there are more than shown, " (lines 2, 7, 9, 11, 12, ...)"."""
    if not lines:
        return ""
    more = ", ..." if count > len(lines) else ""
    return f" (line{'s' if count > 1 else ''} {', '.join(map(str, lines))}{more})"


def _absent(source: SourceConfig, name: str) -> str:
    """A column not in the files, with what fills it instead."""
    if name in source.defaults:
        return f"{name} (default {source.defaults[name]!r})"
    if source.failure is not None and name in FAILURE_COLUMNS:
        return f"{name} (from the failure rule)"
    return name


def _column_lines(source: SourceConfig, samples: Sequence[FileSample]) -> list[str]:
    """One line per column the source maps or finds, in canonical order; then those it does not find."""
    rows = sum(sample.rows for sample in samples)
    relied = relied_on(source)
    lines, absent = [], []
    for name in COLUMNS[source.kind]:
        column = column_text(source, name)
        found = [s for s in samples if s.columns[name].found]
        if not found:
            if name in relied:
                lines.append(f"  {name} <- '{column}': NOT FOUND")
            else:
                absent.append(_absent(source, name))
            continue
        stats = [s.columns[name] for s in found]
        filled = sum(c.filled for c in stats)
        text = f"  {name} <- '{column}': {filled:,} of {rows:,} rows filled ({filled / rows:.1%})"
        unmet = [path for path in source.inputs(name) if all(path in s.columns[name].missing for s in samples)]
        if unmet:
            text += ", " + ", ".join(f"'{path}'" for path in unmet) + " NOT FOUND"
        unreadable = sum(c.unreadable for c in stats)
        if unreadable:
            first = next((sample, c) for sample, c in zip(found, stats, strict=True) if c.unreadable)
            text += f", {unreadable:,} unreadable (first: {first[0].label} line {first[1].unreadable_line}"
            text += f": {first[1].reason})" if first[1].reason else ")"
        if len(found) < len(samples):
            text += f", not in {', '.join(s.label for s in samples if not s.columns[name].found)}"
        shown = next((c.example for c in stats if c.example is not None), None)
        if shown is not None:
            text += f", e.g. {shown}"
        elif filled:
            text += ", not shown"
        lines.append(text)
    if absent:
        where = "not in the files" if source.sql is None else "not among the query's columns"
        lines.append(f"  {where}: {', '.join(absent)}")
    extras = sorted({str(name) for sample in samples for name in sample.unmapped})
    if extras:
        kept = "metadata" in COLUMNS[source.kind] and "metadata" not in source.columns
        where = "kept in metadata" if kept else "not read"
        lines.append(f"  other columns ({where}): {', '.join(extras)}")
    return lines


def _source_lines(
    source: SourceConfig,
    samples: Sequence[FileSample],
    shadowed: dict[str, str],
    settings: Settings,
    today: date,
    read_from: tuple[str, list[str]] | None = None,
) -> tuple[list[str], list[Finding]]:
    """A source's lines and findings; `read_from` (where, sample lines) words a SQL source's query instead of files."""
    where, sampled = read_from or (f"pattern '{source.pattern}'", [_file_line(sample) for sample in samples])
    lines = [f"source '{source.name}' ({source.kind.value}), {where}:", *sampled]
    lines += [f"  {label}: read by source '{owner}' first" for label, owner in shadowed.items()]
    if not samples and not shadowed:
        lines.append("  no file")
    findings = option_findings(source) + sample_findings(source, samples)
    read = readable(samples)
    if not read:
        return lines, findings
    days = sorted({day for sample in read for day in sample.days})
    lines.append(f"  days ({settings.timezone}): {span(days) if days else 'none readable'}")
    outside = outside_findings(source, days, settings.start_date, today)
    if outside:
        lines.append("  outside the partitions: " + "; ".join(finding.text for finding in outside))
    return lines + _column_lines(source, read), findings + outside


def _sql_source_lines(
    source: SourceConfig, settings: Settings, rows: int, day: date, today: date, env: Mapping[str, str]
) -> tuple[list[str], list[Finding]]:
    """A SQL source's query for `day`: connects, counts its rows, samples and maps the first `rows` (0: all)."""
    sample, total = sample_query(source, day, settings.timezone, rows, env)
    if sample.error is not None:
        line = f"  {sample.label}: cannot be read"
    else:
        read = f" (the first {sample.rows:,} read)" if sample.more else ""
        line = f"  {sample.label}: {plural(total, 'row')} for {day}{read}"
    where = f"sql {source.sql.shown_url(env)}, query for {day}"
    lines, findings = _source_lines(source, [sample], {}, settings, today, (where, [line]))
    away = sum(n for other, n in sample.days.items() if other != day)
    if away:
        text = (
            f"{away:,} of the {sample.rows:,} rows read are not on {day}, the day the query was run for, by their "
            "own time (a run quarantines them): check the query's time column and timestamp.timezone"
        )
        findings.append(Finding(text, source.name, source.kind))
    return lines, findings


def check_landing(
    settings: Settings, rows: int, today: date, day: date | None = None, env: Mapping[str, str] | None = None
) -> CheckResult:
    """Sample every source's files (`rows` from the start of each, 0: all) and word what they hold.

    `today` is the last partition (today in the configured zone). A SQL source runs its query for `day`
    (default the day before `today`, the day the schedule runs), with the variables of `env` (default the
    process's). The findings: the landing folder's (`match_landing`), each source's options and samples,
    days outside the partitions, and a query's rows whose own time is not on its day.
    """
    day = day or today - timedelta(days=1)
    env = os.environ if env is None else env
    landing = match_landing(settings.landing_dir, settings.sources, settings.bill_patterns)
    read = f"the first {plural(rows, 'row')} of each file" if rows else "every row of each file"
    lines = [
        f"landing folder {settings.landing_dir}",
        f"partitions {settings.start_date} .. {today} ({settings.timezone}); read {read}",
    ]
    findings = list(landing.findings)
    for position, source in enumerate(settings.sources):
        if source.sql is not None:
            source_lines, source_findings = _sql_source_lines(source, settings, rows, day, today, env)
            lines += ["", *source_lines]
            findings += source_findings
            continue
        owned = landing.owned[position] if landing.owned else ()
        shadowed = landing.shadowed[position] if landing.shadowed else {}
        samples = [
            sample_file(path, label_of(path, settings.landing_dir), source, settings.timezone, rows) for path in owned
        ]
        source_lines, source_findings = _source_lines(source, samples, shadowed, settings, today)
        lines += ["", *source_lines]
        findings += source_findings
    # Said in the order of the sources they concern, the landing folder's own first.
    position: dict[tuple[str, str], int] = {}
    for number, source in enumerate(settings.sources):
        position.setdefault((source.name, source.kind), number)
    findings.sort(key=lambda f: -1 if f.source is None else position.get((f.source, f.kind), len(position)))
    lines.append("")
    lines += [f"warning: {finding}" for finding in findings]
    lines.append(f"{plural(len(findings), 'warning')}" if findings else "no warnings")
    return CheckResult(tuple(lines), tuple(findings))


def _seen_on_day(sample: FileSample, source: SourceConfig, frame: pd.DataFrame) -> FileSample:
    """The sample, with a column also found where a day's row from the file has a value for it (a JSON
    key may first appear past the sample), unless a default or the failure rule gave that value. Only
    a column read from one path tells which path it came from; see _read_whole for the others."""
    filled_in = {*source.defaults, *(FAILURE_COLUMNS if source.failure is not None else ())}
    unseen = [
        name
        for name, stats in sample.columns.items()
        if not stats.found and name not in filled_in and isinstance(source.column(name), str)
    ]
    if not unseen:
        return sample
    mine = (frame[SOURCE_FILE] == sample.label).to_numpy()  # masks, not a copy of a big day's rows
    seen = {
        name: replace(sample.columns[name], found=True, missing=())
        for name in unseen
        if (frame[name].notna() & mine).any()
    }
    return replace(sample, columns={**sample.columns, **seen}) if seen else sample


def _read_whole(sample: FileSample, source: SourceConfig, unresolved: tuple[str, ...]) -> FileSample:
    """The sample, with the paths that reach no record known from the whole file (extract's `unresolved`)
    in place of the sample's: a key may first appear past the sampled rows."""
    columns = {}
    for name, stats in sample.columns.items():
        missing = unmet(source, name, lambda path: path not in unresolved)
        found = stats.found or any(path not in unresolved for path in source.inputs(name))
        columns[name] = replace(stats, found=found, missing=missing)
    return replace(sample, columns=columns)


@dataclass(frozen=True)
class DayCheck:
    """The mapping findings about a day's files of one kind, and the relied-on columns in none of them."""

    files: tuple[str, ...]
    missing: tuple[dict[str, object], ...]  # {source, column, source_column, files}
    findings: tuple[Finding, ...]


def _query_sample(source: SourceConfig, columns: Sequence[str], frame: pd.DataFrame) -> FileSample:
    """What a SQL source's rows of the day hold: a path is found when its first key is among its query's
    `columns` or one of the source's rows of the day has a value for the column it fills."""
    mine = (frame[SOURCE_FILE] == source_label(source)).to_numpy()
    found = {}
    for name in COLUMNS[source.kind]:
        paths = source.inputs(name)
        seen = bool((frame[name].notna() & mine).any())
        missing = () if seen else unmet(source, name, lambda path: split_path(path)[0] in columns)
        found[name] = ColumnSample(seen or any(split_path(path)[0] in columns for path in paths), missing=missing)
    return FileSample(source_label(source), rows=int(mine.sum()), columns=found)


def check_day(
    landing_dir: Path,
    sources: Sequence[SourceConfig],
    kind: Kind,
    frame: pd.DataFrame,
    tz: str,
    rows: int = DEFAULT_ROWS,
    sql_columns: Mapping[str, Sequence[str]] | None = None,
    unresolved: Mapping[str, tuple[str, ...]] | None = None,
    also: Sequence[str] = (),
) -> DayCheck:
    """Findings about the files a day's extracted `frame` of `kind` came from (its SOURCE_FILE labels), and
    the files labelled in `also` (read for the day, holding none of its rows).

    A column counts as present in a file when its path reaches one of the file's first `rows`
    records (the CSV header, the keys of the JSON lines) or a row of the day from that file has a
    value for it; so a column found in no file had no value on the day either. `unresolved`
    (Extract.unresolved: file -> paths that reach no record of the whole file) decides instead for
    the files it names. A SQL source's columns are its query's (`sql_columns`, by source name; a
    source not named there is not judged). Also each source's `option_findings` and its pattern's
    findings. Stray files are left to the caller. `missing` names each relied-on path
    (`source_column`) found in no file.
    """
    sql_columns = sql_columns or {}
    kind_sources = [source for source in sources if source.kind == kind]
    owners = {label_of(path, landing_dir): (path, source) for path, source in landing_files(landing_dir, sources, kind)}
    labels = tuple(sorted({*frame[SOURCE_FILE].dropna().unique(), *also} & owners.keys()))
    samples: dict[int, list[FileSample]] = {}
    for label in labels:
        path, source = owners[label]
        sample = sample_file(path, label, source, tz, rows)
        if sample.error is None and unresolved is not None and label in unresolved:
            sample = _read_whole(sample, source, unresolved[label])
        elif sample.error is None:
            sample = _seen_on_day(sample, source, frame)
        samples.setdefault(id(source), []).append(sample)
    findings = [f for f in match_landing(landing_dir, sources).findings if f.kind == kind]
    missing = []
    for source in kind_sources:
        own = samples.get(id(source), [])
        if source.sql is not None and source.name in sql_columns:
            own = [_query_sample(source, sql_columns[source.name], frame)]
        findings += option_findings(source) + sample_findings(source, own)
        read = readable(own)
        files = [s.label for s in read]
        missing += [
            {"source": source.name, "column": name, "source_column": path, "files": files}
            for name in (relied_on(source) if read else ())
            for path in source.inputs(name)
            if all(path in s.columns[name].missing for s in read)
        ]
    return DayCheck(labels, tuple(missing), tuple(findings))
