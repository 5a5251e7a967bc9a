"""The provider's bill: Costs API pages and CSV read into charges, and the bill against the log by hand.

No real OpenAI Costs API output is public (../shared/realdata/formats/README.md found only the Usage API
sample, whose bucket shape is the same); the pages here are built from the documented shape of
`GET /v1/organization/costs`: `{object: "page", data: [{object: "bucket", start_time, end_time, results:
[{object: "organization.costs.result", amount: {value, currency}, line_item, project_id}]}], has_more,
next_page}`, with line items as OpenAI writes them (`gpt-4o-2024-08-06, input`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.alerting.spend import bill_gap, bill_gap_breaches
from chatpulse.config import DEFAULT_SOURCES
from chatpulse.ingest.provider_bill import COST_COLUMNS, BillError, model_of, read_bills
from chatpulse.metrics.pricing import estimate_cost, load_prices, prices_on
from chatpulse.metrics.reconcile import RECONCILIATION_COLUMNS, cost_reconciliation, provider_requests
from chatpulse.sample.bill import GAP_LINE_ITEM, GAP_PROJECT, GAP_SHARE
from chatpulse.sample.generate import write_sample
from chatpulse.schema import Kind
from chatpulse.spendconfig import Dimension, ProviderBill

from fixtures import METRIC_DAY as DAY
from fixtures import clean_every_day
from fixtures import clean_requests as requests

COSTS = ProviderBill(format="openai_costs", pattern="costs*.json", project_dimension="project")
CSV = ProviderBill(format="csv", pattern="bill*.csv", provider="acme")
PROJECT = Dimension(name="project")


def unix(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def result(value: object, currency: str = "usd", line_item: str | None = None, project: str | None = None) -> dict:
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": currency},
        "line_item": line_item,
        "project_id": project,
    }


def page(buckets: dict[str, list[dict]], next_page: str | None = None) -> dict:
    data = [{"object": "bucket", "start_time": unix(d), "end_time": unix(d) + 86_400, "results": r}
            for d, r in buckets.items()]  # fmt: skip
    return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}


def write(path: Path, document: object, mtime: int | None = None) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path


def test_a_costs_api_page_becomes_one_charge_per_result() -> None:
    assert model_of("gpt-4o-2024-08-06, input") == "gpt-4o-2024-08-06"
    assert model_of("Image models") == "Image models" and model_of(None) is None


def test_pages_lists_of_pages_and_page_lines_are_read(tmp_path: Path) -> None:
    first = page({"2026-11-19": [result(1.25, line_item="gpt-4o-2024-08-06, input", project="proj_a")]}, "page_2")
    second = page({"2026-11-20": [result("0.5", line_item="gpt-4o-2024-08-06, output", project="proj_a"),
                                  result(0.06)]})  # fmt: skip
    write(tmp_path / "costs-1.json", first)
    write(tmp_path / "costs-2.json", [second])  # a saved list of pages
    write(tmp_path / "costs-3.json", json.dumps(page({"2026-11-21": [result(2)]})) + "\n\n")  # a page per line
    bills = read_bills(tmp_path, [COSTS])
    costs = bills.costs.sort_values(["day", "source_line"]).reset_index(drop=True)
    assert list(bills.costs.columns) == list(COST_COLUMNS)
    assert costs[["day", "project", "line_item", "model", "amount", "currency", "amount_usd"]].values.tolist() == [
        ["2026-11-19", "proj_a", "gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06", 1.25, "USD", 1.25],
        ["2026-11-20", "proj_a", "gpt-4o-2024-08-06, output", "gpt-4o-2024-08-06", 0.5, "USD", 0.5],
        ["2026-11-20", None, None, None, 0.06, "USD", 0.06],
        ["2026-11-21", None, None, None, 2.0, "USD", 2.0],
    ]
    assert costs["source_file"].tolist() == ["costs-1.json", "costs-2.json", "costs-2.json", "costs-3.json"]
    assert costs["source_line"].tolist() == [1, 1, 2, 1] and set(costs["provider"]) == {"openai"}
    assert bills.quarantine.empty and bills.duplicates == {}


def test_bad_results_are_quarantined_with_their_position_and_the_rest_is_read(tmp_path: Path) -> None:
    bad = page({"2026-11-20": [result(1.0), result("lots"), {"object": "organization.costs.result"}, result(2, "")]})
    bad["data"].append({"object": "bucket", "start_time": "yesterday", "results": [result(5.0)]})
    bad["data"].append({"object": "bucket", "start_time": unix("2026-11-21"), "end_time": unix("2026-11-21") + 3600,
                        "results": [result(5.0)]})  # fmt: skip
    write(tmp_path / "costs.json", bad)
    bills = read_bills(tmp_path, [COSTS])
    assert bills.costs["amount"].tolist() == [1.0]
    quarantine = bills.quarantine
    assert set(quarantine["kind"]) == {"bills"} and set(quarantine["day"]) == {"2026-11-20"}  # the file's day
    reasons = dict(zip(quarantine["source_line"], (json.loads(r)[0] for r in quarantine["reasons"]), strict=True))
    assert reasons == {
        2: "amount.value: expected a number, got 'lots'",
        3: "amount: expected an object with value and currency",
        4: "amount.currency: missing",
        5: "start_time: expected Unix seconds, got 'yesterday'",
        6: f"end_time: expected start_time + 86400 (one day), got {unix('2026-11-21') + 3600}",
    }
    assert json.loads(quarantine.iloc[0]["raw"])["amount"]["value"] == "lots"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"object": "list", "items": []}', "page 1: not a Costs API page"),
        (json.dumps({"object": "page", "data": [{"start_time": None, "results": [result(1)]}]}), "no line has a"),
    ],
)
def test_a_file_that_cannot_be_read_names_itself(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "costs.json", text)
    with pytest.raises(BillError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        read_bills(tmp_path, [COSTS])


def test_the_newest_file_holding_a_day_is_its_bill(tmp_path: Path) -> None:
    week = page({"2026-11-19": [result(1.0)], "2026-11-20": [result(2.0)]})
    again = page({"2026-11-20": [result(2.5, line_item="gpt-4o, input")], "2026-11-21": [result(3.0)]})
    write(tmp_path / "costs-b.json", week, mtime=1_000_000_000)
    write(tmp_path / "costs-a.json", again, mtime=2_000_000_000)  # newer, though its name sorts first
    bills = read_bills(tmp_path, [COSTS])
    by_day = bills.costs.groupby("day")["amount"].sum().to_dict()
    assert by_day == {"2026-11-19": 1.0, "2026-11-20": 2.5, "2026-11-21": 3.0}
    assert bills.duplicates == {"2026-11-20": 1}
    assert bills.day("2026-11-20").duplicates == {"2026-11-20": 1} and bills.day("2026-11-19").duplicates == {}


def test_a_csv_bill_with_its_faults(tmp_path: Path) -> None:
    (tmp_path / "bill-nov.csv").write_text(
        "Day,Project,Line item,Amount,Currency\n"
        "2026-11-20,proj_a,gpt-4o,1.50,usd\n"
        "2026-11-20,,embeddings,0.25,USD\n"
        "\n"
        "2026-11-20,proj_a,gpt-4o,2.00,EUR\n"
        "2026-11-32,proj_a,gpt-4o,1.00,USD\n"
        "2026-11-21,proj_a,gpt-4o,cheap,USD\n"
        "2026-11-21,proj_a,gpt-4o,1.00\n"
        "2026-11-21,proj_a,gpt-4o,1.00,\n"
        "2026-11-21,proj_a,gpt-4o,1.00,US Dollar\n",
        encoding="utf-8",
    )
    bills = read_bills(tmp_path, [CSV])
    assert bills.costs[["day", "project", "model", "amount", "currency", "source_line"]].values.tolist() == [
        ["2026-11-20", "proj_a", "gpt-4o", 1.5, "USD", 2],
        ["2026-11-20", None, "embeddings", 0.25, "USD", 3],
        ["2026-11-20", "proj_a", "gpt-4o", 2.0, "EUR", 5],
    ]
    assert bills.costs["amount_usd"].isna().tolist() == [False, False, True]  # EUR is never converted
    reasons = dict(zip(bills.quarantine["source_line"], bills.quarantine["reasons"], strict=True))
    assert reasons == {
        6: "[\"day: expected YYYY-MM-DD, got '2026-11-32'\"]",
        7: "[\"amount: expected a number, got 'cheap'\"]",
        8: '["expected 5 fields, got 4"]',
        9: '["currency: missing"]',
        10: "[\"currency: expected an ISO 4217 code such as usd, got 'US Dollar'\"]",
    }
    # Line 6 has no day: it goes under its file's busiest day, 2026-11-21 (4 lines) over 2026-11-20 (3).
    assert bills.quarantine.set_index("source_line").loc[6, "day"] == "2026-11-21"
    (tmp_path / "bill-bad.csv").write_text("date,cost\n2026-11-20,1\n", encoding="utf-8")
    with pytest.raises(BillError, match=r"bill-bad\.csv:1: the header lacks day, amount, currency"):
        read_bills(tmp_path, [CSV])


def at(time: str, **fields: object) -> dict:
    return {"timestamp": f"2026-11-20T{time}Z", "status_code": 200, **fields}


def bill_lines(*lines: tuple[str, str | None, str | None, float, str]) -> pd.DataFrame:
    """provider_costs rows of DAY: (provider, project, line item, amount, currency)."""
    frame = pd.DataFrame(lines, columns=["provider", "project", "line_item", "amount", "currency"])
    return frame.assign(
        day=DAY.isoformat(),
        model=[model_of(item) for item in frame["line_item"]],
        amount_usd=frame["amount"].where(frame["currency"] == "USD"),
    )


def test_reconciliation_by_hand() -> None:
    rates = prices_on(load_prices(), DAY)
    log = requests(
        at("01:00:00", model="gpt-4o", prompt_tokens=1000, completion_tokens=100, cost_usd=1.0,
           metadata='{"project": "proj_a"}'),
        at("02:00:00", model="gpt-4o", prompt_tokens=2000, completion_tokens=100, cost_usd=2.0,
           metadata='{"project": "proj_b"}'),
        at("03:00:00", model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=1000,
           metadata='{"project": "proj_b"}'),
        at("04:00:00", model="claude-x", prompt_tokens=10, cost_usd=0.5),
    )  # fmt: skip
    bill = bill_lines(
        ("openai", "proj_a", "gpt-4o, input", 0.8, "USD"),
        ("openai", "proj_a", "gpt-4o, output", 0.4, "USD"),
        ("openai", "proj_b", "gpt-4o, input", 2.0, "USD"),
        ("openai", "proj_c", "dall-e-3, image", 1.0, "USD"),
        ("openai", "proj_b", "gpt-4o-mini, input", 3.0, "EUR"),
    )
    table = cost_reconciliation(log, DAY, "UTC", rates, bill, [COSTS], [PROJECT])
    assert list(table.columns) == list(RECONCILIATION_COLUMNS)
    estimate = estimate_cost(log, rates)  # NaN for claude-x, which the price table lacks
    # The whole day: billed 0.8 + 0.4 + 2.0 + 1.0 (the EUR line left out); logged 1 + 2 + 0.5.
    overall = table[table["scope"] == "all"].iloc[0]
    billed, logged = 4.2, 3.5
    assert overall["billed_usd"] == pytest.approx(billed) and overall["logged_usd"] == pytest.approx(logged)
    assert overall["estimated_usd"] == pytest.approx(np.nansum(estimate))
    assert overall["logged_gap_usd"] == pytest.approx(logged - billed)
    assert overall["logged_gap_share"] == pytest.approx((logged - billed) / billed)
    assert overall["estimated_gap_share"] == pytest.approx((np.nansum(estimate) - billed) / billed)
    assert (overall["requests"], overall["logged_requests"], overall["unpriced_requests"]) == (4, 3, 1)
    assert (overall["bill_lines"], overall["non_usd_lines"], overall["non_usd_currencies"]) == (5, 1, "EUR")
    projects = table[table["scope"] == "project"].set_index("value")
    assert projects["billed_usd"].to_dict() == pytest.approx(
        {None: 0.0, "proj_a": 1.2, "proj_b": 2.0, "proj_c": 1.0}, nan_ok=True
    )
    assert projects["logged_usd"].to_dict() == pytest.approx({None: 0.5, "proj_a": 1.0, "proj_b": 2.0, "proj_c": 0.0})
    assert projects.loc["proj_c", "logged_gap_share"] == -1.0 and np.isnan(projects.loc[None, "logged_gap_share"])
    assert projects.loc["proj_b", "estimated_usd"] == pytest.approx(estimate[1] + estimate[2])
    models = table[table["scope"] == "model"].set_index("value")
    assert models["billed_usd"].to_dict() == pytest.approx(
        {"claude-x": 0.0, "dall-e-3": 1.0, "gpt-4o": 3.2, "gpt-4o-mini": 0.0}
    )
    assert models.loc["gpt-4o", "logged_gap_usd"] == pytest.approx(3.0 - 3.2)
    assert models.loc["gpt-4o-mini", "logged_usd"] == 0.0  # the day logged costs: a model without any logged $0
    # A model nothing prices has an unknown estimate, never $0; a billed model the log never used, $0.
    assert np.isnan(models.loc["claude-x", "estimated_usd"]) and models.loc["dall-e-3", "estimated_usd"] == 0.0
    assert models.loc["gpt-4o-mini", "non_usd_lines"] == 1


def test_a_log_and_a_bill_that_name_one_model_apart_meet_on_one_row() -> None:
    """The bill's line items name snapshots (`gpt-4o-2024-08-06, input`) where the log says `gpt-4o`, and the
    other way round: each was billed $0 on one row and logged $0 on another."""
    rates = prices_on(load_prices(), DAY)
    log = requests(
        at("01:00:00", model="gpt-4o", prompt_tokens=1000, cost_usd=0.5),
        at("02:00:00", model="o3-mini-2025-01-31", prompt_tokens=1000, cost_usd=0.25),
        at("03:00:00", model="acme-7b", prompt_tokens=1000, cost_usd=0.125),
    )
    bill = bill_lines(
        ("openai", None, "gpt-4o-2024-08-06, input", 0.5, "USD"),
        ("openai", None, "o3-mini, input", 0.25, "USD"),
        ("openai", None, "acme-7b, input", 0.125, "USD"),
    )
    models = cost_reconciliation(log, DAY, "UTC", rates, bill, [], []).query("scope == 'model'")
    assert models[["value", "billed_usd", "logged_usd", "requests"]].values.tolist() == [
        ["acme-7b", 0.125, 0.125, 1],  # nothing prices it: met by its own name
        ["gpt-4o", 0.5, 0.5, 1],
        ["o3-mini", 0.25, 0.25, 1],
    ]


def test_the_bill_gap_holds_the_cost_the_log_knows_whole_against_the_bill() -> None:
    """Two of three requests logged their cost: their sum against the bill read as a 40% gap that was not there."""
    rates = prices_on(load_prices(), DAY)
    log = requests(
        at("01:00:00", model="gpt-4o", prompt_tokens=1000, completion_tokens=100),
        at("02:00:00", model="gpt-4o", prompt_tokens=2000, completion_tokens=100),
        at("03:00:00", model="gpt-4o", prompt_tokens=3000, completion_tokens=100),
    )
    estimate = estimate_cost(log, rates)  # $2.50 / $10 per million in and out (OpenAI's gpt-4o prices)
    assert estimate.tolist() == pytest.approx([0.0035, 0.006, 0.0085])
    log["cost_usd"] = [estimate[0], estimate[1], np.nan]
    bill = bill_lines(("openai", None, None, float(estimate.sum()), "USD"))
    row = next(cost_reconciliation(log, DAY, "UTC", rates, bill, [], []).itertuples())
    assert row.logged_gap_share == pytest.approx(-0.0085 / 0.018)  # what the alert held against the bill
    assert bill_gap(row) == ("estimated", pytest.approx(0.0, abs=1e-12))
    assert bill_gap_breaches(pd.DataFrame([row._asdict()]), 0.05, DAY, "UTC", datetime(2026, 12, 1, tzinfo=UTC)).empty
    whole = next(cost_reconciliation(log.assign(cost_usd=0.01), DAY, "UTC", rates, bill, [], []).itertuples())
    assert bill_gap(whole) == ("logged", pytest.approx((0.03 - 0.018) / 0.018))  # every request logged: that cost


def test_a_bill_covers_its_providers_requests_and_a_day_without_bill_has_no_rows() -> None:
    rates = prices_on(load_prices(), DAY)
    log = requests(at("01:00:00", cost_usd=1.0), at("02:00:00", cost_usd=2.0), at("03:00:00", cost_usd=4.0))
    log["provider"] = ["OpenAI", "anthropic", None]
    assert provider_requests(log, "openai")["cost_usd"].tolist() == [1.0]
    assert len(provider_requests(log.assign(provider=None), "openai")) == 3  # no provider said: the bill covers all
    bill = bill_lines(("openai", None, None, 1.5, "USD"), ("anthropic", None, None, 2.0, "USD"))
    table = cost_reconciliation(log, DAY, "UTC", rates, bill, [], [])
    assert table[["provider", "scope", "billed_usd", "logged_usd"]].values.tolist() == [
        ["anthropic", "all", 2.0, 2.0],
        ["openai", "all", 1.5, 1.0],
    ]
    assert cost_reconciliation(log, DAY, "UTC", rates, bill.iloc[0:0], [], []).empty
    unlogged = cost_reconciliation(log.assign(cost_usd=np.nan), DAY, "UTC", rates, bill, [], [])
    assert unlogged["logged_usd"].isna().all() and unlogged["logged_gap_share"].isna().all()


def test_the_sample_bill_is_the_logged_cost_plus_the_known_gap(tmp_path: Path) -> None:
    days = [date(2026, 11, 23), date(2026, 11, 24)]
    write_sample(tmp_path, days, requests_per_day=400)
    bill = json.loads(next(tmp_path.glob("bills/openai-costs-*.json")).read_text())
    assert bill["object"] == "page" and not bill["has_more"]
    # OpenAI's logged cost per UTC day and project, read straight from the landing files (the valid lines).
    lines = []
    for d in days:
        with gzip.open(tmp_path / f"requests-{d}.jsonl.gz", "rt") as file:
            lines += [json.loads(line) for line in file if line.startswith("{") and line.rstrip().endswith("}")]
    clean = clean_every_day(tmp_path, DEFAULT_SOURCES, Kind.REQUESTS)
    valid = {rid for outcome in clean.values() for rid in outcome.clean["request_id"]}
    logged = pd.DataFrame(
        [(r["request_id"], r["timestamp"][:10], r["metadata"]["project"], r["cost_usd"]) for r in lines
         if r["request_id"] in valid and r["provider"] == "openai"],
        columns=["request_id", "day", "project", "cost"],
    ).drop_duplicates("request_id")  # fmt: skip
    billed = pd.DataFrame(
        [(datetime.fromtimestamp(b["start_time"], UTC).date().isoformat(), r["project_id"], r["line_item"],
          r["amount"]["value"]) for b in bill["data"] for r in b["results"]],
        columns=["day", "project", "line_item", "amount"],
    )  # fmt: skip
    gap = billed[billed["project"] == GAP_PROJECT]
    assert set(gap["line_item"]) == {GAP_LINE_ITEM}
    per_day = logged.groupby("day")["cost"].sum()
    assert gap.set_index("day")["amount"].to_dict() == {d: round(GAP_SHARE * v, 6) for d, v in per_day.items()}
    rest = billed[billed["project"] != GAP_PROJECT].groupby(["day", "project"])["amount"].sum()
    assert rest.to_dict() == pytest.approx(logged.groupby(["day", "project"])["cost"].sum().to_dict(), abs=1e-9)
    # Read back, the bill of each day differs from the log by exactly the gap charge.
    bills = read_bills(tmp_path, [ProviderBill(format="openai_costs", pattern="bills/openai-costs-*.json",
                                               project_dimension="project")])  # fmt: skip
    for d in days:
        table = cost_reconciliation(
            clean[d.isoformat()].clean, d, "UTC", prices_on(load_prices(), d), bills.day(d.isoformat()).costs,
            [ProviderBill(format="openai_costs", pattern="x", project_dimension="project")], [PROJECT],
        )  # fmt: skip
        overall = table[table["scope"] == "all"].iloc[0]
        assert overall["logged_gap_usd"] == pytest.approx(-gap.set_index("day").loc[d.isoformat(), "amount"], abs=1e-9)
        evals = table[(table["scope"] == "project") & (table["value"] == GAP_PROJECT)].iloc[0]
        assert (evals["logged_usd"], evals["logged_gap_share"]) == (0.0, -1.0)
