"""Who spends: the spend configuration, a dimension's values, and dimension_daily against an independent groupby."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.alerting.spend import budget_status
from chatpulse.config import DEFAULT_SOURCES, ConfigError, load_settings, settings_from_mapping
from chatpulse.metrics.attribution import DIMENSION_COLUMNS, dimension_daily, dimension_labels
from chatpulse.metrics.pricing import estimate_cost, load_prices, prices_on
from chatpulse.sample.demo import write_demo_config
from chatpulse.sample.generate import write_sample
from chatpulse.schema import Kind, is_error
from chatpulse.spendconfig import Budget, Dimension
from chatpulse.warehouse import Warehouse, Write

from fixtures import METRIC_DAY as DAY
from fixtures import clean_every_day
from fixtures import clean_requests as requests

RATES = prices_on(load_prices(), DAY)
SAMPLE_DAY = dt.date(2026, 11, 24)


def at(time: str, **fields: object) -> dict:
    return {"timestamp": f"2026-11-20T{time}Z", "status_code": 200, **fields}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"dimensions": [{"name": "x", "column": "latency_ms"}]}, "dimensions[0].column: expected one of request_id"),
        ({"dimensions": [{"name": "x", "column": "model", "metadata": "m"}]}, "dimensions[0].metadata: give column"),
        ({"dimensions": ["all"]}, "dimensions[0].name: 'all' is the overall row's name"),
        ({"dimensions": ["team", {"name": "team", "metadata": "t"}]}, "dimensions[1].name: duplicate dimension"),
        ({"dimensions": ["team"], "metadata_keys": ["app"]}, "dimensions[0].metadata: 'team' is dropped"),
        ({"dimensions": "team"}, "dimensions: expected a list of dimensions, got 'team'"),
        ({"top_values": 0}, "top_values: expected a whole number, at least 1, got 0"),
        ({"budgets": [{"period": "week", "usd": 1}]}, "budgets[0].period: expected one of day, month"),
        ({"budgets": [{"period": "day", "usd": 0}]}, "budgets[0].usd: expected a positive amount of US dollars"),
        ({"budgets": [{"period": "day", "usd": 1, "shares": [1, 0.5]}]}, "budgets[0].shares: expected ascending"),
        ({"budgets": [{"period": "day", "usd": 1, "value": "x"}]}, "budgets[0].value: dimension and value go"),
        (
            {"dimensions": ["team"], "budgets": [{"dimension": "tema", "value": "a", "period": "day", "usd": 1}]},
            "budgets[0].dimension: not a configured dimension (team)",
        ),
        ({"budgets": [{"period": "day", "usd": 1}, {"period": "day", "usd": 2}]}, "budgets[1].name: duplicate budget"),
        ({"budgets": [{"period": "day", "usd": 1, "colour": "red"}]}, "budgets[0].colour: unknown key"),
        ({"provider_bills": [{"format": "pdf", "pattern": "*.pdf"}]}, "provider_bills[0].format: expected one of"),
        ({"provider_bills": [{"format": "csv"}]}, "provider_bills[0].pattern: required"),
        (
            {"provider_bills": [{"format": "csv", "pattern": "*.csv", "project_dimension": "project"}]},
            "provider_bills[0].project_dimension: not a configured dimension (none configured)",
        ),
        ({"reconciliation_warn_share": 1.5}, "reconciliation_warn_share: expected a share between 0 and 1"),
    ],
)
def test_spend_configuration_errors_name_the_key(raw: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        settings_from_mapping(raw, tmp_path, {})


def test_a_bare_dimension_is_a_column_when_it_names_one_else_a_metadata_key(tmp_path: Path) -> None:
    raw = {"dimensions": ["model", "team", {"name": "project", "metadata": "labels.project"}], "metadata_keys": None}
    settings = settings_from_mapping(raw, tmp_path, {})
    assert settings.dimensions == (
        Dimension(name="model", column="model"),
        Dimension(name="team", metadata="team"),
        Dimension(name="project", metadata="labels.project"),
    )
    assert [d.metadata_key for d in settings.dimensions] == [None, "team", "labels.project"]
    assert (settings.top_values, settings.budgets, settings.reconciliation_warn_share) == (20, (), 0.05)


def test_labels_come_from_a_column_or_a_metadata_key_nested_or_not() -> None:
    frame = requests(
        at("01:00:00", model="gpt-4o", metadata='{"team": "a", "labels": {"project": "p1"}, "n": 3}'),
        at("02:00:00", model=" ", metadata='{"team": "", "labels.project": "dotted", "n": true}'),
        at("03:00:00", metadata='{"team": null, "labels": {"project": {"id": 7}}, "n": 2.5}'),
        at("04:00:00", metadata="not json"),
        at("05:00:00"),
    )
    model = dimension_labels(frame, Dimension(name="model", column="model"))
    assert model.tolist() == ["gpt-4o", None, None, None, None]  # blank text names no one
    team = dimension_labels(frame, Dimension(name="team"))
    assert team.tolist() == ["a", None, None, None, None]
    project = dimension_labels(frame, Dimension(name="project", metadata="labels.project"))
    assert project.tolist() == ["p1", "dotted", '{"id":7}', None, None]  # the key itself before the path
    assert dimension_labels(frame, Dimension(name="n")).tolist() == ["3", "true", "2.5", None, None]


def _by_hand(rows: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """dimension_daily's measures per label, by a plain pandas groupby (labels: one per row, '(unset)' for none)."""
    estimate = estimate_cost(rows, RATES_FOR[str(rows["timestamp"].dt.date.iloc[0])])
    logged = rows["cost_usd"].to_numpy(dtype="float64", na_value=np.nan)
    frame = pd.DataFrame(
        {
            "label": labels.fillna("(unset)").to_numpy(),
            "error": is_error(rows).to_numpy(),
            "total_tokens": rows["total_tokens"].fillna(0).to_numpy(dtype="float64"),
            "cached_tokens": rows["cached_tokens"].fillna(0).to_numpy(dtype="float64"),
            "estimate": estimate,
            "logged": logged,
            "spend": np.where(np.isnan(logged), estimate, logged),
            "latency": rows["latency_ms"].to_numpy(dtype="float64", na_value=np.nan),
            "user": rows["user_id"].to_numpy(dtype=object),
        }
    )
    grouped = frame.groupby("label")
    return pd.DataFrame(
        {
            "requests": grouped.size(),
            "errors": grouped["error"].sum(),
            "total_tokens": grouped["total_tokens"].sum(),
            "cached_tokens": grouped["cached_tokens"].sum(),
            "cost_estimate_usd": grouped["estimate"].sum(min_count=1),
            "cost_logged_usd": grouped["logged"].sum(min_count=1),
            "spend_usd": grouped["spend"].sum(min_count=1),
            "unknown_cost_requests": grouped["spend"].apply(lambda s: int(s.isna().sum())),
            "latency_p95_ms": grouped["latency"].apply(
                lambda s: np.percentile(s.dropna(), 95) if s.notna().any() else np.nan
            ),
            "users": grouped["user"].nunique(),
        }
    )


RATES_FOR = {DAY.isoformat(): RATES, SAMPLE_DAY.isoformat(): prices_on(load_prices(), SAMPLE_DAY)}
MEASURES = ("requests", "errors", "total_tokens", "cached_tokens", "cost_estimate_usd", "cost_logged_usd", "spend_usd",
            "unknown_cost_requests", "latency_p95_ms", "users")  # fmt: skip


def _compare(table: pd.DataFrame, expected: pd.DataFrame, dimension: str) -> None:
    mine = table[table["dimension"] == dimension].copy()
    mine["label"] = np.where(mine["bucket"] == "unset", "(unset)", mine["value"].astype(object))
    mine = mine.set_index("label")
    for measure in MEASURES:
        assert mine[measure].to_numpy(dtype="float64") == pytest.approx(
            expected.loc[mine.index, measure].to_numpy(dtype="float64"), nan_ok=True, rel=1e-12
        ), (dimension, measure)


def test_dimension_daily_matches_an_independent_groupby_and_folds_the_rest() -> None:
    frame = requests(
        # team a: gpt-4o with a logged cost; team b: one logged, one only estimated; team c: an unpriced model.
        at("01:00:00", user_id="u1", model="gpt-4o", prompt_tokens=1000, completion_tokens=200, total_tokens=1200,
           cost_usd=0.5, latency_ms=100.0, metadata='{"team": "a"}'),
        at("02:00:00", user_id="u2", model="gpt-4o", prompt_tokens=1000, cached_tokens=500, completion_tokens=10,
           total_tokens=1010, latency_ms=300.0, metadata='{"team": "b"}'),
        at("03:00:00", user_id="u2", model="gpt-4o-mini", prompt_tokens=50, completion_tokens=5, total_tokens=55,
           cost_usd=0.2, latency_ms=200.0, status_code=429, error_type="rate_limit", metadata='{"team": "b"}'),
        at("04:00:00", user_id="u3", model="mystery-model", prompt_tokens=10, total_tokens=10,
           latency_ms=50.0, metadata='{"team": "c"}'),
        at("05:00:00", user_id="u1", model="gpt-4o", prompt_tokens=10, completion_tokens=10, total_tokens=20,
           cost_usd=0.01, metadata='{"other": 1}'),
        at("23:59:59", user_id="u4", model="gpt-4o", cost_usd=9.0, metadata='{"team": "d"}'),
        {"timestamp": "2026-11-21T00:00:00Z", "status_code": 200, "cost_usd": 5.0, "metadata": '{"team": "a"}'},
    )  # fmt: skip
    team = Dimension(name="team")
    table = dimension_daily(frame, DAY, "UTC", RATES, [team], top=2, keep={"team": {"c"}})
    assert list(table.columns) == list(DIMENSION_COLUMNS)
    rows = frame[frame["timestamp"] < "2026-11-21"].reset_index(drop=True)
    labels = pd.Series([json.loads(m).get("team") for m in rows["metadata"]], dtype=object)
    # top 2 by spend are d ($9) and a ($0.5); c is kept for its budget; b is folded into "other".
    shown = table.loc[table["dimension"] == "team", ["value", "bucket", "rank", "folded_values"]].astype(object)
    assert shown.where(shown.notna(), None).values.tolist() == [
        ["d", "value", 1, 1], ["a", "value", 2, 1], ["c", "value", 3, 1], [None, "unset", None, 0],
        [None, "other", None, 1],
    ]  # fmt: skip
    folded = labels.where(labels.isin(["a", "c", "d"]) | labels.isna(), "(other)")
    expected = _by_hand(rows, folded)
    _compare(table.assign(value=table["value"].where(table["bucket"] != "other", "(other)")), expected, "team")
    # _by_hand prices rows with estimate_cost, as dimension_daily does; so by hand too, at gpt-4o's $2.50 input,
    # $1.25 cached input, $10 output and gpt-4o-mini's $0.15 / $0.60 per million tokens (OpenAI's price list):
    # b's unlogged gpt-4o call is (500 x 2.5 + 500 x 1.25 + 10 x 10) / 1e6 = $0.001975, its mini call logged $0.20.
    spend = table[table["dimension"] == "team"].set_index("value")
    assert spend.loc["a", ["spend_usd", "cost_estimate_usd"]].tolist() == pytest.approx([0.5, 4500 / 1e6])
    assert pd.isna(spend.loc["c", "spend_usd"])  # an unpriced model, nothing logged: unknown, not $0
    b = table[(table["dimension"] == "team") & (table["bucket"] == "other")].iloc[0]
    assert (b["spend_usd"], b["cost_estimate_usd"]) == pytest.approx((0.2 + 0.001975, 0.001975 + 10.5 / 1e6))
    overall = table[table["dimension"] == "all"].iloc[0]
    everything = _by_hand(rows, pd.Series(["*"] * len(rows), dtype=object)).iloc[0]
    for measure in MEASURES:
        assert float(overall[measure]) == pytest.approx(float(everything[measure]), rel=1e-12), measure
    # Without an estimate: the mystery model (no price) and u4's call (served, no token counts: unmetered).
    assert overall["unpriced_requests"] == 2 and overall["logged_requests"] == 4
    assert overall["cache_write_tokens"] == 0


def test_cache_write_tokens_are_summed_where_the_log_has_them() -> None:
    frame = requests(at("01:00:00", metadata='{"team": "a"}'), at("02:00:00", metadata='{"team": "a"}'))
    frame["cache_write_tokens"] = pd.array([100, None], dtype="Int64")
    table = dimension_daily(frame, DAY, "UTC", RATES, [Dimension(name="team")], top=5)
    assert table["cache_write_tokens"].tolist() == [100, 100]


def test_a_dimension_no_request_of_the_day_has_gives_one_unset_row() -> None:
    frame = requests(at("01:00:00", metadata='{"other": 1}'), at("02:00:00", metadata=None))
    table = dimension_daily(frame, DAY, "UTC", RATES, [Dimension(name="team")], top=5)
    assert table[["dimension", "bucket", "requests"]].values.tolist() == [["all", "all", 2], ["team", "unset", 2]]


def test_a_day_without_requests_still_has_its_overall_row() -> None:
    table = dimension_daily(requests(), DAY, "UTC", RATES, [Dimension(name="team")], top=5)
    assert table[["dimension", "bucket", "requests"]].values.tolist() == [["all", "all", 0]]
    assert pd.isna(table.iloc[0]["spend_usd"])


def test_the_sample_day_per_team_project_and_user_matches_an_independent_groupby(tmp_path: Path) -> None:
    write_sample(tmp_path, [SAMPLE_DAY], requests_per_day=600)
    clean = clean_every_day(tmp_path, DEFAULT_SOURCES, Kind.REQUESTS)[SAMPLE_DAY.isoformat()].clean
    dimensions = [Dimension(name="team"), Dimension(name="project"), Dimension(name="user_id", column="user_id")]
    table = dimension_daily(clean, SAMPLE_DAY, "UTC", RATES_FOR[SAMPLE_DAY.isoformat()], dimensions, top=3)
    metadata = [json.loads(text) for text in clean["metadata"]]
    for name in ("team", "project"):
        labels = pd.Series([m.get(name) for m in metadata], dtype=object)
        expected = _by_hand(clean, labels)
        top = expected.sort_values(["spend_usd", "requests"], ascending=False).index[:3]
        assert table.loc[(table["dimension"] == name) & (table["bucket"] == "value"), "value"].tolist() == list(top)
        folded = labels.where(labels.isin(top) | labels.isna(), "(other)")
        _compare(table.assign(value=table["value"].where(table["bucket"] != "other", "(other)")),
                 _by_hand(clean, folded), name)  # fmt: skip
    users = table[table["dimension"] == "user_id"]
    assert users["requests"].sum() == len(clean) and users["users"].iloc[:3].tolist() == [1, 1, 1]
    assert {"support", "engineering", "sales", "localization"} == {m["team"] for m in metadata}


def test_the_demo_writes_its_configuration_into_the_data_home(tmp_path: Path) -> None:
    path = write_demo_config(tmp_path / "home")
    settings = load_settings(path, env={})
    assert (
        settings.data_home == (tmp_path / "home").resolve() and settings.landing_dir == settings.data_home / "landing"
    )
    assert [d.name for d in settings.dimensions] == ["team", "project", "model"]
    assert settings.provider_bills[0].project_dimension == "project"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_spend_tables_round_trip_through_the_warehouse(backend: str, tmp_path: Path, request) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    warehouse = Warehouse(url)
    request.addfinalizer(warehouse.engine.dispose)
    frame = requests(
        at("01:00:00", user_id="u1", model="gpt-4o", cost_usd=0.5, latency_ms=10.0, metadata='{"team": "a"}'),
        at("02:00:00", user_id="u2", model="gpt-4o", latency_ms=20.0, metadata='{"team": "b"}'),
        at("03:00:00", user_id="u3", model="gpt-4o", cost_usd=0.1),
    )
    table = dimension_daily(frame, DAY, "UTC", RATES, [Dimension(name="team")], top=1)
    budgets = (Budget(period="month", usd=10.0, dimension="team", value="a"), Budget(period="day", usd=1.0))
    status = budget_status(budgets, table, DAY)
    warehouse.replace_day(DAY.isoformat(), Write("dimension_daily", table), Write("budget_status", status))
    stored = warehouse.read("dimension_daily", DAY.isoformat()).sort_values(["dimension", "bucket"], ascending=False)
    shown = stored[["dimension", "bucket", "value", "rank", "folded_values", "requests"]].astype(object)
    assert shown.where(shown.notna(), None).values.tolist() == [
        ["team", "value", "a", 1, 1, 1], ["team", "unset", None, None, 0, 1], ["team", "other", None, None, 1, 1],
        ["all", "all", None, None, None, 3],
    ]  # fmt: skip
    # team b's one call logged no cost and no tokens (unmetered): its spend is unknown, not $0.
    assert stored["spend_usd"].tolist() == pytest.approx([0.5, 0.1, float("nan"), 0.6], nan_ok=True)
    assert warehouse.read("budget_status", DAY.isoformat())["used_share"].tolist() == pytest.approx([0.05, 0.6])
