"""Why requests failed: each failure's kind, the kinds per day, the failed and the slowest requests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from chatpulse.days import DayGrid
from chatpulse.schema import is_error
from chatpulse.tables import table_columns

ERROR_KINDS = ("rate_limit", "timeout", "server", "client", "content_filter", "other")
ERROR_KIND_COLUMNS = table_columns("error_kinds")
FAILED_COLUMNS = table_columns("failed_requests")
SLOWEST_COUNT = 20
SLOWEST_COLUMNS = table_columns("slowest_requests")


def error_kind(requests: pd.DataFrame) -> pd.Series:
    """The kind of each failed request (None when it did not fail), first match wins:

    content_filter (error_type mentions "content"), rate_limit (429 or "rate"),
    timeout (408, 504 or "timeout"/"timed out"), server (5xx), client (other 4xx), else other.
    """
    failed = is_error(requests).to_numpy(dtype=bool)
    status = requests["status_code"].to_numpy(dtype="float64", na_value=0.0)[failed]
    text = requests["error_type"][failed].fillna("").astype("str").str.lower()
    has = {
        word: text.str.contains(pattern, regex=True).to_numpy(dtype=bool)
        for word, pattern in (("content", "content"), ("rate", "rate"), ("timeout", r"timeout|timed out"))
    }
    kinds = np.select(
        [
            has["content"],
            (status == 429) | has["rate"],
            np.isin(status, (408, 504)) | has["timeout"],
            status >= 500,
            status >= 400,
        ],
        ["content_filter", "rate_limit", "timeout", "server", "client"],
        "other",
    )
    kind = np.full(len(requests), None, dtype=object)
    kind[failed] = kinds
    return pd.Series(kind, index=requests.index, name="error_kind", dtype=object)


def error_kinds(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """Errors of day per kind, every kind of ERROR_KINDS (0 when none); columns ERROR_KIND_COLUMNS."""
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    counts = error_kind(rows).value_counts().reindex(list(ERROR_KINDS), fill_value=0).to_numpy(dtype="int64")
    total, count = int(counts.sum()), len(rows)
    return pd.DataFrame(
        {
            "day": day.isoformat(),
            "error_kind": list(ERROR_KINDS),
            "errors": counts,
            "share_of_errors": counts / total if total else np.nan,
            "share_of_requests": counts / count if count else np.nan,
        }
    )[list(ERROR_KIND_COLUMNS)]


def failed_requests(requests: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """Every failed request of day in time order: ids, model, user, status, kind, latency (no content)."""
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    failed = rows[is_error(rows)]
    out = failed.assign(day=day.isoformat(), error_kind=error_kind(failed))
    return out.sort_values(["timestamp", "request_id"], kind="stable")[list(FAILED_COLUMNS)].reset_index(drop=True)


def slowest_requests(requests: pd.DataFrame, day: dt.date, tz: str, count: int = SLOWEST_COUNT) -> pd.DataFrame:
    """The count slowest requests of day by latency (ties: earlier first), ranked from 1."""
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    candidates = rows.nlargest(count, "latency_ms", keep="all")  # NaN latencies are never picked
    top = candidates.sort_values(["latency_ms", "timestamp"], ascending=[False, True], kind="stable").head(count)
    out = top.assign(day=day.isoformat(), rank=np.arange(1, len(top) + 1, dtype="int64"))
    return out[list(SLOWEST_COLUMNS)].reset_index(drop=True)
