"""Who spends, the provider's bill against the log, and the spend alerts the alerts asset folds in."""

from collections.abc import Iterator
from datetime import date, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from chatpulse.alerting.spend import bill_gap, bill_gap_breaches, budget_breaches, budget_status, history_start
from chatpulse.assets.checks import day_check
from chatpulse.assets.daystate import write_day
from chatpulse.config import Settings
from chatpulse.ingest.provider_bill import KIND, read_bills
from chatpulse.metrics.attribution import dimension_daily
from chatpulse.metrics.pricing import day_prices
from chatpulse.metrics.reconcile import cost_reconciliation
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.warehouse import Warehouse, Write

BILL_MATCHES_LOG = "bill_matches_log"


def _budgeted(settings: Settings) -> dict[str, set[str]]:
    """The values each dimension's budgets name: they keep their own rows whatever their rank."""
    keep: dict[str, set[str]] = {}
    for budget in settings.budgets:
        if budget.dimension is not None and budget.value is not None:
            keep.setdefault(budget.dimension, set()).add(budget.value)
    return keep


def _gap_problems(table: pd.DataFrame, warn_share: float) -> list[str]:
    """Why the bill does not match the log, per provider (its `all` row): a gap over the share, a foreign currency."""
    problems = []
    for row in table[table["scope"] == "all"].itertuples():
        side, share = bill_gap(row)
        if pd.notna(share) and abs(share) > warn_share:
            problems.append(f"{row.provider}: {side} cost differs from the bill by {share:+.1%}")
        if row.non_usd_lines:
            problems.append(
                f"{row.provider}: {row.non_usd_lines} bill lines in {row.non_usd_currencies}, not converted"
            )
    return problems


def spend_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The attribution and bill assets over one partitions definition."""

    @asset(
        name="dimension_daily",
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="Who spends: per configured dimension (project, team, API key, ...) and value, the day's "
        "requests, errors, tokens by kind, estimated, logged and best-known cost (spend), p95 latency and users; "
        "the top values by spend, every budgeted value, and the rest as 'other'.",
    )
    def dimension_daily_asset(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> MaterializeResult:
        settings = chatpulse.settings
        day = date.fromisoformat(context.partition_key)
        rates = day_prices(settings.prices, day)
        table = dimension_daily(
            requests, day, settings.timezone, rates, settings.dimensions, settings.top_values, _budgeted(settings)
        )
        write_day(context, warehouse, Write("dimension_daily", table))
        overall = table[table["dimension"] == "all"].iloc[0]
        return MaterializeResult(  # counts only: a dimension's values may be user ids
            metadata={
                "dimensions": len(settings.dimensions),
                "rows": len(table),
                "spend_usd": float(overall["spend_usd"]) if pd.notna(overall["spend_usd"]) else 0.0,
                "unknown_cost_requests": int(overall["unknown_cost_requests"]),
            }
        )

    @asset(
        name="cost_reconciliation",
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests")},
        group_name="metrics",
        kinds={"pandas", "sql"},
        description="The provider's bill (provider_bills: OpenAI Costs API pages or CSV in the landing folder) "
        "read into provider_costs, and compared with the log's logged and estimated cost per day, project and model.",
        check_specs=[
            day_check(
                BILL_MATCHES_LOG,
                "cost_reconciliation",
                partitions,
                "the day's bill and the log's cost differ by at most reconciliation_warn_share of the bill, "
                "and every bill line is in USD",
            )
        ],
    )
    def cost_reconciliation_asset(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        settings = chatpulse.settings
        key = context.partition_key
        day = date.fromisoformat(key)
        bills = read_bills(settings.landing_dir, settings.provider_bills).day(key)
        rates = day_prices(settings.prices, day)
        table = cost_reconciliation(
            requests, day, settings.timezone, rates, bills.costs, settings.provider_bills, settings.dimensions
        )
        write_day(
            context,
            warehouse,
            Write("provider_costs", bills.costs),
            Write("cost_reconciliation", table),
            Write("quarantine", bills.quarantine, kind=KIND),
        )
        problems = _gap_problems(table, settings.reconciliation_warn_share)
        yield MaterializeResult(
            metadata={
                "bill_lines": len(bills.costs),
                "bill_lines_quarantined": len(bills.quarantine),
                "bill_lines_duplicate": bills.duplicates.get(key, 0),
                "billed_usd": float(table.loc[table["scope"] == "all", "billed_usd"].sum()),
            }
        )
        verdict = f"{len(problems)} problems with the bill" if problems else "the bill matches the log"
        yield AssetCheckResult(
            check_name=BILL_MATCHES_LOG,
            passed=not problems,
            severity=AssetCheckSeverity.WARN,
            description=f"{key}: {verdict}",
            metadata={
                "problems": MetadataValue.json(problems),
                "warn_share": settings.reconciliation_warn_share,
                "billed": bool(len(table)),
            },
        )

    return [dimension_daily_asset, cost_reconciliation_asset]


def spend_alerts(store: Warehouse, settings: Settings, day: date, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day's budget and bill-gap breaches (chatpulse.alerting.spend, rows the alert lifecycle takes as
    evaluate.evaluate's) and its `budget_status` rows, from the warehouse's dimension_daily and
    cost_reconciliation."""
    key = day.isoformat()
    daily = store.read_days("dimension_daily", history_start(day).isoformat(), key)
    breaches = [
        budget_breaches(settings.budgets, daily, day, settings.timezone, now),
        bill_gap_breaches(
            store.read("cost_reconciliation", key), settings.reconciliation_warn_share, day, settings.timezone, now
        ),
    ]
    found = [frame for frame in breaches if not frame.empty]
    return (pd.concat(found, ignore_index=True) if found else breaches[0]), budget_status(settings.budgets, daily, day)
