"""Tokens and cost of one local day per model, and usage per user (requests, tokens, cost)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from chatpulse.days import DayGrid
from chatpulse.metrics.pricing import RATES, DayPrices, Resolved, estimate_cost, rate_counts, unpriced
from chatpulse.schema import is_error
from chatpulse.tables import USAGE_TOKENS, table_columns
from chatpulse.tokens import unmetered

MODEL_COST_COLUMNS = table_columns("model_costs")
MODEL_PRICE_COLUMNS = table_columns("model_prices")
USER_COLUMNS = table_columns("daily_users")


def _labels(uniques: pd.Index) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in uniques]


def _floats(rows: pd.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy(dtype="float64", na_value=np.nan)


def _sum_where(codes: np.ndarray, groups: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the sum of the non-NaN values (NaN when there are none) and their count."""
    present = ~np.isnan(values)
    count = np.bincount(codes, weights=present, minlength=groups)
    total = np.bincount(codes, weights=np.where(present, values, 0.0), minlength=groups)
    return np.where(count > 0, total, np.nan), count.astype("int64")


def _prevailing(codes: np.ndarray, rate_codes: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the rate row that priced most of its requests (ties: the first row); -1 when none did."""
    best = np.full(groups, -1, dtype=np.int64)
    priced = rate_codes >= 0
    if not priced.any():
        return best
    pairs = pd.DataFrame({"group": codes[priced], "rate": rate_codes[priced]})
    counts = pairs.value_counts().reset_index(name="n")
    counts = counts.sort_values(["group", "n", "rate"], ascending=[True, False, True])
    first = counts.drop_duplicates("group")
    best[first["group"].to_numpy()] = first["rate"].to_numpy()
    return best


def model_costs(requests: pd.DataFrame, day: dt.date, tz: str, rates: DayPrices) -> pd.DataFrame:
    """Tokens and cost of day per model (a missing model is its own row, None), columns
    MODEL_COST_COLUMNS, ordered by model name.

    rates is pricing.prices_on(book, day). The rate columns, price_from and price_source are those that
    priced most of the model's requests (all the rates used, per provider, service tier and price, are
    in model_prices). A model nothing prices has NULL prices and estimate, and all its requests in
    unpriced_requests; a failed request naming no model and no tokens needs no price (pricing.unpriced).
    unmetered_requests counts the served requests without token counts (chatpulse.tokens.unmetered);
    estimated_requests those the estimate covers (pricing.estimate_cost is not NaN), so
    cost_estimate_usd is NULL, not $0, when it covers none. cost_difference_usd is the
    logged minus the estimated cost over requests that have both. spend_usd sums each request's logged
    cost, else its estimate (daily_metrics' spend_usd per model; NULL when no request has either).
    """
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    resolved = rates.resolve(rows)
    return _model_costs(rows, resolved, estimate_cost(rows, resolved), day)


def _model_costs(rows: pd.DataFrame, resolved: Resolved, estimate: np.ndarray, day: dt.date) -> pd.DataFrame:
    """model_costs of the day's rows, whose rates are `resolved` and estimates `estimate` (estimate_cost)."""
    logged = _floats(rows, "cost_usd")
    codes, uniques = pd.factorize(rows["model"], use_na_sentinel=False)
    models = _labels(uniques)
    n = len(models)
    count = np.bincount(codes, minlength=n)
    rate = resolved.table.reindex(_prevailing(codes, resolved.codes, n))
    needs_price = np.bincount(codes, weights=unpriced(rows, resolved).astype("float64"), minlength=n).astype("int64")
    logged_sum, logged_count = _sum_where(codes, n, logged)
    estimate_sum, estimated = _sum_where(codes, n, estimate)
    spend_sum, _ = _sum_where(codes, n, np.where(np.isnan(logged), estimate, logged))  # as daily_metrics' spend
    difference, _ = _sum_where(codes, n, logged - estimate)
    # Float dust (2.7e-20, -1e-12) where logged and estimated agree: no price is below $1e-8 a token, so
    # a difference under $1e-10 is none (+ 0.0 turns -0.0 into 0.0).
    difference = np.round(difference, 10) + 0.0
    out = pd.DataFrame(
        {
            "day": day.isoformat(),
            "model": pd.Series(models, dtype=object),
            "requests": count,
            **{
                c: np.bincount(codes, weights=np.nan_to_num(_floats(rows, c)), minlength=n).astype("int64")
                for c in USAGE_TOKENS
            },
            **{f"{name}_usd_per_mtok": rate[name].to_numpy(dtype="float64") for name in RATES},
            "price_from": rate["price_from"].to_numpy(dtype=object),
            "price_source": rate["price_source"].to_numpy(dtype=object),
            "unpriced_requests": needs_price,
            "unmetered_requests": np.bincount(
                codes, weights=unmetered(rows).to_numpy(dtype="float64"), minlength=n
            ).astype("int64"),
            "estimated_requests": estimated,
            "cost_estimate_usd": estimate_sum,
            "cost_logged_usd": logged_sum,
            "logged_requests": logged_count,
            "cost_difference_usd": difference,
            "spend_usd": spend_sum,
        }
    )
    return out.sort_values("model", na_position="last", kind="stable")[list(MODEL_COST_COLUMNS)].reset_index(drop=True)


def model_prices(requests: pd.DataFrame, day: dt.date, tz: str, rates: DayPrices) -> pd.DataFrame:
    """The rates that priced the day's requests, columns MODEL_PRICE_COLUMNS: one row per model, provider,
    service tier and rate set used (a model with time-of-day prices has one per price), with the model the
    rates are for (`priced_as`), its rates in USD per million tokens, tiers by prompt length (JSON), the
    price's start date and its source (`genai-prices <version>` or the price file), and `requests`, how
    many requests it priced. A model nothing prices has one row per provider and tier, rates and source
    NULL. Ordered by model, provider, service tier, then the most requests first.
    """
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    return _model_prices(rows, rates.resolve(rows), day)


def _model_prices(rows: pd.DataFrame, resolved: Resolved, day: dt.date) -> pd.DataFrame:
    """model_prices of the day's rows, whose rates are `resolved`."""
    table = rate_counts(rows, resolved)
    table = table.rename(columns={name: f"{name}_usd_per_mtok" for name in RATES})
    for column in ("model", "provider", "service_tier", "priced_as", "price_provider", "tiers", "price_source"):
        values = table[column].astype(object)
        table[column] = values.where(values.notna(), None)
    order = ["model", "provider", "service_tier", "requests"]
    table = table.sort_values(order, ascending=[True, True, True, False], na_position="first", kind="stable")
    table.insert(0, "day", day.isoformat())
    return table.rename(columns={"tiers": "price_tiers"})[list(MODEL_PRICE_COLUMNS)].reset_index(drop=True)


def daily_users(requests: pd.DataFrame, day: dt.date, tz: str, rates: DayPrices) -> pd.DataFrame:
    """One row per user active on day (made a request with a user_id), columns USER_COLUMNS.

    rank 1 is the user with the most requests (ties: more tokens, then user_id).
    cost_estimate_usd sums the estimates of the user's requests (NULL when none has one);
    unpriced_requests counts the requests without one (no price in force, unmetered, or
    counts that contradict the token convention: pricing.estimate_cost).
    """
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    return _daily_users(rows, estimate_cost(rows, rates), day)


def _daily_users(rows: pd.DataFrame, estimate: np.ndarray, day: dt.date) -> pd.DataFrame:
    """daily_users of the day's rows, whose estimates are `estimate` (estimate_cost)."""
    named = rows["user_id"].notna().to_numpy(dtype=bool)
    rows, estimate = rows[named], estimate[named]  # a request's estimate is its own
    codes, uniques = pd.factorize(rows["user_id"])
    n = len(uniques)
    count = np.bincount(codes, minlength=n)
    tokens = np.bincount(codes, weights=np.nan_to_num(_floats(rows, "total_tokens")), minlength=n).astype("int64")
    estimate_sum, priced = _sum_where(codes, n, estimate)
    users = np.asarray(uniques, dtype=object)
    order = np.lexsort((users.astype(str), -tokens, -count))
    rank = np.empty(n, dtype="int64")
    rank[order] = np.arange(1, n + 1)
    out = pd.DataFrame(
        {
            "day": day.isoformat(),
            "user_id": pd.Series(users, dtype="str"),
            "rank": rank,
            "requests": count,
            "errors": np.bincount(codes, weights=is_error(rows).to_numpy(dtype="float64"), minlength=n).astype("int64"),
            "total_tokens": tokens,
            "cost_logged_usd": _sum_where(codes, n, _floats(rows, "cost_usd"))[0],
            "cost_estimate_usd": estimate_sum,
            "unpriced_requests": count - priced,
        }
    )
    return out.sort_values("rank")[list(USER_COLUMNS)].reset_index(drop=True)


def cost_tables(
    requests: pd.DataFrame, day: dt.date, tz: str, rates: DayPrices
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """model_costs, model_prices and daily_users of the same requests, their rates resolved and their costs
    estimated once (at a million requests each resolve factorizes three columns and sorts every request)."""
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    resolved = rates.resolve(rows)
    estimate = estimate_cost(rows, resolved)
    return (
        _model_costs(rows, resolved, estimate, day),
        _model_prices(rows, resolved, day),
        _daily_users(rows, estimate, day),
    )
