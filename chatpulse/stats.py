"""Percentiles and means: the one definition behind every table and chart that reports one.

A percentile is linear interpolation between the two nearest ranks of the non-null
values (Hyndman & Fan's definition 7: numpy's `percentile` and pandas' `quantile`
default, named here explicitly so the two paths cannot drift apart). With no values it
is NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.core.groupby import SeriesGroupBy

METHOD = "linear"


def present(column: pd.Series) -> np.ndarray:
    """The non-null values of a numeric column as a float64 array."""
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    return values[~np.isnan(values)]


def percentiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Percentiles qs (0-100) of values (no NaN), in the order of qs; NaN for each when values is empty."""
    if not len(values):
        return [np.nan] * len(qs)
    return [float(p) for p in np.percentile(values, list(qs), method=METHOD)]


def percentile(values: np.ndarray, q: float) -> float:
    """One percentile q (0-100) of values; NaN when there are none."""
    return percentiles(values, [q])[0]


def group_percentile(grouped: SeriesGroupBy, q: float) -> pd.Series:
    """Percentile q (0-100) of each group's non-null values, indexed by group; NaN for a group without any."""
    return grouped.quantile(q / 100, interpolation=METHOD)


def mean(values: np.ndarray) -> float:
    """Mean of values, NaN when there are none (without numpy's empty-mean warning)."""
    return float(values.mean()) if len(values) else np.nan
