"""The report's per-model and top-user tables: the warehouse's numbers, checked against the raw requests."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pandas as pd

from chatpulse.formatting import DASH, format_int, format_ms, format_pct, format_usd
from chatpulse.metrics.costs import daily_users, model_costs
from chatpulse.metrics.pricing import load_prices, prices_on
from chatpulse.metrics.traffic import request_metrics
from chatpulse.reports.sections import detail_sections
from chatpulse.reports.usage import MODEL_ROWS, USER_ROWS

from fixtures import METRIC_DAY as DAY
from fixtures import clean_requests

MIDNIGHT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
MODELS = ["gpt-4o", "gpt-4o-mini", "house-model-7b", None]  # the third has no price, the last no model
USERS = [f"user{n:02d}@example.com" for n in range(15)] + [None]


def _rows(seed: int = 3, n: int = 600) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        latency = rng.choice([None, rng.randrange(50, 40_000) / 1.0])
        rows.append(
            {
                "request_id": f"r{i}",
                "timestamp": (MIDNIGHT + dt.timedelta(seconds=rng.randrange(86_400))).isoformat(),
                "model": rng.choice(MODELS),
                "user_id": rng.choice(USERS),
                "status_code": rng.choice([200] * 9 + [429, 500]),
                "latency_ms": latency,
                "ttft_ms": None if latency is None else round(latency * rng.random(), 1),
                "prompt_tokens": (prompt := rng.randrange(1, 2000)),
                "completion_tokens": (completion := rng.randrange(1, 800)),
                "total_tokens": prompt + completion,
                "cost_usd": rng.choice([None, rng.randrange(1, 500) / 10_000]),
            }
        )
    return rows


def _tables(rows: list[dict]) -> dict[str, pd.DataFrame]:
    frame = clean_requests(*rows)
    rates = prices_on(load_prices(), DAY)
    return {
        "request_metrics": request_metrics(frame, DAY, "UTC"),
        "model_costs": model_costs(frame, DAY, "UTC", rates),
        "daily_users": daily_users(frame, DAY, "UTC", rates),
    }


def _section(tables: dict[str, pd.DataFrame], title: str):  # noqa: ANN202
    return {section.title: section for section in detail_sections(tables)}[title]


def test_the_model_table_is_each_models_requests_latency_errors_and_tokens() -> None:
    rows = _rows()
    section = _section(_tables(rows), "Models")
    raw = pd.DataFrame(rows)
    raw["key"] = raw["model"].fillna(DASH)
    expected = []
    for model, group in raw.groupby("key"):
        latency, ttft = group["latency_ms"].dropna(), group["ttft_ms"].dropna()
        expected.append(
            {
                "model": model,
                "requests": format_int(len(group)),
                "latency_p50_ms": format_ms(np.percentile(latency, 50)),
                "latency_p95_ms": format_ms(np.percentile(latency, 95)),
                "ttft_p50_ms": format_ms(np.percentile(ttft, 50)),
                "error_rate": format_pct((group["status_code"] >= 400).mean()),
                "total_tokens": format_int(group["total_tokens"].sum()),
                "cost_logged_usd": format_usd(group["cost_usd"].sum()) if group["cost_usd"].notna().any() else DASH,
                "_requests": len(group),
            }
        )
    expected.sort(key=lambda row: (-row["_requests"], row["model"] == DASH, row["model"]))
    shown = [{key: row[key] for key in expected[0] if key != "_requests"} for row in section.rows]
    assert shown == [{key: value for key, value in row.items() if key != "_requests"} for row in expected]
    by_model = {row["model"]: row for row in section.rows}
    assert by_model["house-model-7b"]["cost_estimate_usd"] == DASH  # no price: unknown, not $0
    assert by_model["gpt-4o"]["cost_estimate_usd"].startswith("$")
    unpriced = int(raw["model"].isin(["house-model-7b"]).sum() + raw["model"].isna().sum())
    assert section.note == f"{format_int(unpriced)} requests of models without a price are not in the estimated cost."


def test_a_day_with_many_models_lists_the_busiest_and_counts_the_rest() -> None:
    rows = [
        {"request_id": f"r{n}-{i}", "timestamp": f"2026-11-20T10:{i:02d}:00Z", "model": f"model-{n:02d}",
         "status_code": 200, "latency_ms": 100.0, "total_tokens": 10, "prompt_tokens": 5, "completion_tokens": 5}
        for n in range(MODEL_ROWS + 3) for i in range(n + 1)
    ]  # fmt: skip
    tables = _tables(rows)
    section = _section(tables, "Models")
    assert [row["model"] for row in section.rows] == [f"model-{n:02d}" for n in range(MODEL_ROWS + 2, 2, -1)]
    assert section.note.startswith(f"The {MODEL_ROWS} busiest of {MODEL_ROWS + 3} models; the other 3 made 6 requests.")


def test_the_models_note_counts_one_request_as_one() -> None:
    """ "1 requests were served without token counts" on a new user's day."""
    rows = [
        {"request_id": "a", "timestamp": "2026-11-20T10:00:00Z", "model": "gpt-4o", "status_code": 200},
        {"request_id": "b", "timestamp": "2026-11-20T10:01:00Z", "model": "house-model-7b", "status_code": 200,
         "prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    ]  # fmt: skip
    assert _section(_tables(rows), "Models").note == (
        "1 request of models without a price is not in the estimated cost. 1 request was served without token "
        "counts (unmetered): its cost is unknown and not in the estimated cost."
    )


def test_the_user_table_is_the_top_users_by_requests() -> None:
    rows = _rows(seed=11)
    section = _section(_tables(rows), "Users")
    raw = pd.DataFrame(rows).dropna(subset=["user_id"])
    per_user = raw.groupby("user_id").agg(
        requests=("request_id", "size"),
        errors=("status_code", lambda codes: int((codes >= 400).sum())),
        tokens=("total_tokens", "sum"),
    )
    ranked = per_user.reset_index().sort_values(["requests", "tokens", "user_id"], ascending=[False, False, True])
    top = ranked.head(USER_ROWS)
    assert [(row["user_id"], row["requests"], row["errors"], row["total_tokens"]) for row in section.rows] == [
        (user, format_int(requests), format_int(errors), format_int(tokens))
        for user, requests, errors, tokens in top[["user_id", "requests", "errors", "tokens"]].itertuples(index=False)
    ]
    share = top["requests"].sum() / per_user["requests"].sum()
    assert section.note == (
        f"The top {USER_ROWS} of {len(per_user)} users made {format_pct(share)} of the requests that carry a user id."
    )


def test_a_day_without_request_tables_says_so() -> None:
    sections = {section.title: section for section in detail_sections({})}
    assert sections["Models"].rows == [] and sections["Models"].empty == "No requests on this day."
    assert sections["Users"].rows == [] and sections["Users"].empty == "No requests with a user id on this day."
    slowest = sections["Slowest requests"]  # said as well of a day whose requests logged no latency
    assert slowest.rows == [] and slowest.empty == "No request with a logged latency on this day."
