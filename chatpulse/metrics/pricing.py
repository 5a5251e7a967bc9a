"""Versioned model prices and the estimated cost of each request.

Prices are USD per million tokens, per model, each valid from its `from` date until
that model's next entry (prices.yaml, merged with the user's file). A request is priced
at the entry in force on its local day. Cached tokens are part of prompt tokens and are
billed at the cached rate; output tokens are completion tokens, which include reasoning
tokens (OpenAI's usage convention), or the reasoning tokens when completion is missing.
A request whose model has no price in force is unpriced: its estimate is NaN, never 0,
so a missing price shows up as a count and a name instead of a silent zero.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from chatpulse.pricefile import Price, PriceTable, read_prices

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")
PER_TOKEN = 1e-6  # prices are per million tokens


def load_prices(overrides: Path | None = None) -> dict[str, tuple[Price, ...]]:
    """The built-in table merged with the user's: their entries join a model's history,
    replacing a built-in entry with the same start date; new models are added."""
    table = read_prices(BUILTIN_PRICES)
    if overrides is None:
        return table
    for model, entries in read_prices(overrides).items():
        merged = {p.start: p for p in table.get(model, ())} | {p.start: p for p in entries}
        table[model] = tuple(merged[start] for start in sorted(merged))
    return table


def prices_on(table: PriceTable, day: date) -> pd.DataFrame:
    """Rates in force on day, indexed by model: input, cached_input, output, price_from.

    Models whose first price starts after day are absent (unpriced).
    """
    rows = {}
    for model, entries in table.items():
        current = [p for p in entries if p.start <= day]
        if current:
            p = current[-1]
            cached = p.input if p.cached_input is None else p.cached_input
            rows[model] = (p.input, cached, p.output, p.start.isoformat())
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["input", "cached_input", "output", "price_from"]
    ).astype({"input": "float64", "cached_input": "float64", "output": "float64", "price_from": object})


def _tokens(requests: pd.DataFrame, column: str) -> np.ndarray:
    return requests[column].to_numpy(dtype="float64", na_value=np.nan)


def estimate_cost(requests: pd.DataFrame, rates: pd.DataFrame) -> np.ndarray:
    """Estimated USD of each request at `rates` (prices_on); NaN where its model is unpriced.

    Missing token counts count as 0; cached tokens above the prompt count are capped at it.
    """
    codes, models = pd.factorize(requests["model"])
    known = rates.reindex(pd.Index(models, dtype=object))
    per_model = {
        name: np.append(known[name].to_numpy(dtype="float64"), np.nan)[codes]
        for name in ("input", "cached_input", "output")
    }
    prompt = np.nan_to_num(_tokens(requests, "prompt_tokens"))
    cached = np.minimum(np.nan_to_num(_tokens(requests, "cached_tokens")), prompt)
    completion = _tokens(requests, "completion_tokens")
    output = np.nan_to_num(np.where(np.isnan(completion), _tokens(requests, "reasoning_tokens"), completion))
    usd = (prompt - cached) * per_model["input"] + cached * per_model["cached_input"] + output * per_model["output"]
    return usd * PER_TOKEN
