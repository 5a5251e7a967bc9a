"""Values of one column of records converted to their canonical types, and the problems found doing so.

Each problem or repair is kept by row (Problems) so that extract can name it in the row's ERRORS or REPAIRED.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class Problems:
    """Collects (row, reason) pairs and folds them into one list per row (problems or repairs)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: list[np.ndarray] = []
        self.reasons: list[str] = []

    def add(self, mask: pd.Series | np.ndarray, reason: str) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if positions.size:
            self.rows.append(positions)
            self.reasons.append(reason)

    def column(self) -> np.ndarray:
        """Per row its reasons in the order found (None for none), each once."""
        folded = np.full(self.size, None, dtype=object)
        for positions, reason in zip(self.rows, self.reasons, strict=True):
            for position in positions:
                if folded[position] is None:
                    folded[position] = []
                if reason not in folded[position]:  # metadata is written twice where unmapped columns join it
                    folded[position].append(reason)
        return folded


def _unreadable(values: pd.Series, converted: pd.Series) -> pd.Series:
    """Rows that held a value (not blank) which the conversion could not read."""
    lost = converted.isna() & values.notna()
    if lost.any() and not pd.api.types.is_numeric_dtype(values):
        lost[lost] = values[lost].astype(str).str.strip() != ""
    return lost


def to_string(values: pd.Series, blank_is_missing: bool = True) -> pd.Series:
    """Text values, missing ones kept missing (numbers such as user ids become text).

    With `blank_is_missing` (every column but free text), text of whitespace alone is missing too, as a CSV's
    empty field is: a JSON log's `"request_id": ""` is no id (else every such row of a day would be one
    request and the rest dropped as its duplicates), `"error_type": " "` no error. A JSON object or array
    where text was expected (a `content` of parts) becomes its JSON text, not Python's repr of it.
    """
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True).startswith("mixed"):
        nested = np.fromiter((isinstance(v, dict | list) for v in values), dtype=bool, count=len(values))
        if nested.any():
            values = values.copy()
            values[nested] = [_json_text(value) for value in values[nested]]
    text = values if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object else values.astype("str")
    if not blank_is_missing:
        return text
    arrow = pa.array(text)  # Arrow-backed text: no copy; Arrow's kernels take a tenth of pandas' regex
    blank = pc.fill_null(pc.or_(pc.utf8_is_space(arrow), pc.equal(pc.binary_length(arrow), 0)), False)
    blank = blank.to_numpy(zero_copy_only=False)
    return text.mask(blank) if blank.any() else text


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=json_value).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: its text all the same
        return str(value)


# What pandas' infer_dtype calls values that hold no boolean (it calls 1 and True "mixed-integer").
NO_BOOLEANS = frozenset({"empty", "integer", "floating", "mixed-integer-float", "decimal"})


def to_number(values: pd.Series, name: str, problems: Problems, integer: bool) -> pd.Series:
    """Values as float64 (Int64 where `integer`); a value that is no number is missing and its row's problem
    (`<name>: not a number`, `not an integer`, `out of range`). JSON's true and false are no numbers, though
    Python counts them as 1 and 0 (a `"prompt_tokens": true` is a garbled record, not one token)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
    else:
        objects = values.astype(object)
        # Text columns hold no booleans, nor do objects pandas finds to be numbers alone (a number column that
        # became objects where another block of its file held text): only the rest are looked at one by one.
        if pd.api.types.is_bool_dtype(values) or (
            values.dtype == object and pd.api.types.infer_dtype(objects, skipna=True) not in NO_BOOLEANS
        ):
            booleans = np.fromiter((isinstance(v, bool | np.bool_) for v in objects), dtype=bool, count=len(objects))
            objects = objects.mask(booleans) if booleans.any() else objects
        numbers = pd.to_numeric(objects, errors="coerce")
    problems.add(_unreadable(values, numbers), f"{name}: not a number")
    numbers = numbers.astype("float64")
    if not integer:
        return numbers
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    problems.add(fractional, f"{name}: not an integer")
    too_big = numbers.abs() >= 2.0**63  # past a 64-bit integer: a garbled value, quarantined, not a crash
    problems.add(too_big, f"{name}: out of range")
    return numbers.where(~fractional & ~too_big).astype("Int64")


def json_value(value: Any) -> Any:
    """A value JSON has no type for, as JSON holds it: what a database gives besides text, numbers and mappings
    (a NUMERIC as a number, a time as ISO 8601 text, bytes as hex, anything else as its text). For orjson's default."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# orjson writes at most 254 levels of nesting (it reads 1,024): a deeper value cannot be kept as JSON text.
TOO_DEEP = "nested deeper than 254 levels"


def to_json(values: pd.Series, problems: Problems | None = None, name: str = "metadata") -> pd.Series:
    """JSON text of each value; a mapping's null keys are left out, as if absent.

    A value orjson cannot write (nested deeper than 254 levels) is missing and, given `problems`, the row's
    problem `<name>: nested deeper than 254 levels` (quarantined, not the day's run failed); without it raises
    orjson.JSONEncodeError.
    """

    def dumps(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        mapping = {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
        try:
            return orjson.dumps(mapping, default=json_value).decode()
        except orjson.JSONEncodeError:
            if problems is None:
                raise
            return None

    # Rows often share one parsed object (arrowlines._flat_objects): each object is written once. The ids
    # stay unique while `held` keeps every value alive.
    held = values.to_numpy(dtype=object, na_value=None)
    done: dict[int, str | None] = {}
    texts = []
    for value in held:
        key = id(value)
        if key not in done:
            done[key] = dumps(value)
        texts.append(done[key])
    out = pd.Series(texts, index=values.index, dtype="str")
    if problems is not None:
        problems.add(out.isna().to_numpy(dtype=bool) & pd.notna(held), f"{name}: {TOO_DEEP}")
    return out


def extras_json(extras: pd.DataFrame, own: pd.Series | None, problems: Problems | None = None) -> pd.Series:
    """Unmapped source columns kept in the request's metadata beside its own keys, absent values left out.

    A record's own `metadata` wins over an unmapped column of the same name; one that is not
    a mapping is kept under "metadata".
    """
    rows = extras.astype(object).where(extras.notna(), None).to_dict("records")
    if own is not None:
        rows = [_merged(row, value) for row, value in zip(rows, own.astype(object), strict=True)]
    metadata = to_json(pd.Series(rows, dtype=object), problems)
    return metadata.mask(metadata == "{}")


def _merged(extras: dict[str, Any], own: Any) -> dict[str, Any]:
    if own is None or (isinstance(own, float) and np.isnan(own)):
        return extras
    return {**extras, **own} if isinstance(own, dict) else {**extras, "metadata": own}
