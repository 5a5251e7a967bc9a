"""Who used what on a day: one row per model and the top users, from tables the metrics assets already write.

A model's requests, latency percentiles, first-token p50 and error rate come from ``request_metrics``
(its ``model`` rows); its tokens and costs from ``model_costs``; a user's requests, errors, tokens and
costs from ``daily_users``. Nothing is recomputed from requests here: the report shows the warehouse's
numbers. The frames returned hold raw values (the full model name, the user id): the section's columns
format and shorten them for display.
"""

from __future__ import annotations

import pandas as pd

from chatpulse.formatting import format_int, format_pct, plural

MODEL_ROWS = 12  # a day with more models lists the busiest; the note counts the rest
USER_ROWS = 10
_TRAFFIC = ("requests", "error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms")
_COSTS = ("total_tokens", "cost_estimate_usd", "cost_logged_usd", "unpriced_requests", "unmetered_requests")


def _columns(table: pd.DataFrame | None, columns: tuple[str, ...]) -> pd.DataFrame:
    """``table``'s ``model`` and ``columns``, with an all-missing column for each one it lacks (or no rows)."""
    table = pd.DataFrame(columns=["model"]) if table is None else table
    return pd.DataFrame({name: table.get(name, pd.NA) for name in ("model", *columns)})


def model_rows(request_metrics: pd.DataFrame | None, model_costs: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """One row per model of the day, busiest first (ties by name), at most MODEL_ROWS, and a note.

    ``request_metrics`` is the day's ``request_metrics`` table (only its ``dimension == "model"`` rows are read,
    their ``value`` being the model); ``model_costs`` the day's ``model_costs``. Either may be missing: its
    columns are then blank. Columns: model, requests, error_rate, latency_p50_ms, latency_p95_ms, ttft_p50_ms,
    total_tokens, cost_estimate_usd, cost_logged_usd, unpriced_requests, unmetered_requests. Requests without a
    model are one row with model None. The note says how many models and requests are left out, and how many
    requests no price covers and how many are unmetered (the estimated cost leaves both out).
    """
    traffic = None
    if request_metrics is not None:
        traffic = request_metrics[request_metrics["dimension"] == "model"].rename(columns={"value": "model"})
    costs = _columns(model_costs, ("requests", *_COSTS)).rename(columns={"requests": "logged_requests"})
    # Missing models are None in both tables; merge matches missing keys with each other.
    rows = _columns(traffic, _TRAFFIC).merge(costs, on="model", how="outer")
    rows["requests"] = rows["requests"].fillna(rows.pop("logged_requests"))
    rows = rows.sort_values(["requests", "model"], ascending=[False, True], na_position="last", kind="stable")
    shown = rows.head(MODEL_ROWS)
    notes = []
    if len(rows) > len(shown):
        rest = rows.iloc[len(shown) :]
        notes.append(
            f"The {len(shown)} busiest of {len(rows)} models; the other {len(rest)} made "
            f"{plural(int(rest['requests'].sum()), 'request')}."
        )
    unpriced = pd.to_numeric(rows["unpriced_requests"], errors="coerce").sum()
    if unpriced > 0:
        verb = "is" if unpriced == 1 else "are"
        notes.append(f"{plural(int(unpriced), 'request')} of models without a price {verb} not in the estimated cost.")
    unmetered = pd.to_numeric(rows["unmetered_requests"], errors="coerce").sum()
    if unmetered > 0:
        verb, its = ("was", "its") if unmetered == 1 else ("were", "their")
        notes.append(
            f"{plural(int(unmetered), 'request')} {verb} served without token counts (unmetered): {its} cost is "
            "unknown and not in the estimated cost."
        )
    return shown.reset_index(drop=True), " ".join(notes)


def user_rows(daily_users: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """The day's top users by ``rank`` (most requests first), at most USER_ROWS, and a note with their share.

    ``daily_users`` is the day's ``daily_users`` table (one row per user id with requests, errors,
    total_tokens, cost_estimate_usd, cost_logged_usd); requests without a user id are not in it, and the note's
    share is of the requests that have one. None (and no note) for a day without such rows.
    """
    if daily_users is None or daily_users.empty:
        return None, ""
    top = daily_users.sort_values("rank", kind="stable").head(USER_ROWS)
    share = top["requests"].sum() / daily_users["requests"].sum()
    if len(top) == len(daily_users):
        note = f"All {len(top)} users with a user id."
    else:
        note = (
            f"The top {len(top)} of {format_int(len(daily_users))} users made {format_pct(share)} "
            "of the requests that carry a user id."
        )
    return top.reset_index(drop=True), note
