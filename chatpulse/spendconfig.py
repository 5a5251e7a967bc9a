"""The spend sections of the configuration: who spends (`dimensions`), budgets, and the provider's bills.

Apart from `chatpulse.config` so the attribution, budget and bill code reads its own sections here, and
so the configuration stays one file of paths and sources. Every model refuses an unknown key and an
error names the key path (`budgets[1].dimension: ...`), as the rest of the configuration does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator
from pydantic import dataclasses as checked
from pydantic_core import PydanticCustomError

from chatpulse.schema import REQUEST_COLUMNS
from chatpulse.yamlfile import Positive, YamlSection, expect, problem

# The name of the overall row of dimension_daily and of a budget without a dimension.
OVERALL = "all"
# Request columns that can say who spends: the text ones (a timestamp or a count names no one).
LABEL_COLUMNS = tuple(name for name, kind in REQUEST_COLUMNS.items() if kind == "string")
NAME_MAX = 32  # dimension_daily.dimension and cost_reconciliation.scope are VARCHAR(32)
RULE_NAME_MAX = 40  # a budget's name; its alert rules add at most " forecast" and stay within VARCHAR(64)
DEFAULT_SHARES = (0.8, 1.0)


def _name(text: str) -> str:
    if not text or len(text) > NAME_MAX or text != text.strip():
        raise problem(f"expected a name of 1 to {NAME_MAX} characters without surrounding spaces, got {text!r}")
    if text == OVERALL:
        raise problem(f"{OVERALL!r} is the overall row's name; choose another")
    return text


@checked.dataclass(frozen=True)
class Dimension(YamlSection):
    """One thing that says who spends: a text request column (`column`) or a request metadata key (`metadata`).

    A bare string is short for a dimension of that name: the column of that name when it is a text
    request column (`model`, `user_id`, `endpoint`, ...), else the metadata key. Without `column` or
    `metadata` the metadata key is the name. A metadata key with dots that is not itself a key reads
    nested objects (`labels.team` is `{"labels": {"team": ...}}`).
    """

    name: Annotated[str, expect("a name")]
    column: Literal[LABEL_COLUMNS] | None = None  # type: ignore[valid-type]
    metadata: Annotated[str | None, expect("a metadata key")] = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"name": raw, "column" if raw in LABEL_COLUMNS else "metadata": raw}
        return raw

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return _name(name)

    @model_validator(mode="after")
    def _one_source(self) -> Dimension:
        if self.column is not None and self.metadata is not None:
            raise problem("give column or metadata, not both", key="metadata")
        return self

    @property
    def metadata_key(self) -> str | None:
        """The metadata key (or dotted path) the values come from; None when they come from a column."""
        if self.column is not None:
            return None
        return self.name if self.metadata is None else self.metadata


def _shares(shares: tuple[float, ...]) -> tuple[float, ...]:
    if not shares or any(not 0 < share <= 10 for share in shares) or list(shares) != sorted(set(shares)):
        raise PydanticCustomError(
            "expected", "expected {expected}", {"expected": "ascending shares above 0, such as [0.8, 1.0]"}
        )
    return shares


@checked.dataclass(frozen=True)
class Budget(YamlSection):
    """A spending limit in USD, per local day or calendar month, overall or for one value of a dimension.

    Alerts fire when the spend passes each of `shares` of `usd`, and (a month's budget, with
    `forecast`) when the month-end forecast passes `usd` before the spend does.
    """

    period: Literal["day", "month"]
    usd: Annotated[Positive, expect("a positive amount of US dollars")]
    dimension: Annotated[str | None, expect("a dimension's name")] = None
    value: Annotated[str | None, expect("a value of the dimension, as text")] = None
    name: Annotated[str | None, expect("a name")] = None
    shares: Annotated[tuple[StrictFloat, ...], expect("a list of shares such as [0.8, 1.0]")] = DEFAULT_SHARES
    forecast: Annotated[StrictBool, expect("true or false")] = True

    @field_validator("shares")
    @classmethod
    def _ascending(cls, shares: tuple[float, ...]) -> tuple[float, ...]:
        return _shares(shares)

    @model_validator(mode="after")
    def _value_with_dimension(self) -> Budget:
        if (self.dimension is None) != (self.value is None):
            raise problem("dimension and value go together (neither: the overall spend)", key="value")
        if self.name is not None and not 0 < len(self.name) <= RULE_NAME_MAX:
            raise problem(f"expected 1 to {RULE_NAME_MAX} characters", key="name")
        if self.name is None and len(self.label) > RULE_NAME_MAX:
            raise problem(f"the budget's default name {self.label!r} is too long: give it a name", key="name")
        return self

    @property
    def label(self) -> str:
        """The budget's name: the one given, else `<dimension>=<value> <period>` or `all <period>`."""
        if self.name is not None:
            return self.name
        scope = OVERALL if self.dimension is None else f"{self.dimension}={self.value}"
        return f"{scope} {self.period}"


@checked.dataclass(frozen=True)
class ProviderBill(YamlSection):
    """A provider's cost export in the landing folder: the OpenAI Costs API's JSON pages or a plain CSV.

    `project_dimension` names the dimension whose values are the bill's project ids, so the bill can be
    compared project by project.
    """

    format: Literal["openai_costs", "csv"]
    pattern: Annotated[str, expect("a glob relative to the landing folder")]
    provider: Annotated[str, Field(min_length=1, max_length=NAME_MAX), expect("a provider's name")] = "openai"
    project_dimension: Annotated[str | None, expect("a dimension's name")] = None


TopValues = Annotated[StrictInt, Field(ge=1), expect("a whole number, at least 1")]
Share = Annotated[StrictFloat, Field(ge=0, le=1), expect("a share between 0 and 1")]


def check_references(
    dimensions: Sequence[Dimension],
    budgets: Sequence[Budget],
    bills: Sequence[ProviderBill],
    metadata_keys: Sequence[str] | None,
) -> None:
    """Raise the problem (its key path from the file's top) of a section naming what another lacks.

    A budget's or a bill's dimension must be configured; dimension and budget names are unique; a
    metadata dimension must survive `metadata_keys`, which drops every other key before storage.
    """
    names = [dimension.name for dimension in dimensions]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise problem(f"duplicate dimension {name!r}", key=f"dimensions[{index}].name")
    for index, dimension in enumerate(dimensions):
        key = dimension.metadata_key
        if key is not None and metadata_keys is not None and key.split(".")[0] not in metadata_keys:
            raise problem(
                f"{key!r} is dropped before storage by metadata_keys: add it there", key=f"dimensions[{index}].metadata"
            )
    known = ", ".join(names) or "none configured"
    labels = [budget.label for budget in budgets]
    for index, budget in enumerate(budgets):
        if budget.dimension is not None and budget.dimension not in names:
            raise problem(f"not a configured dimension ({known})", key=f"budgets[{index}].dimension")
        if budget.label in labels[:index]:
            raise problem(f"duplicate budget {budget.label!r}: give each a distinct name", key=f"budgets[{index}].name")
    for index, bill in enumerate(bills):
        if bill.project_dimension is not None and bill.project_dimension not in names:
            raise problem(f"not a configured dimension ({known})", key=f"provider_bills[{index}].project_dimension")
