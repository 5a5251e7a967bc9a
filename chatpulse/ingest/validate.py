"""Run the Great Expectations suites in `expectations/` over a partition's rows.

GX Core 1.x has no Dagster integration we can use (dagster-ge targets GX 0.x), so
this wraps it directly: one ephemeral context, suites loaded from plain JSON, and
per-row failures read back from COMPLETE results so rows can be quarantined.
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
    import great_expectations as gx
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


def validate(frame: pd.DataFrame, kind: Kind) -> Validation:
    """Validate the canonical columns of `frame` against the kind's suite.

    Each column's expectations run on a batch of that column alone: GX filters its
    whole batch once per expectation, so narrow batches keep a million rows cheap.
    """
    if frame.empty:
        return Validation()
    import great_expectations as gx

    definition = suite_definition(kind)
    canonical = [c for c in COLUMNS[kind] if c in frame.columns]
    reasons: dict[int, list[str]] = defaultdict(list)
    outcomes = []
    for column, expectations in _column_groups(definition).items():
        data = _batch_frame(frame, canonical if column is None else [column])
        suite = gx.ExpectationSuite(name=f"{definition['name']}:{column}", expectations=expectations)
        batch = _batch_definition(kind).get_batch(batch_parameters={"dataframe": data})
        result = batch.validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}
        )
        for item in result.results:
            config = item.expectation_config
            unexpected = item.result.get("unexpected_index_list") or []
            reason = f"{column}: {config.type}" if column else config.type
            for entry in unexpected:
                reasons[int(entry[ROW])].append(reason)
            outcomes.append(ExpectationOutcome(config.type, column, bool(item.success), len(unexpected)))
    return Validation(dict(reasons), outcomes)
