"""Versioned model prices and the estimated cost of each request.

Prices are USD per million tokens, per model, each valid from its `from` date until
that model's next entry (prices.yaml, merged with the user's file). A request is priced
at the entry in force on its local day, on its counts in the canonical token convention
(chatpulse.tokens): cache reads and cache writes are parts of the prompt tokens, billed at
the cached and the cache write rate, the rest of the prompt at the input rate; output tokens
are completion tokens, which include reasoning tokens, or the reasoning tokens when
completion is missing. A request whose model has no price in force, an unmetered request
(served without token counts) and one whose counts contradict the convention have no
estimate: NaN, never 0, so each shows up as a count instead of a silent zero or a guess.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from chatpulse.pricefile import Price, PriceTable, read_prices
from chatpulse.tokens import contradicted, unmetered

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")
PER_TOKEN = 1e-6  # prices are per million tokens
RATES = ("input", "cached_input", "cache_write_input", "output")


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
    """Rates in force on day, indexed by model: input, cached_input, cache_write_input, output, price_from.

    A missing cached or cache write rate is the input rate. Models whose first price starts after
    day are absent (unpriced).
    """
    rows = {}
    for model, entries in table.items():
        current = [p for p in entries if p.start <= day]
        if current:
            p = current[-1]
            cached = p.input if p.cached_input is None else p.cached_input
            written = p.input if p.cache_write_input is None else p.cache_write_input
            rows[model] = (p.input, cached, written, p.output, p.start.isoformat())
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[*RATES, "price_from"])
    return frame.astype({**dict.fromkeys(RATES, "float64"), "price_from": object})


def _tokens(requests: pd.DataFrame, column: str) -> np.ndarray:
    if column not in requests:  # a frame from before the column existed
        return np.full(len(requests), np.nan)
    return requests[column].to_numpy(dtype="float64", na_value=np.nan)


def estimate_cost(requests: pd.DataFrame, rates: pd.DataFrame) -> np.ndarray:
    """Estimated USD of each request at `rates` (prices_on); NaN where its model is unpriced, it is
    unmetered (chatpulse.tokens.unmetered) or its counts contradict the canonical convention
    (chatpulse.tokens.contradicted): nothing is capped to make numbers fit.

    Other missing token counts count as 0; a missing prompt count leaves only the cache reads and
    writes as input.
    """
    codes, models = pd.factorize(requests["model"])
    known = rates.reindex(pd.Index(models, dtype=object))
    per_model = {name: np.append(known[name].to_numpy(dtype="float64"), np.nan)[codes] for name in RATES}
    prompt = _tokens(requests, "prompt_tokens")
    cached = np.nan_to_num(_tokens(requests, "cached_tokens"))
    written = np.nan_to_num(_tokens(requests, "cache_write_tokens"))
    uncached = np.where(np.isnan(prompt), 0.0, prompt - cached - written)
    completion = _tokens(requests, "completion_tokens")
    output = np.nan_to_num(np.where(np.isnan(completion), _tokens(requests, "reasoning_tokens"), completion))
    usd = (
        uncached * per_model["input"]
        + cached * per_model["cached_input"]
        + written * per_model["cache_write_input"]
        + output * per_model["output"]
    )
    unknown = (unmetered(requests) | contradicted(requests)).to_numpy(dtype=bool)
    return np.where(unknown, np.nan, usd * PER_TOKEN)
