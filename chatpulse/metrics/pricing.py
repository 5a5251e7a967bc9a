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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from chatpulse import checks

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")
PER_TOKEN = 1e-6  # prices are per million tokens


class PriceError(ValueError):
    """A price file is unreadable or malformed; the message names the entry."""


@dataclass(frozen=True)
class Price:
    """One model's rates from a date on, USD per million tokens."""

    start: date
    input: float
    cached_input: float
    output: float


PriceTable = Mapping[str, tuple[Price, ...]]  # model -> entries sorted by start


def _rate(entry: Mapping[str, Any], name: str, where: str) -> float:
    rate = entry[name]
    expected = "a non-negative number"
    return float(checks.expect(rate, (int, float), f"{where}.{name}", expected, PriceError, checks.non_negative))


def _entry(entry: Any, where: str) -> Price:
    checks.expect(entry, dict, where, "a mapping with from, input, output", PriceError)
    checks.known_keys(entry, ("from", "input", "cached_input", "output"), where, PriceError)
    checks.required_keys(entry, ("from", "input", "output"), where, PriceError)
    start = entry["from"]
    if not isinstance(start, date):
        try:
            start = date.fromisoformat(str(start))
        except ValueError as exc:
            raise PriceError(f"{where}.from: expected a date YYYY-MM-DD, got {start!r}") from exc
    rate_in = _rate(entry, "input", where)
    cached = _rate(entry, "cached_input", where) if "cached_input" in entry else rate_in
    return Price(start, rate_in, cached, _rate(entry, "output", where))


def parse_prices(raw: Any, where: str = "prices") -> dict[str, tuple[Price, ...]]:
    """A price table from its YAML mapping `{models: {model: [entry, ...]}}`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise PriceError(f"{where}.models: expected a mapping of model name to a list of prices")
    table = {}
    for model, entries in raw["models"].items():
        key = f"{where}.models.{model}"
        if not isinstance(entries, list) or not entries:
            raise PriceError(f"{key}: expected a non-empty list of prices")
        prices = sorted((_entry(e, f"{key}[{i}]") for i, e in enumerate(entries)), key=lambda p: p.start)
        starts = [p.start for p in prices]
        if len(set(starts)) < len(starts):
            raise PriceError(f"{key}: two prices start on the same date")
        table[str(model)] = tuple(prices)
    return table


def read_prices(path: Path) -> dict[str, tuple[Price, ...]]:
    """Parse a price file, naming the file in any error."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PriceError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_prices(raw, "")
    except PriceError as exc:
        raise PriceError(f"{path}: {str(exc).lstrip('.')}") from exc


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
            rows[model] = (p.input, p.cached_input, p.output, p.start.isoformat())
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
