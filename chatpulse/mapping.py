"""How a source's `columns:` entry is written: a path into the record, or a value derived from paths.

A path names a field of the record, or a field inside it: `usage.prompt_tokens`,
`choices.0.finish_reason` (a whole number steps into a list, from 0),
`response.body.usage.completion_tokens_details.reasoning_tokens`. The rules:

- A key of the record written exactly as the path (a CSV header `usage.prompt_tokens`, a JSON key
  with dots) is read as it is: the flat key wins over the path.
- A key that holds a dot deeper down is written in double quotes:
  `usageDetails."completion_details.reasoning"`.
- A path that reaches text on its way (a CSV field, a SQL text column, LiteLLM's `metadata`
  string) reads the text as JSON and goes on inside it; text that is not JSON quarantines the row.

A derived value is a mapping with one key: `duration` (milliseconds from one time to another),
`sum` (of numbers), `map` (a value looked up in a table) or `first` (the first of several paths or
derived values that holds a value, for one source whose records come in more than one shape). This
module only says what is written; `chatpulse.ingest.paths` reads the values.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field, TypeAdapter, ValidatorFunctionWrapHandler, WrapValidator, model_validator
from pydantic import dataclasses as checked
from pydantic_core import PydanticCustomError

from chatpulse.yamlfile import YamlSection, expect, problem

QUOTE = '"'
# The canonical columns a duration fills: it gives milliseconds.
DURATION_COLUMNS = ("latency_ms", "ttft_ms")
# The Python type a map's values must have for a canonical column of each value kind.
MAP_VALUE_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "string": (str,)}


def split_path(text: str) -> tuple[str, ...]:
    """The keys of a path: `usage.prompt_tokens` -> ('usage', 'prompt_tokens').

    A key in double quotes is taken whole, dots included (`a."b.c"` -> ('a', 'b.c')). Raises
    ValueError saying why for an empty key (`a..b`, a leading or trailing dot) or a misplaced quote.
    """
    keys: list[str] = []
    rest = text
    while True:
        if rest.startswith(QUOTE):
            end = rest.find(QUOTE, 1)
            if end == -1:
                raise ValueError("a quoted key is not closed")
            key, rest = rest[1:end], rest[end + 1 :]
            if rest and not rest.startswith("."):
                raise ValueError("a quoted key must end the path or be followed by '.'")
        else:
            key, dot, after = rest.partition(".")
            if QUOTE in key:
                raise ValueError("a quote may only start a key")
            rest = dot + after
        if not key:
            raise ValueError("a key is empty")
        keys.append(key)
        if not rest:
            return tuple(keys)
        rest = rest[1:]
        if not rest:
            raise ValueError("a key is empty")


def _path(text: str) -> str:
    try:
        split_path(text)
    except ValueError as exc:
        raise problem(f"not a path: {exc}") from None
    return text


PathText = Annotated[str, AfterValidator(_path), expect("a column name or a path such as usage.prompt_tokens")]


def value_key(value: Any) -> str:
    """The text a value is looked up under in a map: JSON's spelling of true/false, 400 for 400.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@checked.dataclass(frozen=True)
class Duration(YamlSection):
    """Milliseconds from `start` to `end` (`end - start`), both read with the source's `timestamp` rules.

    None where `null_if_end_equals` holds the same instant as `end`: LiteLLM writes its
    completionStartTime equal to endTime when nothing was streamed, so there is no first token.
    """

    start: PathText
    end: PathText
    null_if_end_equals: PathText | None = None


@checked.dataclass(frozen=True)
class ValueMap(YamlSection):
    """A value looked up by the text of the value at `from`: `values` (source value -> canonical value),
    `default` for a value not listed, `missing` where `from` holds nothing (both None unless given)."""

    source: PathText = Field(alias="from")
    values: Annotated[dict[str, Any], expect("a mapping of source value to canonical value")] = Field(
        default_factory=dict
    )
    default: Any = None
    missing: Any = None

    @model_validator(mode="before")
    @classmethod
    def _keys_as_text(cls, raw: Any) -> Any:
        # YAML reads `400:` and `true:` as a number and a boolean; they are looked up by their text.
        if isinstance(raw, dict) and isinstance(raw.get("values"), dict):
            return {**raw, "values": {value_key(key): value for key, value in raw["values"].items()}}
        return raw


def _choices(items: tuple[Any, ...]) -> tuple[str | Derived, ...]:
    # Each item is a column entry of its own (a path or a derived value), checked as one.
    return _CHOICES.validate_python(items)


@checked.dataclass(frozen=True)
class Derived(YamlSection):
    """A value computed from paths: exactly one of `duration`, `sum` (a list of paths; missing terms
    count 0, none at all gives none), `map` and `first` (a list of paths or derived values: per row,
    the value of the first that holds one)."""

    duration: Duration | None = None
    sum: Annotated[tuple[PathText, ...] | None, Field(min_length=1), expect("a list of paths")] = None
    map: Annotated[ValueMap | None, expect("a mapping with 'from' and 'values'")] = None
    first: Annotated[
        tuple[Any, ...] | None, Field(min_length=1), AfterValidator(_choices), expect("a list of paths or values")
    ] = None

    @model_validator(mode="after")
    def _one(self) -> Derived:
        given = [name for name in ("duration", "sum", "map", "first") if getattr(self, name) is not None]
        if len(given) != 1:
            raise problem(f"expected exactly one of duration, sum, map, first, got {', '.join(given) or 'none'}")
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The paths the value is computed from."""
        if self.duration is not None:
            ends = (self.duration.start, self.duration.end, self.duration.null_if_end_equals)
            return tuple(path for path in ends if path is not None)
        if self.sum is not None:
            return self.sum
        if self.first is not None:
            return tuple(dict.fromkeys(path for item in self.first for path in column_inputs(item)))
        return (self.map.source,) if self.map is not None else ()

    @property
    def always_fills(self) -> bool:
        """Whether the value fills every row whatever its paths reach: a map with `missing`, or a `first`
        with such a map among its choices."""
        if self.first is not None:
            return any(not isinstance(item, str) and item.always_fills for item in self.first)
        return self.map is not None and self.map.missing is not None

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        """The inputs in groups of which at least one path must reach a record: each path alone, except
        that a `first` value's paths form one group (any one of them serves), and none for a value that
        always fills (an absent path is what its `missing` is for)."""
        if self.always_fills:
            return ()
        return (self.inputs,) if self.first is not None else tuple((path,) for path in self.inputs)

    def describe(self) -> str:
        """The value as a person reads it: `endTime - startTime`, `a + b`, `map of finish_reason`, `a or b`, or
        `"batch" on every row` for a map that gives one value whatever it reads."""
        if self.duration is not None:
            return f"{self.duration.end} - {self.duration.start}"
        if self.sum is not None:
            return " + ".join(self.sum)
        if self.first is not None:
            return " or ".join(item if isinstance(item, str) else f"({item.describe()})" for item in self.first)
        if self.map is None:
            return ""
        if not self.map.values and self.map.default == self.map.missing is not None:  # a constant, however written
            return f"{json.dumps(self.map.default)} on every row"
        return f"map of {self.map.source}"


_DERIVED = TypeAdapter(Derived)


def column_inputs(column: str | Derived) -> tuple[str, ...]:
    """The paths a column entry reads: the path itself, or those its derived value is computed from."""
    return (column,) if isinstance(column, str) else column.inputs


def _column(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # Dispatched by hand so that a mistake is named by its own key, not by the union's branches.
    if isinstance(value, dict):
        return _DERIVED.validate_python(value)
    if isinstance(value, Derived):  # checked when built: a source copied with dataclasses.replace keeps it
        return value
    if not isinstance(value, str):
        raise problem(f"expected a column name, a path or a derived value (duration, sum, map, first), got {value!r}")
    return _path(value)


# What a `columns:` entry holds: a path (a plain column name is a path of one key) or a derived value.
Column = Annotated[str | Derived, WrapValidator(_column)]
_CHOICES = TypeAdapter(tuple[Column, ...])


def check_column(name: str, value_kind: str, column: str | Derived) -> None:
    """Raise a pydantic error keyed below `name` when a derived value cannot fill a canonical column
    of `value_kind` (see chatpulse.schema): a duration fills only DURATION_COLUMNS, a sum only numbers,
    and a map's values must have the column's type."""
    if isinstance(column, str):
        return
    for number, item in enumerate(column.first or ()):
        try:
            check_column(name, value_kind, item)
        except PydanticCustomError as exc:  # keyed below this item: first.<n>.<its key>
            key = (exc.context or {}).get("key", "").removeprefix(f"{name}.")
            raise problem(exc.message(), key=f"{name}.first.{number}" + (f".{key}" if key else "")) from None
    if column.duration is not None and name not in DURATION_COLUMNS:
        raise problem(f"a duration gives milliseconds: only for {', '.join(DURATION_COLUMNS)}", key=f"{name}.duration")
    if column.sum is not None and value_kind not in ("int", "float"):
        raise problem("a sum gives a number: only for a token, latency or cost column", key=f"{name}.sum")
    if column.map is None:
        return
    types = MAP_VALUE_TYPES.get(value_kind)
    if types is None:
        raise problem(f"a map cannot fill a {value_kind} column", key=f"{name}.map")
    wanted = {"int": "a whole number", "float": "a number", "string": "a string"}[value_kind]
    given = {f"values.{key}": value for key, value in column.map.values.items()}
    given |= {key: getattr(column.map, key) for key in ("default", "missing")}
    for key, value in given.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            raise problem(f"expected {wanted} for {name}, got {value!r}", key=f"{name}.map.{key}")
