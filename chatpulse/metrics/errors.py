"""Why requests failed: each failure's kind, the kinds per day, the failed and the slowest requests."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from chatpulse.days import DayGrid
from chatpulse.schema import is_error, text_or_empty, withheld
from chatpulse.tables import table_columns

ERROR_KINDS = (
    "rate_limit",
    "timeout",
    "server",
    "content_filter",
    "context_length",
    "authentication",
    "invalid_request",
    "client",
    "other",
)
ERROR_KIND_COLUMNS = table_columns("error_kinds")
FAILED_COLUMNS = table_columns("failed_requests")
SLOWEST_COUNT = 20
SLOWEST_COLUMNS = table_columns("slowest_requests")

# What providers and their SDKs send, as word sequences (see _words), kind by kind in the order they
# are tried. OpenAI (error.type / error.code, Python SDK exception names), Azure OpenAI (code content_filter,
# innererror.code ResponsibleAIPolicyViolation), Anthropic (error.type; stop_reason refusal), Gemini and
# Vertex AI (error.status, finishReason / blockReason), LiteLLM (its exception names).
PROVIDER_WORDS: dict[str, tuple[str, ...]] = {
    "content_filter": (
        "content filter",
        "content policy violation",
        "responsible ai policy violation",
        "safety",
        "prohibited content",
        "blocklist",
        "recitation",
        "spii",
        "refusal",
    ),
    "context_length": (
        "context length exceeded",
        "context window exceeded",
        "maximum context length",
        "prompt is too long",
        "string above max length",
    ),
    "rate_limit": ("rate limit", "ratelimit", "too many requests", "resource exhausted", "insufficient quota"),
    "timeout": ("timeout", "timed out", "deadline exceeded"),
    "authentication": (
        "authentication",
        "invalid api key",
        "api key invalid",
        "unauthenticated",
        "unauthorized",
        "permission denied",
        "permission error",
    ),
    "invalid_request": ("invalid request", "invalid argument", "bad request"),
    "server": ("server error", "internal", "api error", "overloaded", "service unavailable", "unavailable"),
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> str:
    """Text as lower-case words between spaces: camelCase, snake_case and punctuation split
    ("APITimeoutError" -> " api timeout error ", "gemini_generate_content" -> " gemini generate content ")."""
    return f" {_NOT_WORD.sub(' ', _CAMEL.sub(' ', text).lower()).strip()} "


def _says(texts: pd.Series) -> dict[str, np.ndarray]:
    """Per kind of PROVIDER_WORDS, whether each text names it in whole words ("content" inside a
    method name is no content filter). Each distinct text is read once."""
    codes, distinct = pd.factorize(texts)
    words = [_words(text) for text in distinct]
    return {
        kind: np.array([any(f" {p} " in w for p in phrases) for w in words], dtype=bool)[codes]
        for kind, phrases in PROVIDER_WORDS.items()
    }


def error_kind(requests: pd.DataFrame) -> pd.Series:
    """The kind of each failed request (None when it did not fail, schema.is_error), first match wins.

    The status decides first: 429 rate_limit; 408 and 504 timeout; other 5xx (Anthropic's 529
    included) server. Then what the provider named in error_code and error_type, in whole words
    (PROVIDER_WORDS: content_filter, context_length, rate_limit, timeout, authentication,
    invalid_request, server). Then a finish_reason saying a content filter withheld the answer
    (schema.withheld): content_filter. Then the status again: 401 and 403 authentication, 400
    invalid_request, other 4xx client. Else other.
    """
    failed = is_error(requests).to_numpy(dtype=bool)
    rows = requests[failed]
    status = rows["status_code"].to_numpy(dtype="float64", na_value=0.0)
    named = pd.Series("", index=rows.index)
    for column in ("error_code", "error_type"):
        if column in rows:
            named = named + " " + text_or_empty(rows[column])
    says = _says(named)
    conditions = [
        (status == 429, "rate_limit"),
        (np.isin(status, (408, 504)), "timeout"),
        (status >= 500, "server"),
        *((says[kind], kind) for kind in PROVIDER_WORDS),
        (withheld(rows).to_numpy(dtype=bool), "content_filter"),
        (np.isin(status, (401, 403)), "authentication"),
        (status == 400, "invalid_request"),
        (status >= 400, "client"),
    ]
    kinds = np.select([c for c, _ in conditions], [k for _, k in conditions], "other")
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
    """The count slowest requests of day by latency (ties: earlier first), ranked from 1; requests without a
    latency are left out, so a log without latencies has none."""
    rows = DayGrid.of(day, tz).select(requests, "timestamp")
    # A request without a latency is never among the slowest: nlargest fills with NaN rows when too few have one.
    rows = rows[rows["latency_ms"].notna().to_numpy()]
    candidates = rows.nlargest(count, "latency_ms", keep="all")
    top = candidates.sort_values(["latency_ms", "timestamp"], ascending=[False, True], kind="stable").head(count)
    out = top.assign(day=day.isoformat(), rank=np.arange(1, len(top) + 1, dtype="int64"))
    return out[list(SLOWEST_COLUMNS)].reset_index(drop=True)
