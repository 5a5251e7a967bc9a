"""The sample traffic's OpenAI bill: Costs API pages as a user would save them, with one known gap.

OpenAI bills what the log recorded for its requests (the log's `provider` is `openai`; the other
providers' requests are on their own bills, which the sample does not write), per UTC day, project and
line item (`<model>, input` and `<model>, output`, as OpenAI names its line items), plus one charge the
log never saw: a project (`GAP_PROJECT`) whose evaluation notebooks call the API directly, billed
GAP_SHARE of the day's logged OpenAI spend. So the demo's reconciliation shows a gap of exactly that
line, on every day.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from chatpulse.sample.rows import Rows
from chatpulse.sample.traffic import MODELS, PRICE_CACHED, PRICE_IN, PRICE_WRITE

GAP_PROJECT = "proj_evals"
GAP_LINE_ITEM = "gpt-4o, input"
GAP_SHARE = 0.06
PROVIDER = "openai"
DAY_SECONDS = 86_400

Charges = dict[tuple[str, str, str], float]  # (UTC day, project, line item) -> USD


def add_charges(charges: Charges, requests: Rows) -> None:
    """Add a simulated day's logged OpenAI cost to `charges`, split into each model's input and output line.

    A request's input line is its prompt at the input, cache read and cache write rates; its output line is
    the rest of its logged cost, so the two add up to exactly what the log recorded.
    """
    billed = requests.columns["provider"] == PROVIDER
    columns = {name: values[billed] for name, values in requests.columns.items()}
    index = {name: n for n, name in enumerate(MODELS)}
    model = np.array([index[name] for name in columns["model"]], dtype=np.int64)
    prompt, cached, written = columns["prompt_tokens"], columns["cached_tokens"], columns["cache_write_tokens"]
    logged = columns["cost_usd"].astype("float64")
    inputs = (
        (prompt - cached - written) * PRICE_IN[model] + cached * PRICE_CACHED[model] + written * PRICE_WRITE[model]
    ) / 1e6
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(columns["timestamp"], unit="ms", utc=True).strftime("%Y-%m-%d"),
            "project": [metadata["project"] for metadata in columns["metadata"]],
            "model": columns["model"],
            "input": np.where(logged > 0, inputs, 0.0),
            "output": logged - np.where(logged > 0, inputs, 0.0),
        }
    )
    sums = frame.groupby(["day", "project", "model"])[["input", "output"]].sum()
    for (day, project, name), row in sums.iterrows():
        for kind in ("input", "output"):
            if row[kind] > 0:
                key = (day, project, f"{name}, {kind}")
                charges[key] = charges.get(key, 0.0) + row[kind]


def gap_charges(charges: Mapping[tuple[str, str, str], float]) -> Charges:
    """The unlogged project's charge of each day: GAP_SHARE of the day's logged spend (to a millionth of a dollar,
    as the Costs API writes amounts)."""
    per_day: dict[str, float] = defaultdict(float)
    for (day, _, _), amount in charges.items():
        per_day[day] += amount
    return {(day, GAP_PROJECT, GAP_LINE_ITEM): round(GAP_SHARE * total, 6) for day, total in per_day.items()}


def costs_page(charges: Mapping[tuple[str, str, str], float]) -> dict[str, object]:
    """One Costs API page (`GET /v1/organization/costs?group_by=project_id&group_by=line_item`) of `charges`:
    a one-day bucket per UTC day, a result per project and line item."""
    buckets: dict[str, list[dict[str, object]]] = defaultdict(list)
    for (day, project, line_item), amount in sorted(charges.items()):
        buckets[day].append(
            {
                "object": "organization.costs.result",
                "amount": {"value": amount, "currency": "usd"},
                "line_item": line_item,
                "project_id": project,
            }
        )
    data = []
    for day, results in sorted(buckets.items()):
        start = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        data.append({"object": "bucket", "start_time": start, "end_time": start + DAY_SECONDS, "results": results})
    return {"object": "page", "data": data, "has_more": False, "next_page": None}


def write_costs(path: Path, charges: Mapping[tuple[str, str, str], float]) -> Path:
    """Write the Costs API page of `charges` plus each day's gap charge to `path` (JSON, one page)."""
    page = costs_page({**charges, **gap_charges(charges)})
    path.write_text(json.dumps(page, indent=1) + "\n", encoding="utf-8")
    return path
