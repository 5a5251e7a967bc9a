"""Extract and clean assets, one pair per record kind (requests, messages, feedback)."""

import json
from collections.abc import Iterator
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
)

from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.ingest.privacy import protect
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.schema import Kind
from chatpulse.warehouse import Write

ACCOUNTED = "rows_accounted_for"
QUARANTINE_RATE = "quarantine_rate"
EXPECTATIONS = "expectations_pass"


def _raw_asset(kind: Kind, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=f"raw_{kind.value}",
        partitions_def=partitions,
        group_name="extract",
        kinds={"pandas"},
        description=f"Every {kind.value} row whose own timestamp falls on the day, from whichever landing file.",
    )
    def _raw(
        context: AssetExecutionContext, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> Output[pd.DataFrame]:
        settings = chatpulse.settings
        store = warehouse.warehouse
        day = date.fromisoformat(context.partition_key)
        extract = extract_day(
            settings.landing_dir, settings.sources, kind, day, settings.timezone, store.file_stamps(kind)
        )
        store.save_stamps(kind, extract.stamps)
        # Personal data is masked and user ids pseudonymised before anything (hand-off, quarantine, tables) stores them.
        protect(extract.frame, kind, settings)
        files = sorted(extract.frame["source_file"].unique())
        return Output(
            extract.frame,
            metadata={
                "rows": len(extract.frame),
                "files": MetadataValue.json(files),
                "files_read": len(extract.stamps),
            },
        )

    return _raw


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
            AssetCheckSpec(ACCOUNTED, asset=name, description="rows in = clean + quarantined + duplicates"),
            AssetCheckSpec(
                QUARANTINE_RATE, asset=name, description="share of rows quarantined stays under the configured limit"
            ),
            AssetCheckSpec(
                EXPECTATIONS, asset=name, description=f"the Great Expectations suite expectations/{kind.value}.json"
            ),
        ],
    )
    def _clean(
        context: AssetExecutionContext, raw: pd.DataFrame, chatpulse: ChatPulseSettings, warehouse: WarehouseResource
    ) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
        settings = chatpulse.settings
        day = context.partition_key
        result = clean_partition(raw, kind, day)
        quarantine = result.quarantine
        warehouse.warehouse.replace_day(
            day,
            Write(kind.value, result.clean),
            Write("quarantine", quarantine, kind=kind.value),
            Write("data_quality", pd.DataFrame([result.quality]), kind=kind.value),
        )
        quality = result.quality
        if quality["quarantined"]:
            context.log.warning(f"quarantined {quality['quarantined']} {kind.value} rows: {quality['reasons']}")
        for row in quarantine.head(50).itertuples():
            context.log.info(f"quarantined {row.source_file}:{row.source_line}: {row.reasons}")
        yield Output(
            result.clean,
            metadata={key: quality[key] for key in ("rows_in", "clean", "quarantined", "duplicates", "repaired")},
        )
        accounted = quality["clean"] + quality["quarantined"] + quality["duplicates"]
        yield AssetCheckResult(
            check_name=ACCOUNTED,
            passed=accounted == quality["rows_in"],
            metadata={"rows_in": quality["rows_in"], "accounted": accounted},
        )
        rate = quality["quarantined"] / quality["rows_in"] if quality["rows_in"] else 0.0
        yield AssetCheckResult(
            check_name=QUARANTINE_RATE,
            passed=rate <= settings.quarantine_warn_rate,
            severity=AssetCheckSeverity.WARN,
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
            metadata={"expectations": len(result.validation.outcomes), "failed": MetadataValue.json(failed)},
        )

    return _clean


def ingest_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The extract and clean assets of every record kind."""
    return [build(kind, partitions) for kind in Kind for build in (_raw_asset, _clean_asset)]
