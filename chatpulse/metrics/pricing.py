"""Model prices and the estimated cost of each request.

Where a request's rates come from, first match wins (docs/metrics.md, "Cost"):

1. the user's price file (`prices:` in the configuration), then ChatPulse's own `prices.yaml` (models
   the package lacks): a model's entries, each valid from its `from` date (the request's local day) until
   the model's next entry, looked up by the logged name or, for a provider-prefixed name such as
   `openai/gpt-4o`, the name after the prefix;
2. the `genai-prices` package's bundled data (pydantic's maintained list prices: aliases and dated
   snapshots, price history, time-of-day prices, cache read and write rates, tiers by prompt length,
   OpenAI's flex and priority tiers and batch prices), resolved per request minute, never fetched:
   ChatPulse reads the data the installed version ships and never starts its `UpdatePrices`.
   A batch request the package has no batch rate for is priced at its provider's documented batch
   discount (BATCH_DISCOUNT).

A request is priced on its counts in the canonical token convention (chatpulse.tokens): cache reads and
cache writes are parts of the prompt, billed at the cache read and cache write rates, the rest of the
prompt at the input rate; output tokens are completion tokens, which include reasoning tokens, or the
reasoning tokens when completion is missing. Tiered rates follow the package: a prompt above a tier's
start bills all of that kind's tokens at the tier's rate. A request whose model matches nothing, an
unmetered request (served without token counts) and one whose counts contradict the convention have no
estimate: NaN, never 0, so each shows up as a count instead of a silent zero or a guess. A failed request
that names no model and reports no tokens (an Azure content-filter block of the prompt) has nothing to
price and used nothing: it is estimated at $0, no unpriced request (`unpriced`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chatpulse.pricefile import Price, PriceTable, read_prices
from chatpulse.tokens import contradicted, unbilled, unmetered

BUILTIN_PRICES = Path(__file__).with_name("prices.yaml")
BUILTIN_SOURCE = "chatpulse prices.yaml"
PER_TOKEN = 1e-6  # prices are per million tokens
RATES = ("input", "cached_input", "cache_write_input", "output")
# The package's price keys for RATES (USD per million tokens).
_PACKAGE_KEYS = dict(zip(RATES, ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok"), strict=True))
# The columns of a day's rate table (DayPrices.resolve): one row per distinct rate set used.
RATE_COLUMNS = (
    "model",
    "provider",
    "service_tier",
    "priced_as",
    "price_provider",
    *RATES,
    "tiers",
    "price_from",
    "price_source",
)
# A logged service_tier -> the package's price context. `default` and `auto` are the standard rates: OpenAI
# reports `default` for a downgraded priority request, and `auto` is a request setting, not a rate.
SERVICE_TIERS: dict[str, dict[str, str]] = {
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
    "batch": {"processing": "batch"},
}
# The batch discount each provider documents for all of its models, applied where the package has no batch
# rate for a model at that time (it has them from October 2026, for models then listed): 50% of the
# standard rates, cache rates and tiers included. Sources: OpenAI's Batch API guide ("50% cost discount",
# platform.openai.com/docs/guides/batch), Anthropic's Message Batches pricing ("50% of standard API
# prices", platform.claude.com/docs/en/build-with-claude/batch-processing#pricing), Gemini's Batch Mode
# ("50% of the standard cost", ai.google.dev/gemini-api/docs/batch-mode).
BATCH_DISCOUNT = {"openai": 0.5, "azure": 0.5, "anthropic": 0.5, "google": 0.5}
# Where a bare model name (`text-embedding-3-small`) is looked for when the package cannot place it by
# name and the log names no provider: the first-party APIs, in this order.
FIRST_PARTY = ("openai", "anthropic", "google", "deepseek", "mistral", "x-ai")


@cache
def package_version() -> str:
    """The installed genai-prices version, as recorded in `price_source` (`genai-prices 0.2.3`)."""
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


@cache
def _snapshot() -> Any:
    """The package's bundled data. A snapshot of our own: not the process-wide one, which another library's
    `UpdatePrices` could replace with prices fetched from the network."""
    from genai_prices import data
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=data.providers, from_auto_update=False)


def _package_model(name: str, provider: str | None) -> Any | None:
    """The package's model for a logged name (None: it has none): a provider prefix (`anthropic/...`, as
    LiteLLM logs names) or the log's provider first, then the name alone, then FIRST_PARTY in turn."""
    snapshot = _snapshot()
    attempts: list[str | None] = ["litellm"] if "/" in name else []  # the package splits `provider/model`
    attempts += [provider, None] if provider else [None]
    attempts += list(FIRST_PARTY)
    for provider_id in attempts:
        try:
            return snapshot.find_provider_model(name, None, provider_id, None)
        except LookupError:
            continue
    return None


def _number(price: Any) -> tuple[float | None, list[list[float]] | None]:
    """A package price as (base rate, [[tier start, rate], ...] or None); None when the key is unpriced."""
    if price is None:
        return None, None
    if hasattr(price, "tiers"):
        return float(price.base), [[tier.start, float(tier.price)] for tier in price.tiers]
    return float(price), None


def _package_rates(model: Any, moment: datetime, context: dict[str, str] | None) -> tuple[Any, ...]:
    """The rates (RATES), tiers as JSON text (None when untiered) and the price's start date of a package
    model at `moment` under a price context. A cache rate the package leaves out is the input rate, as the
    package itself bills it; an output rate it leaves out is 0 (embeddings)."""
    price = model.get_prices(moment, context)
    rates: dict[str, float | None] = {}
    tiers: dict[str, list[list[float]]] = {}
    for rate, key in _PACKAGE_KEYS.items():
        rates[rate], steps = _number(getattr(price, key))
        if steps:
            tiers[rate] = steps
    rates["input"] = rates["input"] or 0.0
    for rate in ("cached_input", "cache_write_input"):
        if rates[rate] is None:
            rates[rate] = rates["input"]
            if "input" in tiers:
                tiers[rate] = tiers["input"]
    rates["output"] = rates["output"] or 0.0
    since = _since(model, moment)
    return (*(rates[r] for r in RATES), json.dumps(tiers, sort_keys=True) if tiers else None, since)


def _discounted(rates: tuple[Any, ...], share: float) -> tuple[Any, ...]:
    """_package_rates's result with every rate, tiers included, at `share` of itself."""
    *base, tiers, since = rates
    if tiers is not None:
        steps = {name: [[start, rate * share] for start, rate in values] for name, values in json.loads(tiers).items()}
        tiers = json.dumps(steps, sort_keys=True)
    return (*(rate * share for rate in base), tiers, since)


def _since(model: Any, moment: datetime) -> str | None:
    """The start date of the package's price in force at `moment`, where it has one (a price change)."""
    if not isinstance(model.prices, list):
        return None
    for conditional in reversed(model.prices):
        if conditional.constraint is None or conditional.constraint.active(moment):
            start = getattr(conditional.constraint, "start_date", None)
            return start.isoformat() if start is not None else None
    return None


@dataclass(frozen=True)
class PriceBook:
    """The price tables in order of precedence, each `(source, table)`, and whether the genai-prices data
    comes after them. `source` is what `price_source` records for a rate from that table."""

    tables: tuple[tuple[str, PriceTable], ...]
    package: bool = True
    _lookups: dict[tuple[str, str | None], Any] = field(default_factory=dict, compare=False, repr=False)
    _rates: dict[tuple[int, int, str | None], tuple] = field(default_factory=dict, compare=False, repr=False)

    def entry(self, model: str, day: date) -> tuple[str, str, Price] | None:
        """The first table's entry in force on day for model (or the name after a provider prefix), as
        (source, the table's model name, entry); None when no table prices it then."""
        names = (model, model.rsplit("/", 1)[-1]) if "/" in model else (model,)
        for source, table in self.tables:
            for name in names:
                current = [p for p in table.get(name, ()) if p.start <= day]
                if current:
                    return source, name, current[-1]
        return None

    def package_rates(self, model: Any, minute: int, level: str | None, context: dict[str, str] | None) -> tuple:
        """_package_rates of a package model at a minute since the epoch (UTC), computed once per book."""
        key = (id(model), minute, level)
        if key not in self._rates:
            self._rates[key] = _package_rates(model, datetime.fromtimestamp(minute * 60, UTC), context)
        return self._rates[key]

    def package_model(self, model: str, provider: str | None) -> Any | None:
        """The package's (provider, model) for a logged model name and provider, looked up once."""
        if not self.package:
            return None
        key = (model, provider)
        if key not in self._lookups:
            self._lookups[key] = _package_model(model, provider)
        return self._lookups[key]


def load_prices(overrides: Path | None = None) -> PriceBook:
    """The user's price file (if any), then ChatPulse's prices.yaml, then the genai-prices data.

    Raises chatpulse.pricefile.PriceError naming the file and entry of a malformed price file.
    """
    tables = [(BUILTIN_SOURCE, read_prices(BUILTIN_PRICES))]
    if overrides is not None:
        tables.insert(0, (str(overrides), read_prices(overrides)))
    return PriceBook(tuple(tables))


@cache
def _loaded(overrides: Path | None, stamp: tuple[int, int] | None) -> PriceBook:
    return load_prices(overrides)


def day_prices(overrides: Path | None, day: date) -> DayPrices:
    """The prices of day with the configured price file (`settings.prices`): what every step that prices
    requests uses. The book is loaded once per process and file version (size and modification time)."""
    stamp = None
    if overrides is not None and overrides.exists():
        info = overrides.stat()
        stamp = (info.st_size, info.st_mtime_ns)
    return prices_on(_loaded(overrides, stamp), day)


def prices_on(book: PriceBook, day: date) -> DayPrices:
    """The prices of one local day: table entries in force on day, the package's at each request's time."""
    return DayPrices(book, day)


def _text(requests: pd.DataFrame, column: str) -> pd.Series:
    """A text column with missing values as None (all None when the frame lacks it)."""
    if column not in requests:
        return pd.Series(None, index=requests.index, dtype=object)
    values = requests[column].astype(object)
    return values.where(values.notna(), None)


def _factorized(requests: pd.DataFrame, column: str) -> tuple[np.ndarray, list[Any]]:
    """A column's codes (-1 where missing, or for every row when the frame lacks it) and distinct values."""
    if column not in requests:
        return np.full(len(requests), -1, dtype=np.int64), []
    codes, uniques = pd.factorize(requests[column])
    return codes.astype(np.int64), list(uniques)


def _tier(value: Any) -> str | None:
    """A logged service tier, lower case; None for the standard rates (missing, `default`, `auto`)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    return None if text in ("", "default", "auto", "standard") else text


@dataclass(frozen=True)
class Resolved:
    """A frame's rates: `table` (RATE_COLUMNS, one row per distinct rate set) and, per request, the
    position of its row in `table` (`codes`, -1 where its model is unpriced)."""

    table: pd.DataFrame
    codes: np.ndarray

    def rate(self, name: str) -> np.ndarray:
        """Per request, the base rate `name` (RATES) in USD per million tokens; NaN where unpriced."""
        values = np.append(self.table[name].to_numpy(dtype="float64"), np.nan)
        return values[self.codes]

    def tiered(self, name: str, prompt: np.ndarray) -> np.ndarray:
        """Per request, rate `name` after the tiers by prompt length: above a tier's start (the whole
        prompt, cache reads and writes included), every token of the kind is billed at the tier's rate."""
        values = self.rate(name)
        for position, tiers in enumerate(self.table["tiers"]):
            steps = json.loads(tiers).get(name) if isinstance(tiers, str) else None
            for start, rate in steps or ():
                values = np.where((self.codes == position) & (prompt > start), rate, values)
        return values


@dataclass(frozen=True)
class DayPrices:
    """The prices of one local day (prices_on); resolve() gives a frame's requests their rates."""

    book: PriceBook
    day: date

    def resolve(self, requests: pd.DataFrame) -> Resolved:
        """Each request's rates: by model, provider, service tier and, for the package's prices, minute."""
        n = len(requests)
        model_codes, models = _factorized(requests, "model")
        provider_codes, providers = _factorized(requests, "provider")
        tier_codes, tiers = _factorized(requests, "service_tier")
        levels = [*(_tier(v) for v in tiers), None]
        if "timestamp" in requests:  # whole minutes since the epoch, UTC
            stamps = pd.to_datetime(requests["timestamp"], utc=True).dt.as_unit("ns")
            minute = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") // 60_000_000_000
        else:
            minute = np.full(n, int(datetime.combine(self.day, time(12), UTC).timestamp()) // 60)
        # One integer per (model, provider, tier); -1 (missing) becomes 0 in each place.
        width_p, width_t = len(providers) + 1, len(tiers) + 1
        combined = ((model_codes + 1) * width_p + provider_codes + 1) * width_t + tier_codes + 1
        groups, inverse, counts = np.unique(combined, return_inverse=True, return_counts=True)
        members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1]) if n else []
        codes = np.full(n, -1, dtype=np.int64)
        rows: dict[tuple[Any, ...], int] = {}
        for group, positions in zip(groups, members, strict=True):
            m, rest = divmod(int(group), width_p * width_t)
            p, t = divmod(rest, width_t)
            if m == 0:  # no model: unpriced
                continue
            name, prov, level = str(models[m - 1]), providers[p - 1] if p else None, levels[t - 1] if t else None
            rate_keys, which = self._group_rates(name, prov, level, minute[positions])
            if not rate_keys:  # nothing prices the model: its requests stay -1
                continue
            ids = np.array([rows.setdefault((name, prov, level, *key), len(rows)) for key in rate_keys])
            codes[positions] = ids[which]
        table = pd.DataFrame([list(key) for key in rows], columns=list(RATE_COLUMNS))
        return Resolved(table.astype({r: "float64" for r in RATES}), codes)

    def _group_rates(
        self, name: str, provider: str | None, level: str | None, minutes: np.ndarray
    ) -> tuple[list[tuple[Any, ...]], np.ndarray]:
        """The rate sets of one model, provider and tier (each a key: RATE_COLUMNS after service_tier) and,
        per request of the group, the position of its set; no sets when nothing prices the model."""
        found = self.book.entry(name, self.day)
        if found is not None:
            source, priced_as, entry = found
            rates, source = self._file_rates(name, provider, entry, source)
            return [(priced_as, None, *rates, None, entry.start.isoformat(), source)], np.zeros(len(minutes), int)
        match = self.book.package_model(name, provider)
        if match is None:
            return [], np.zeros(len(minutes), int)
        price_provider, model = match
        context = SERVICE_TIERS.get(level) if level is not None else None
        distinct, inverse = np.unique(minutes, return_inverse=True)
        sets: dict[tuple[Any, ...], int] = {}
        per_minute = np.empty(len(distinct), dtype=np.int64)
        for n, at in enumerate(distinct):
            rates, source = self.book.package_rates(model, int(at), level, context), package_version()
            share = BATCH_DISCOUNT.get(price_provider.id) if level == "batch" else None
            if share is not None and rates == self.book.package_rates(model, int(at), None, None):
                rates, source = (
                    _discounted(rates, share),
                    f"{source}; batch at {share:.0%} of standard ({price_provider.name})",
                )
            per_minute[n] = sets.setdefault((model.id, price_provider.id, *rates, source), len(sets))
        return list(sets), per_minute[inverse]

    def _file_rates(self, name: str, provider: str | None, entry: Price, source: str) -> tuple[tuple, str]:
        """A table entry's rates (RATES). A cache rate it leaves out follows the provider where the package
        states that rate for the model: the package's ratio of it to its input rate, times the entry's input
        rate (Anthropic's cache write is 1.25 x input); otherwise the input rate."""
        stated = {"cached_input": entry.cached_input, "cache_write_input": entry.cache_write_input}
        match = self.book.package_model(name, provider) if None in stated.values() else None
        if match is not None:
            price = match[1].get_prices(datetime.combine(self.day, time(12), UTC))
            base = _number(price.input_mtok)[0]
            for rate, given in stated.items():
                listed = _number(getattr(price, _PACKAGE_KEYS[rate]))[0]
                if given is None and listed is not None and base:
                    stated[rate] = entry.input * listed / base
                    source = f"{source}; {rate} at {package_version()}'s ratio to input"
        cached, written = (entry.input if stated[r] is None else stated[r] for r in stated)
        return (entry.input, cached, written, entry.output), source


def _tokens(requests: pd.DataFrame, column: str) -> np.ndarray:
    if column not in requests:  # a frame from before the column existed
        return np.full(len(requests), np.nan)
    return requests[column].to_numpy(dtype="float64", na_value=np.nan)


def estimate_cost(requests: pd.DataFrame, rates: DayPrices | Resolved) -> np.ndarray:
    """Estimated USD of each request (an array aligned with `requests`) at the day's prices (prices_on, or
    their resolve() for this very frame); NaN where its model is unpriced, it is unmetered
    (chatpulse.tokens.unmetered) or its counts contradict the canonical convention
    (chatpulse.tokens.contradicted): nothing is capped to make numbers fit.

    Other missing token counts count as 0; a missing prompt count leaves only the cache reads and
    writes as input.
    """
    resolved = rates.resolve(requests) if isinstance(rates, DayPrices) else rates
    prompt = _tokens(requests, "prompt_tokens")
    cached = np.nan_to_num(_tokens(requests, "cached_tokens"))
    written = np.nan_to_num(_tokens(requests, "cache_write_tokens"))
    uncached = np.where(np.isnan(prompt), 0.0, prompt - cached - written)
    whole = np.where(np.isnan(prompt), cached + written, prompt)
    completion = _tokens(requests, "completion_tokens")
    output = np.nan_to_num(np.where(np.isnan(completion), _tokens(requests, "reasoning_tokens"), completion))
    rate = {name: resolved.tiered(name, whole) for name in RATES}
    usd = (
        uncached * rate["input"]
        + cached * rate["cached_input"]
        + written * rate["cache_write_input"]
        + output * rate["output"]
    )
    unknown = (unmetered(requests) | contradicted(requests)).to_numpy(dtype=bool)
    # Without a model the rates are NaN; a rejected request that names none costs $0 all the same.
    usd = np.where(_nothing_to_price(requests), 0.0, usd)
    return np.where(unknown, np.nan, usd * PER_TOKEN)


def unpriced(requests: pd.DataFrame, resolved: Resolved) -> np.ndarray:
    """Per request of `requests` (whose rates are `resolved`), whether it needs a price nothing gives: its
    model is missing or unpriced, unless it names no model and is a failure without token counts
    (chatpulse.tokens.unbilled): nothing to price, estimated at $0; or names no model and is unmetered,
    whose missing usage already makes its cost unknown (counted there, not twice). A named model nothing
    prices counts even on a failed or unmetered request, so the model is named where a price is missing."""
    unnamed_unmetered = unmetered(requests).to_numpy(dtype=bool) & _text(requests, "model").isna().to_numpy()
    return (resolved.codes < 0) & ~_nothing_to_price(requests) & ~unnamed_unmetered


def _nothing_to_price(requests: pd.DataFrame) -> np.ndarray:
    """Per request: failed without token counts and naming no model (an Azure prompt block)."""
    named = _text(requests, "model").notna().to_numpy(dtype=bool)
    return unbilled(requests).to_numpy(dtype=bool) & ~named


def rate_counts(requests: pd.DataFrame, resolved: Resolved) -> pd.DataFrame:
    """The rate table with each row's `requests` (how many of `requests` it priced), plus one row per model
    (and provider, service tier) nothing priced: rates and source NULL, requests with nothing to price left out (see
    `unpriced`). Columns RATE_COLUMNS + requests."""
    counts = np.bincount(resolved.codes[resolved.codes >= 0], minlength=len(resolved.table))
    priced = resolved.table.assign(requests=counts)
    missing = unpriced(requests, resolved)
    if not missing.any():
        return priced
    keys = pd.DataFrame(
        {
            "model": _text(requests, "model").to_numpy()[missing],
            "provider": _text(requests, "provider").to_numpy()[missing],
            "service_tier": _text(requests, "service_tier").map(_tier).to_numpy()[missing],
        }
    )
    unmatched = keys.groupby(["model", "provider", "service_tier"], dropna=False).size().rename("requests")
    unmatched = unmatched.reset_index().reindex(columns=[*RATE_COLUMNS, "requests"])
    return pd.concat([priced, unmatched], ignore_index=True) if len(priced) else unmatched


def as_mapping(entries: Mapping[str, tuple[Price, ...]], source: str = "price table") -> PriceBook:
    """A PriceBook of one table alone (no package data): a test's or a caller's own prices."""
    return PriceBook(((source, entries),), package=False)
