"""Extract and clean assets, one pair per record kind (requests, messages, feedback)."""

import json
from collections.abc import Iterator
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
)

from chatpulse.assets.checks import day_check
from chatpulse.assets.daystate import write_day
from chatpulse.days import DaySpan
from chatpulse.ingest.check import match_landing
from chatpulse.ingest.check_report import check_day
from chatpulse.ingest.clean import clean_partition, quarantine_outside
from chatpulse.ingest.privacy import day_cache
from chatpulse.ingest.sqlsource import extract_sources
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.schema import Kind
from chatpulse.warehouse import Write

ACCOUNTED = "rows_accounted_for"
QUARANTINE_RATE = "quarantine_rate"
EXPECTATIONS = "expectations_pass"
MAPPED_COLUMNS = "mapped_columns_present"
PARTITION_TAG = "dagster/partition"


def _run_day(context: AssetExecutionContext, span: DaySpan) -> date:
    """The run's day; DayOutOfRange (naming the days that can be run) for a key outside the partitions.

    Read from the run's tag: Dagster's own accessor fails such a key with an internal CheckError.
    """
    day = date.fromisoformat(context.run.tags.get(PARTITION_TAG) or context.partition_key)
    span.check(day)
    return day


def _raw_asset(kind: Kind, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=f"raw_{kind.value}",
        partitions_def=partitions,
        group_name="extract",
        kinds={"pandas"},
        description=f"Every {kind.value} row whose own timestamp falls on the day, from whichever landing file, "
        "and the rows each SQL source's query gives for the day; rows of the files read on days that cannot be "
        "run are quarantined as outside the partition range.",
        check_specs=[
            day_check(
                MAPPED_COLUMNS,
                f"raw_{kind.value}",
                partitions,
                "every column the sources map is in at least one of the day's files",
            )
        ],
    )
    def _raw(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
        settings = chatpulse.settings
        store = warehouse.warehouse
        span = DaySpan.through_today(settings.start_date, settings.timezone)
        day = _run_day(context, span)
        # Personal data is masked and user ids pseudonymised (the cache's `protect`, file by file) before
        # anything (extract cache, hand-off, quarantine, tables) stores them.
        cache = day_cache(settings, kind)
        read = extract_sources(
            settings.landing_dir,
            settings.sources,
            kind,
            day,
            settings.timezone,
            store.file_stamps(kind),
            span,
            cache=cache,
        )
        extract = read.extract
        bounds = (span.first.isoformat(), span.last.isoformat())
        store.save_stamps(kind, extract.stamps, quarantine_outside(extract.outside, kind, span), bounds)
        cache.drop_day(day)  # extracted: a rerun of the day parses its files again
        for label, error in extract.unreadable.items():
            context.log.warning(f"skipped {label}, which cannot be read and cannot hold {day}: {error}")
        if len(extract.outside):
            context.log.warning(
                f"{len(extract.outside)} {kind.value} rows of the files read fall outside the partition range "
                f"({bounds[0]} to {bounds[1]}): quarantined under their own days"
            )
        # Files parsed for the day that hold none of its rows: a time no format reads files a row under its
        # file's modification day, so a wrong time format would otherwise leave the day silently empty.
        elsewhere = () if len(extract.frame) else tuple(sorted(extract.stamps))
        if elsewhere:
            held = sorted({held for label in elsewhere for held in extract.stamps[label].days})
            context.log.warning(
                f"no {kind.value} rows on {day}: the {len(elsewhere)} file(s) read for it hold rows of "
                f"{', '.join(held[:3])}{' ...' if len(held) > 3 else ''} only: {', '.join(elsewhere[:3])}"
                " (a row whose time cannot be read is filed under its file's day: see the mapping warnings)"
            )
        outside = store.outside_counts(*bounds).set_index("kind")
        files = sorted(extract.frame["source_file"].unique())
        yield Output(
            extract.frame,
            metadata={
                "rows": len(extract.frame),
                "files": MetadataValue.json(files),
                "files_read": len(extract.stamps),
                "files_cached": len(extract.cached),
                "outside_range": int(outside["rows"].get(kind.value, 0)),
                "unreadable_skipped": MetadataValue.json(sorted(extract.unreadable)),
            },
        )
        yield _mapping_check(context, chatpulse, kind, extract.frame, read.columns, extract.unresolved, day, elsewhere)

    return _raw


def _mapping_check(
    context: AssetExecutionContext,
    chatpulse: ChatPulseSettings,
    kind: Kind,
    frame: pd.DataFrame,
    sql_columns: dict[str, tuple[str, ...]],
    unresolved: dict[str, tuple[str, ...]],
    run_day: date,
    elsewhere: tuple[str, ...] = (),
) -> AssetCheckResult:
    """Log the mapping mistakes `chatpulse check` would print about the day's files and queries (names and
    counts, no values), and fail (WARN) when a column or path a source maps is in none of them
    (`sql_columns`: each SQL source's query columns; `unresolved`: the paths that reach no record of
    each file read, from extract; `elsewhere`: files read for the day that hold none of its rows)."""
    settings = chatpulse.settings
    day = check_day(
        settings.landing_dir,
        settings.sources,
        kind,
        frame,
        settings.timezone,
        sql_columns=sql_columns,
        unresolved=unresolved,
        also=elsewhere,
    )
    findings = list(day.findings)
    if kind == Kind.REQUESTS:  # files no source reads concern every kind: said once per run, here
        findings += [
            f
            for f in match_landing(settings.landing_dir, settings.sources, settings.bill_patterns).findings
            if f.kind is None
        ]
    for finding in findings:
        context.log.warning(f"mapping: {finding}")
    columns = sorted({str(entry["source_column"]) for entry in day.missing})
    found = f"not found: {', '.join(columns)}" if columns else "every mapped column found"
    return AssetCheckResult(
        check_name=MAPPED_COLUMNS,
        passed=not day.missing,
        severity=AssetCheckSeverity.WARN,
        description=f"{run_day}: {found} ({len(day.files)} files)",
        metadata={"missing": MetadataValue.json(list(day.missing)), "files": MetadataValue.json(list(day.files))},
    )


def _clean_asset(kind: Kind, partitions: PartitionsDefinition) -> AssetsDefinition:
    name = f"clean_{kind.value}"

    @asset(
        name=name,
        partitions_def=partitions,
        ins={"raw": AssetIn(f"raw_{kind.value}")},
        group_name="clean",
        kinds={"pandas", "sql"},
        description=f"Validated, repaired and deduplicated {kind.value}; rejects go to the quarantine table.",
        check_specs=[
            day_check(ACCOUNTED, name, partitions, "rows in = clean + quarantined + duplicates"),
            day_check(QUARANTINE_RATE, name, partitions, "share of rows quarantined stays under the configured limit"),
            day_check(EXPECTATIONS, name, partitions, f"the Great Expectations suite expectations/{kind.value}.json"),
        ],
    )
    def _clean(
        context: AssetExecutionContext, raw: pd.DataFrame, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
        settings = chatpulse.settings
        day = context.partition_key
        result = clean_partition(raw, kind, day, consume=True)  # raw is loaded for this step alone
        quarantine = result.quarantine
        write_day(
            context,
            warehouse,
            Write(kind.value, result.clean),
            Write("quarantine", quarantine, kind=kind.value),
            Write("data_quality", pd.DataFrame([result.quality]), kind=kind.value),
        )
        quality = result.quality
        if quality["quarantined"]:
            context.log.warning(f"quarantined {quality['quarantined']} {kind.value} rows: {quality['reasons']}")
        if quality["flagged"]:  # kept as logged, but worth a look (e.g. a wrong token_convention)
            context.log.warning(f"flagged {quality['flagged']} {kind.value} rows: {quality['flags']}")
        for row in quarantine.head(50).itertuples():
            context.log.info(f"quarantined {row.source_file}:{row.source_line}: {row.reasons}")
        yield Output(
            result.clean,
            metadata={
                key: quality[key] for key in ("rows_in", "clean", "quarantined", "duplicates", "repaired", "flagged")
            },
        )
        accounted = quality["clean"] + quality["quarantined"] + quality["duplicates"]
        yield AssetCheckResult(
            check_name=ACCOUNTED,
            passed=accounted == quality["rows_in"],
            description=f"{day}: {quality['rows_in']} rows in, {accounted} clean, quarantined or duplicate",
            metadata={"rows_in": quality["rows_in"], "accounted": accounted},
        )
        rate = quality["quarantined"] / quality["rows_in"] if quality["rows_in"] else 0.0
        yield AssetCheckResult(
            check_name=QUARANTINE_RATE,
            passed=rate <= settings.quarantine_warn_rate,
            severity=AssetCheckSeverity.WARN,
            description=f"{day}: {rate:.1%} of rows quarantined (limit {settings.quarantine_warn_rate:.1%})",
            metadata={
                "rate": rate,
                "limit": settings.quarantine_warn_rate,
                "reasons": MetadataValue.json(json.loads(quality["reasons"])),
            },
        )
        failed = {
            f"{o.column}: {o.expectation}": o.unexpected_count for o in result.validation.outcomes if not o.success
        }
        yield AssetCheckResult(
            check_name=EXPECTATIONS,
            passed=not failed,
            severity=AssetCheckSeverity.WARN,
            description=f"{day}: {len(failed)} of {len(result.validation.outcomes)} expectations failed",
            metadata={"expectations": len(result.validation.outcomes), "failed": MetadataValue.json(failed)},
        )

    return _clean


def ingest_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The extract and clean assets of every record kind."""
    return [build(kind, partitions) for kind in Kind for build in (_raw_asset, _clean_asset)]
