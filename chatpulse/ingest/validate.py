"""Run the Great Expectations suites in `expectations/` over a partition's rows.

GX Core 1.x has no Dagster integration we can use (dagster-ge targets GX 0.x), so
this wraps it directly: one ephemeral context, suites loaded from plain JSON, and
per-row failures read back from COMPLETE results so rows can be quarantined.

The suites stay the source of truth, but the row-level expectations they hold today
(not null, between, in set) are evaluated here with GX's own rules as vectorised
pandas: GX's import (about 7 s, it pulls in SciPy) and its per-expectation passes
cost more than the whole clean step at a million rows. Any other expectation, or a
keyword those three do not read, runs in GX itself (tests/test_validate.py checks that
both give the same rows and outcomes).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from chatpulse.schema import COLUMNS, Kind

# Read by GX when it is first imported, in _context: importing it takes seconds (it pulls in SciPy), so
# only a step that validates pays that, never the Definitions a code server loads.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

ROW = "_row"
# The keywords each expectation evaluated here reads; one with any other keyword goes to GX.
VECTORISED = {
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
}


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on a batch, for Dagster checks and the report."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int


@dataclass(frozen=True)
class Validation:
    """Per-row failure reasons (by row position) plus every expectation's outcome."""

    row_reasons: dict[int, list[str]] = field(default_factory=dict)
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def batch_failures(self) -> list[ExpectationOutcome]:
        """Failed expectations that name no rows (aggregate ones fail the whole batch)."""
        return [o for o in self.outcomes if not o.success and o.unexpected_count == 0]


def suite_definition(kind: Kind) -> dict[str, Any]:
    """The suite JSON for a kind, as shipped in the `expectations` package."""
    text = resources.files("chatpulse.expectations").joinpath(f"{kind.value}.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _context() -> Any:
    import great_expectations as gx  # imported only where an expectation needs GX itself
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


@cache
def _batch_definition(kind: Kind) -> Any:
    source = _context().data_sources.add_pandas(f"chatpulse_{kind.value}")
    return source.add_dataframe_asset(kind.value).add_batch_definition_whole_dataframe("partition")


def _column_groups(definition: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]]:
    """The suite's expectations by the column they check (None: table-level ones)."""
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for expectation in definition.get("expectations", []):
        groups[expectation.get("kwargs", {}).get("column")].append(expectation)
    return groups


def _batch_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    data = frame[columns].reset_index(drop=True)
    # GX compares nullable integers one Python value at a time; floats go vectorised.
    integers = [c for c in columns if isinstance(data[c].dtype, pd.Int64Dtype)]
    data[integers] = data[integers].astype("float64")
    data[ROW] = np.arange(len(data))
    return data


def vectorised(expectation: dict[str, Any]) -> bool:
    """Whether an expectation of a suite is evaluated here (_unexpected) rather than in GX."""
    kwargs = expectation.get("kwargs", {})
    known = VECTORISED.get(expectation.get("type", ""))
    return known is not None and "column" in kwargs and set(kwargs) <= known


def _unexpected(values: pd.Series, expectation: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """The rows (positions) one column expectation fails and whether it succeeds, by GX's rules.

    As in GX: missing values (None, NaN, NaT) fail only not_be_null and are left out of the
    others, bounds are inclusive unless strict, and `mostly` is the share of the non-missing
    values that must pass (1 when absent).
    """
    kwargs = expectation["kwargs"]
    missing = values.isna().to_numpy()
    if expectation["type"] == "expect_column_values_to_not_be_null":
        failed = missing
    else:
        present = values[~missing]
        if expectation["type"] == "expect_column_values_to_be_in_set":
            passed = present.isin(kwargs["value_set"]).to_numpy(dtype=bool)
        else:
            passed = np.ones(len(present), dtype=bool)
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            if low is not None:
                passed &= (present > low if kwargs.get("strict_min") else present >= low).to_numpy(dtype=bool)
            if high is not None:
                passed &= (present < high if kwargs.get("strict_max") else present <= high).to_numpy(dtype=bool)
        failed = np.zeros(len(values), dtype=bool)
        failed[np.flatnonzero(~missing)[~passed]] = True
    rows = np.flatnonzero(failed)
    checked = len(values) if expectation["type"] == "expect_column_values_to_not_be_null" else int((~missing).sum())
    mostly = kwargs.get("mostly", 1)
    success = rows.size == 0 if mostly >= 1 else checked == 0 or 1 - rows.size / checked >= mostly
    return rows, bool(success)


def _gx_results(
    frame: pd.DataFrame, kind: Kind, name: str, column: str | None, columns: list[str], expectations: list[dict]
) -> list[tuple[str, np.ndarray, bool]]:
    """Each expectation's type, failing rows (positions) and success, from GX on a batch of `columns`."""
    import great_expectations as gx

    data = _batch_frame(frame, columns)
    suite = gx.ExpectationSuite(name=f"{name}:{column}", expectations=expectations)
    batch = _batch_definition(kind).get_batch(batch_parameters={"dataframe": data})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]})
    return [
        (
            item.expectation_config.type,
            np.asarray([int(entry[ROW]) for entry in item.result.get("unexpected_index_list") or []], dtype="int64"),
            bool(item.success),
        )
        for item in result.results
    ]


def validate(frame: pd.DataFrame, kind: Kind, *, use_gx: bool = False) -> Validation:
    """Validate the canonical columns of `frame` against the kind's suite.

    Row-level expectations GX's rules can be applied to vectorised are (see `vectorised`);
    the rest, or all with `use_gx`, run in GX, each column's on a batch of that column
    alone: GX filters its whole batch once per expectation, so narrow batches keep a
    million rows cheap. Outcomes come in the suite's order of columns.
    """
    if frame.empty:
        return Validation()
    definition = suite_definition(kind)
    canonical = [c for c in COLUMNS[kind] if c in frame.columns]
    reasons: dict[int, list[str]] = defaultdict(list)
    outcomes = []
    for column, expectations in _column_groups(definition).items():
        if not use_gx and column in frame.columns and all(vectorised(e) for e in expectations):
            values = frame[column].reset_index(drop=True)
            results = [(e["type"], *_unexpected(values, e)) for e in expectations]
        else:
            columns = canonical if column is None else [column]
            results = _gx_results(frame, kind, definition["name"], column, columns, expectations)
        for expectation, rows, success in results:
            reason = f"{column}: {expectation}" if column else expectation
            for row in rows.tolist():
                reasons[row].append(reason)
            outcomes.append(ExpectationOutcome(expectation, column, success, len(rows)))
    return Validation(dict(reasons), outcomes)
