"""The provider's bill against the log: billed, logged and estimated cost per day, project and model.

For each provider whose bill (chatpulse.ingest.provider_bill) has lines on the day, one `all` row; one
row per project when the bill names projects and its `project_dimension` says which dimension holds
them in the log; one row per model when its line items name models (each side's model named as the price
table knows it, so a snapshot such as `gpt-4o-2024-08-06` meets `gpt-4o`). Each row holds the billed USD, the
cost the log recorded for the provider's requests (`cost_usd`) and their estimate at the price table's
rates, the differences `logged - billed` and `estimated - billed`, and each difference's share of the
bill. A bill line in another currency is left out of `billed_usd` and counted with its currency, never
converted. docs/metrics.md defines every column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from chatpulse.days import DayGrid
from chatpulse.metrics.attribution import dimension_labels, request_costs
from chatpulse.metrics.pricing import DayPrices
from chatpulse.spendconfig import Dimension, ProviderBill
from chatpulse.tables import table_columns

RECONCILIATION_COLUMNS = table_columns("cost_reconciliation")
SCOPES = ("all", "project", "model")


def provider_requests(requests: pd.DataFrame, provider: str) -> pd.DataFrame:
    """The requests a provider's bill covers: those whose `provider` names it (any case), or every request
    when the log says no provider (no such column, or none filled) — then the bill is taken to cover it all."""
    if "provider" not in requests or requests["provider"].isna().all():
        return requests
    return requests[requests["provider"].astype(str).str.casefold() == provider.casefold()]


def _log_side(keys: pd.Series, costs: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """Per key (None for requests without one): requests, logged and estimated USD, logged and unpriced counts."""
    estimate, logged, _ = costs
    frame = pd.DataFrame(
        {
            "value": keys.to_numpy(dtype=object),
            "logged": logged,
            "estimate": estimate,
            "has_logged": ~np.isnan(logged),
            "unpriced": np.isnan(estimate),
        }
    )
    grouped = frame.groupby("value", dropna=False, sort=False)
    out = pd.DataFrame(
        {
            "requests": grouped.size(),
            "logged_usd": grouped["logged"].sum(min_count=1),
            "estimated_usd": grouped["estimate"].sum(min_count=1),
            "logged_requests": grouped["has_logged"].sum(),
            "unpriced_requests": grouped["unpriced"].sum(),
        }
    ).reset_index()
    return out.assign(value=out["value"].astype(object).where(out["value"].notna(), None))


def _bill_side(lines: pd.DataFrame, key: str | None) -> pd.DataFrame:
    """Per key of the bill's lines (None for lines without one): billed USD, lines, non-USD lines, their currencies."""
    frame = lines.assign(value=None if key is None else lines[key], non_usd=lines["amount_usd"].isna())
    rows = []
    for value, group in frame.groupby("value", dropna=False, sort=False):
        foreign = group[group["non_usd"]]
        rows.append(
            {
                "value": None if pd.isna(value) else value,
                "billed_usd": float(group["amount_usd"].sum()),  # the USD lines; 0 when there are none
                "bill_lines": len(group),
                "non_usd_lines": len(foreign),
                "non_usd_currencies": ", ".join(sorted(set(foreign["currency"]))) or None,
            }
        )
    columns = ["value", "billed_usd", "bill_lines", "non_usd_lines", "non_usd_currencies"]
    return pd.DataFrame(rows, columns=columns).astype({"value": object})


def _priced_as(names: pd.Series, provider: str, rates: DayPrices) -> pd.Series:
    """Each model name as the price table knows it (`gpt-4o-2024-08-06` as `gpt-4o`), so a log and a bill that
    name one model apart meet on one row; a name nothing prices stays as written."""

    def one(name: str) -> str:
        found = rates.book.entry(name, rates.day)
        if found is not None:
            return str(found[1])
        match = rates.book.package_model(name, provider)
        return name if match is None else str(match[1].id)

    known = {name: one(str(name)) for name in names.dropna().unique()}
    return names.map(known).astype(object).where(names.notna(), None)


def _compare(bill: pd.DataFrame, log: pd.DataFrame, day_logged: bool, day_estimated: bool) -> pd.DataFrame:
    """Bill and log sides joined on value (a side without the value has none of it), with the gaps."""
    rows = bill.merge(log, on="value", how="outer")
    counts = ("requests", "logged_requests", "unpriced_requests", "bill_lines", "non_usd_lines")
    rows[list(counts)] = rows[list(counts)].fillna(0).astype("int64")
    rows["billed_usd"] = rows["billed_usd"].fillna(0.0)
    # Within a day whose log recorded (or could price) some of the provider's cost, a value without any is $0;
    # but requests none of which has an estimate (an unpriced model) have an unknown one, never $0.
    rows["logged_usd"] = rows["logged_usd"].fillna(0.0) if day_logged else np.nan
    absent = rows["requests"] == 0
    rows["estimated_usd"] = rows["estimated_usd"].mask(absent, 0.0) if day_estimated else np.nan
    billed = rows["billed_usd"].where(rows["billed_usd"] != 0)
    for side in ("logged", "estimated"):
        rows[f"{side}_gap_usd"] = rows[f"{side}_usd"] - rows["billed_usd"]
        rows[f"{side}_gap_share"] = rows[f"{side}_gap_usd"] / billed
    return rows


def cost_reconciliation(
    requests: pd.DataFrame,
    day: dt.date,
    tz: str,
    rates: DayPrices,
    bill: pd.DataFrame,
    bills: Sequence[ProviderBill],
    dimensions: Sequence[Dimension],
) -> pd.DataFrame:
    """The day's `cost_reconciliation` rows (RECONCILIATION_COLUMNS), ordered by provider, scope and value.

    `bill` holds the day's `provider_costs` rows; `rates` is pricing.prices_on(book, day); `bills` and
    `dimensions` are the configuration's (a bill's `project_dimension` names the dimension holding its
    project ids). A provider without bill lines on the day has no rows: there is nothing to compare.
    The log's day is the local day in `tz`; a Costs API bucket is a UTC day (see docs/metrics.md).
    """
    rows = DayGrid.of(day, tz).select(requests, "timestamp").reset_index(drop=True)
    by_name = {dimension.name: dimension for dimension in dimensions}
    frames = []
    for provider, lines in bill.groupby("provider", sort=True):
        mine = provider_requests(rows, str(provider)).reset_index(drop=True)
        costs = request_costs(mine, rates)
        day_logged, day_estimated = bool((~np.isnan(costs[1])).any()), bool((~np.isnan(costs[0])).any())
        scopes: list[tuple[str, str | None, pd.Series]] = [("all", None, pd.Series([None] * len(mine), dtype=object))]
        project_dimension = next(
            (b.project_dimension for b in bills if b.provider == provider and b.project_dimension), None
        )
        if project_dimension in by_name and lines["project"].notna().any():
            scopes.append(("project", "project", dimension_labels(mine, by_name[project_dimension])))
        if lines["model"].notna().any():
            lines = lines.assign(model=_priced_as(lines["model"], str(provider), rates))
            scopes.append(("model", "model", _priced_as(mine["model"], str(provider), rates)))
        for scope, key, labels in scopes:
            compared = _compare(_bill_side(lines, key), _log_side(labels, costs), day_logged, day_estimated)
            frames.append(compared.assign(provider=provider, scope=scope))
    if not frames:
        return pd.DataFrame(columns=list(RECONCILIATION_COLUMNS))
    out = pd.concat(frames, ignore_index=True).assign(day=day.isoformat())
    out["value"] = out["value"].astype(object).where(out["value"].notna(), None)
    out["scope_order"] = out["scope"].map({scope: n for n, scope in enumerate(SCOPES)})
    out = out.sort_values(["provider", "scope_order", "value"], na_position="first", kind="stable")
    return out[list(RECONCILIATION_COLUMNS)].reset_index(drop=True)
