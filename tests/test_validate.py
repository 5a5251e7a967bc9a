"""The expectations evaluated in pandas give what Great Expectations itself gives, row for row."""

import numpy as np
import pandas as pd
import pytest

from chatpulse.ingest.extract import empty_frame
from chatpulse.ingest.validate import suite_definition, validate, vectorised
from chatpulse.schema import COLUMNS, Kind

T = pd.Timestamp("2026-11-20T10:00:00", tz="UTC")


def _frame(kind: Kind, columns: dict[str, list]) -> pd.DataFrame:
    """A typed canonical frame of `kind` with the given columns filled, the rest missing."""
    size = len(next(iter(columns.values())))
    frame = empty_frame(kind)[list(COLUMNS[kind])].reindex(pd.RangeIndex(size))
    for name, values in columns.items():
        frame[name] = pd.Series(values, dtype=frame[name].dtype)
    return frame


FRAMES = {
    Kind.REQUESTS: _frame(
        Kind.REQUESTS,
        {
            "timestamp": [T, None, T, T, T, T, pd.NaT, T],
            # bounds are inclusive; NaN and None are missing, not out of range; inf is out of range
            "latency_ms": [0.0, 3_600_000.0, -0.001, 3_600_000.5, np.nan, np.inf, None, 12.5],
            "status_code": [100, 599, 99, 600, None, 200, 404, 0],
            "prompt_tokens": [0, -1, None, 5, 2**40, -(2**40), 7, 1],
            "cost_usd": [0.0, -0.0, -1e-9, None, 1.0, np.nan, 3.0, -np.inf],
        },
    ),
    Kind.MESSAGES: _frame(
        Kind.MESSAGES,
        {
            "timestamp": [T, T, None, T, T],
            "role": ["user", "User", None, "tool", ""],
        },
    ),
    Kind.FEEDBACK: _frame(
        Kind.FEEDBACK,
        {
            "timestamp": [T, T, T, None, T, T],
            "rating": [1, 0, None, 5, -1, 6],
        },
    ),
}


@pytest.mark.parametrize("kind", list(Kind))
def test_vectorised_expectations_match_gx(kind: Kind) -> None:
    assert all(vectorised(e) for e in suite_definition(kind)["expectations"])  # else GX runs them anyway
    frame = FRAMES[kind]
    ours, theirs = validate(frame, kind), validate(frame, kind, use_gx=True)
    assert ours.row_reasons == theirs.row_reasons
    assert ours.outcomes == theirs.outcomes
    assert ours.row_reasons  # the frames hold failures, so the comparison means something


def test_mostly_and_strict_bounds_match_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = {
        "name": "requests",
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "latency_ms", "min_value": 0,
             "max_value": 100, "strict_min": True, "strict_max": True, "mostly": 0.5}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "ttft_ms", "max_value": 10,
             "mostly": 0.9}},
        ],
    }  # fmt: skip
    monkeypatch.setattr("chatpulse.ingest.validate.suite_definition", lambda kind: suite)
    frame = _frame(
        Kind.REQUESTS,
        {"latency_ms": [0.0, 1.0, 100.0, 50.0, None], "ttft_ms": [1.0, 11.0, None, 2.0, 3.0]},
    )
    ours, theirs = validate(frame, Kind.REQUESTS), validate(frame, Kind.REQUESTS, use_gx=True)
    assert (
        ours.row_reasons
        == theirs.row_reasons
        == {
            0: ["latency_ms: expect_column_values_to_be_between"],
            1: ["ttft_ms: expect_column_values_to_be_between"],
            2: ["latency_ms: expect_column_values_to_be_between"],
        }
    )
    assert ours.outcomes == theirs.outcomes
    assert [o.success for o in ours.outcomes] == [True, False]


def test_an_expectation_not_evaluated_here_runs_in_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = {
        "name": "requests",
        "expectations": [
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "model", "regex": "^gpt-"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "model"}},
        ],
    }
    monkeypatch.setattr("chatpulse.ingest.validate.suite_definition", lambda kind: suite)
    frame = _frame(Kind.REQUESTS, {"model": ["gpt-4o", "claude", None]})
    result = validate(frame, Kind.REQUESTS)
    assert result.row_reasons == {
        1: ["model: expect_column_values_to_match_regex"],
        2: ["model: expect_column_values_to_not_be_null"],
    }
