"""The price file a user writes (`prices:` in the configuration): its entries, checked by pydantic.

Apart from the cost arithmetic in chatpulse.metrics.pricing, so the configuration can check
the file when it loads without importing the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic import dataclasses as checked

from chatpulse.yamlfile import Day, NonNegative, YamlSection, expect, problem, read_yaml, validate


class PriceError(ValueError):
    """A price file is unreadable or malformed; the message names the entry."""


Rate = Annotated[NonNegative, expect("a non-negative number")]


@checked.dataclass(frozen=True)
class Price(YamlSection):
    """One model's rates from a date on, USD per million tokens (an entry of a price file).

    A cache read or cache write rate left out (None) follows the provider where genai-prices states
    that rate for the model (its ratio to the input rate: Anthropic bills a 5-minute cache write at
    1.25 times its input rate), else it is the input rate (chatpulse.metrics.pricing).
    """

    start: Annotated[Day, Field(alias="from")]
    input: Rate
    output: Rate
    cached_input: Rate | None = None
    cache_write_input: Rate | None = None


def _history(prices: tuple[Price, ...]) -> tuple[Price, ...]:
    # Checked here, not by a length constraint, which would also count the entries that failed.
    if not prices:
        raise ValueError("empty")
    if len({p.start for p in prices}) < len(prices):
        raise problem("two prices start on the same date")
    return tuple(sorted(prices, key=lambda p: p.start))


History = Annotated[tuple[Price, ...], AfterValidator(_history), expect("a non-empty list of prices")]


@checked.dataclass(frozen=True)
class PriceFile:
    """A price file, `{models: {model: [entry, ...]}}`; other top-level keys are ignored."""

    # Absent reads as None, so a missing table gets the same hint as a wrong one.
    models: Annotated[dict[str, History], expect("a mapping of model name to a list of prices")] = Field(
        None, validate_default=True
    )


PriceTable = Mapping[str, tuple[Price, ...]]  # model -> entries sorted by start


def read_prices(path: Path) -> dict[str, tuple[Price, ...]]:
    """The price table of a YAML file, each model's entries sorted by start date.

    Raises PriceError naming the file and the entry (`models.gpt-4o[1].input: ...`).
    """
    raw = read_yaml(path, PriceError, "price file")
    try:
        return validate(PriceFile, {} if raw is None else raw, PriceError).models
    except PriceError as exc:
        raise PriceError(f"{path}: {exc}") from None
