"""Who spends: the day's requests, tokens, cost, latency and users per value of each configured dimension.

A dimension (`dimensions:` in the configuration, chatpulse.spendconfig.Dimension) reads its value from a
text request column or from a key of the request's metadata. Each request's spend is its logged cost
where the log has one, else its estimate at the price table's rates (chatpulse.metrics.pricing): the
logged cost is what the provider or gateway recorded for that very call, the estimate fills in the calls
that recorded none. The busiest values by spend keep their own rows, at most `top` per dimension, plus
every value a budget names; the rest are folded into one `other` row, so a label with a million distinct
values costs a million-row table nowhere. docs/metrics.md defines every column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from chatpulse import stats
from chatpulse.days import DayGrid
from chatpulse.metrics.pricing import DayPrices, estimate_cost
from chatpulse.schema import is_error
from chatpulse.spendconfig import OVERALL, Dimension
from chatpulse.tables import USAGE_TOKENS, table_columns

DIMENSION_COLUMNS = table_columns("dimension_daily")
VALUE, UNSET, OTHER = "value", "unset", "other"  # the `bucket` of a dimension's row; the overall row's is "all"
_NOTHING = object()  # a key that is absent, told apart from one whose value is null


def _floats(rows: pd.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy(dtype="float64", na_value=np.nan)


def _as_label(value: Any) -> str | None:
    """A metadata value as the text a dimension shows: strings as they are, numbers and booleans as JSON,
    objects and lists as compact JSON; missing, null and blank text name no one (None)."""
    if value is _NOTHING or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return orjson.dumps(value).decode()


def _lookup(text: Any, key: str) -> str | None:
    """The value under `key` of one metadata JSON text: the key itself, else a dotted path into nested objects."""
    if not isinstance(text, str):
        return None
    try:
        found: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None  # a log's own metadata string, not an object: it has no keys
    if not isinstance(found, dict):
        return None
    if key in found:
        return _as_label(found[key])
    for part in key.split("."):
        found = found.get(part, _NOTHING) if isinstance(found, dict) else _NOTHING
    return _as_label(found)


def dimension_labels(requests: pd.DataFrame, dimension: Dimension) -> pd.Series:
    """Each request's value of `dimension` as text (object dtype, None where it has none), index kept.

    A column's value as text (blank text names no one); a metadata key's from the request's `metadata`
    JSON. Each distinct value is looked at once: a million rows sharing a few hundred metadata texts cost
    a few hundred parses.
    """
    column = requests["metadata" if dimension.column is None else dimension.column]
    codes, distinct = pd.factorize(column)
    if dimension.column is None:
        key = dimension.metadata_key
        found = [_lookup(text, key) for text in distinct]
    else:
        found = [str(value) if str(value).strip() else None for value in distinct]
    return pd.Series(np.array([*found, None], dtype=object)[codes], index=requests.index, dtype=object)


def request_costs(rows: pd.DataFrame, rates: DayPrices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per request, USD: the estimate at `rates` (pricing.prices_on; NaN when unpriced), the logged cost
    (NaN when none) and the spend: the logged cost where there is one, else the estimate."""
    estimate = estimate_cost(rows, rates)
    logged = _floats(rows, "cost_usd")
    return estimate, logged, np.where(np.isnan(logged), estimate, logged)


def _sum_where(codes: np.ndarray, groups: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the sum of the non-NaN values (NaN when there are none) and how many there are."""
    present = ~np.isnan(values)
    count = np.bincount(codes, weights=present, minlength=groups)
    total = np.bincount(codes, weights=np.where(present, values, 0.0), minlength=groups)
    return np.where(count > 0, total, np.nan), count.astype("int64")


def _aggregate(rows: pd.DataFrame, codes: np.ndarray, groups: int, costs: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """The dimension_daily measures of each group 0..groups-1 of `rows` (codes: each row's group)."""
    estimate, logged, spend = costs
    count = np.bincount(codes, minlength=groups)
    errors = np.bincount(codes, weights=is_error(rows).to_numpy(dtype="float64"), minlength=groups).astype("int64")
    estimate_sum, priced = _sum_where(codes, groups, estimate)
    logged_sum, logged_count = _sum_where(codes, groups, logged)
    spend_sum, known = _sum_where(codes, groups, spend)
    index = pd.RangeIndex(groups)
    latency = pd.Series(_floats(rows, "latency_ms")).groupby(codes)
    users = rows["user_id"].reset_index(drop=True).groupby(codes).nunique()
    out = pd.DataFrame(
        {
            "requests": count,
            "errors": errors,
            "error_rate": np.divide(errors, count, out=np.full(groups, np.nan), where=count > 0),
            **{
                kind: np.bincount(codes, weights=np.nan_to_num(_floats(rows, kind)), minlength=groups).astype("int64")
                for kind in USAGE_TOKENS
            },
            "cost_estimate_usd": estimate_sum,
            "cost_logged_usd": logged_sum,
            "logged_requests": logged_count,
            "unpriced_requests": count - priced,
            "spend_usd": spend_sum,
            "unknown_cost_requests": count - known,
            "latency_p95_ms": stats.group_percentile(latency, 95).reindex(index).to_numpy(dtype="float64"),
            "users": users.reindex(index, fill_value=0).to_numpy(dtype="int64"),
        },
        index=index,
    )
    return out


def _dimension_rows(
    rows: pd.DataFrame, labels: pd.Series, costs: tuple[np.ndarray, ...], top: int, keep: Collection[str]
) -> pd.DataFrame:
    """One dimension's rows: its `top` values by spend and the `keep` values seen, each on its own row,
    ranked 1, 2, ...; an `unset` row for requests without a value and an `other` row folding the rest.

    Values are ranked by spend (unknown counting 0), then requests, then the value itself, so the order
    is the same on every run.
    """
    raw, distinct = pd.factorize(labels)
    named = raw >= 0
    spend = np.bincount(raw[named], weights=np.nan_to_num(costs[2])[named], minlength=len(distinct))
    requests = np.bincount(raw[named], minlength=len(distinct))
    text = np.asarray(distinct, dtype=object).astype(str)
    order = np.lexsort((text, -requests, -spend))  # the last key sorts first
    chosen = [*order[:top], *(code for code in order[top:] if text[code] in keep)]
    unset_code, other_code = len(chosen), len(chosen) + 1
    group = np.full(len(distinct), other_code, dtype="int64")
    group[chosen] = np.arange(len(chosen))
    codes = np.full(len(raw), unset_code, dtype="int64")  # indexing group only where named: it is empty on a day
    codes[named] = group[raw[named]]  # when no request has a value
    out = _aggregate(rows, codes, len(chosen) + 2, costs)
    out["value"] = pd.Series([*text[chosen], None, None], dtype=object)
    out["bucket"] = [VALUE] * len(chosen) + [UNSET, OTHER]
    out["rank"] = pd.array([*range(1, len(chosen) + 1), None, None], dtype="Int64")
    out["folded_values"] = [1] * len(chosen) + [0, len(distinct) - len(chosen)]
    return out[out["requests"] > 0]


def dimension_daily(
    requests: pd.DataFrame,
    day: dt.date,
    tz: str,
    rates: DayPrices,
    dimensions: Sequence[Dimension],
    top: int,
    keep: Mapping[str, Collection[str]] | None = None,
) -> pd.DataFrame:
    """The day's `dimension_daily` rows (columns DIMENSION_COLUMNS): one overall row (dimension "all",
    bucket "all", value None), then per dimension its kept values by rank, its `unset` row and its
    `other` row (each only when it has requests).

    `rates` is pricing.prices_on(book, day); `top` caps each dimension's own rows; `keep` maps a dimension
    to values always kept on their own row (those a budget names), wherever they rank. The overall row is
    written on a day without requests too, so a budget knows the day was run.
    """
    rows = DayGrid.of(day, tz).select(requests, "timestamp").reset_index(drop=True)
    costs = request_costs(rows, rates)
    overall = _aggregate(rows, np.zeros(len(rows), dtype="int64"), 1, costs).assign(
        dimension=OVERALL, value=None, bucket=OVERALL, rank=pd.array([None], dtype="Int64"), folded_values=None
    )
    frames = [overall]
    for dimension in dimensions:
        labels = dimension_labels(rows, dimension)
        part = _dimension_rows(rows, labels, costs, top, (keep or {}).get(dimension.name, ()))
        frames.append(part.assign(dimension=dimension.name))
    out = pd.concat(frames, ignore_index=True).assign(day=day.isoformat())
    return out.astype({"value": object, "folded_values": "Int64", "rank": "Int64"})[list(DIMENSION_COLUMNS)]
