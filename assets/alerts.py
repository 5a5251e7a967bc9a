"""The alerts asset: evaluate the rules on a day's metric tables, keep the alert lifecycle, notify."""

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from chatpulse.alerting import delivery, evaluate, prometheus
from chatpulse.alerting.rules import load_rules
from chatpulse.assets.checks import day_check
from chatpulse.assets.daystate import wait_for_earlier_days, write_day
from chatpulse.assets.spend import spend_alerts
from chatpulse.behaviour.scenarios import scenario_labels
from chatpulse.daystate import other_reads
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.warehouse import Write

NO_ERROR_ALERTS = "no_error_alerts"
NO_WARN_ALERTS = "no_warn_alerts"


def alert_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """The alerts asset over one partitions definition."""

    @asset(
        name="alerts",
        partitions_def=partitions,
        ins={"requests": AssetIn("clean_requests", metadata={"columns": list(evaluate.REQUEST_COLUMNS)})},
        deps=[AssetKey(name) for name in other_reads("alerts", ("clean_requests",))],
        group_name="alerts",
        kinds={"pandas", "sql"},
        description="Alert rules evaluated on the day's metric tables: one row per rule and breach "
        "(back-to-back breaching windows are one breach), open while the breach goes on and resolved once "
        "the metric is back; budgets (use and month-end forecast) and the gap between the provider's bill and the "
        "log alert the same way; opened and resolved alerts are sent by webhook and e-mail.",
        check_specs=[
            day_check(NO_ERROR_ALERTS, "alerts", partitions, "no alert of severity error on the day"),
            day_check(NO_WARN_ALERTS, "alerts", partitions, "no alert of severity warn on the day"),
        ],
    )
    def alerts_asset(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        wait_for_earlier_days(context, chatpulse.settings.wait_for_earlier_days_minutes)  # baselines, budgets
        settings, store = chatpulse.settings, warehouse.warehouse
        day, now = date.fromisoformat(context.partition_key), datetime.now(UTC)
        rules = load_rules(settings.alert_rules, scenario_labels(settings.scenario_rules, settings.scenario_model))
        tables = evaluate.Tables.read(store, day, rules, requests)
        breaches = evaluate.evaluate(rules, tables, day, settings.timezone, now)
        spend, budgets = spend_alerts(store, settings, day, now)
        if not spend.empty:
            breaches = pd.concat([breaches, spend], ignore_index=True).sort_values(["window_start", "rule"])
        stored = evaluate.update_alerts(store.read("alerts", context.partition_key), breaches, now)
        windows = evaluate.window_series(rules, tables, day, settings.timezone)
        today = windows.pop(context.partition_key)
        write_day(
            context, warehouse, Write("alerts", stored), Write("alert_windows", today), Write("budget_status", budgets)
        )
        for earlier, rows in windows.items():  # baseline days read from their requests, stored for next time
            store.replace_day(earlier, Write("alert_windows", rows))
        outcome = delivery.deliver(
            store, context.partition_key, delivery.deliveries(delivery.to_notify(stored, now), settings), settings, now
        )
        for error in outcome.errors:
            context.log.warning(f"alert delivery failed, kept for the next run: {error}")
        prometheus.write_textfile(settings.data_home / "metrics" / "chatpulse.prom", store)
        opened = evaluate.open_alerts(stored)
        yield MaterializeResult(
            metadata={
                "open_alerts": len(opened),
                "resolved_alerts": len(stored) - len(opened),
                "deliveries_sent": outcome.delivered,
                "deliveries_pending": outcome.pending,
            }
        )
        for check, severity, level in (
            (NO_ERROR_ALERTS, AssetCheckSeverity.ERROR, "error"),
            (NO_WARN_ALERTS, AssetCheckSeverity.WARN, "warn"),
        ):
            fired = stored[stored["severity"] == level]
            still_open = int(fired["resolved_at"].isna().sum())
            yield AssetCheckResult(
                check_name=check,
                passed=fired.empty,
                severity=severity,
                description=f"{day}: {len(fired)} {level} alert{'' if len(fired) == 1 else 's'}, {still_open} open",
                metadata={
                    "open": still_open,
                    "alerts": MetadataValue.json([delivery.describe(row) for _, row in fired.iterrows()]),
                },
            )

    return [alerts_asset]
