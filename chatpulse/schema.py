"""The canonical schema every source is mapped onto.

One place names the columns and their kinds, so extract, clean, the warehouse
and the metrics agree on what a request, a message and a feedback row are.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np
import pandas as pd


class Kind(StrEnum):
    """The three record kinds a landing folder holds."""

    REQUESTS = "requests"
    MESSAGES = "messages"
    FEEDBACK = "feedback"


# Column name -> value kind ("string", "datetime", "int", "float", "json").
REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "string",
    "timestamp": "datetime",
    "user_id": "string",
    "session_id": "string",
    "provider": "string",
    "model": "string",
    "endpoint": "string",
    "status_code": "int",
    "error_type": "string",
    "error_code": "string",
    "finish_reason": "string",
    "latency_ms": "float",
    "ttft_ms": "float",
    "prompt_tokens": "int",
    "completion_tokens": "int",
    "total_tokens": "int",
    "cached_tokens": "int",
    "cache_write_tokens": "int",
    "reasoning_tokens": "int",
    "cost_usd": "float",
    "metadata": "json",
    # The rates the provider billed at, as the log says: OpenAI's `service_tier` (default, flex, priority),
    # `batch` for Batch API output (the openai_batch_output preset); missing means the standard rates.
    "service_tier": "string",
}

MESSAGE_COLUMNS: dict[str, str] = {
    "message_id": "string",
    "session_id": "string",
    "user_id": "string",
    "timestamp": "datetime",
    "role": "string",
    "content": "string",
}

FEEDBACK_COLUMNS: dict[str, str] = {
    "feedback_id": "string",
    "session_id": "string",
    "message_id": "string",
    "user_id": "string",
    "timestamp": "datetime",
    "rating": "float",
    "comment": "string",
}

COLUMNS: dict[Kind, dict[str, str]] = {
    Kind.REQUESTS: REQUEST_COLUMNS,
    Kind.MESSAGES: MESSAGE_COLUMNS,
    Kind.FEEDBACK: FEEDBACK_COLUMNS,
}

# Text columns whose blank value is a value (an empty message); in every other text column blank text is none.
FREE_TEXT = frozenset(("content", "comment"))

# The identifier a kind is deduplicated on; derived from the row when absent.
ID_COLUMN: dict[Kind, str] = {
    Kind.REQUESTS: "request_id",
    Kind.MESSAGES: "message_id",
    Kind.FEEDBACK: "feedback_id",
}

# Lineage columns carried from extract to the clean tables and the quarantine.
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"
# Set by clean on every request: served without token counts (chatpulse.tokens.unmetered), cost unknown.
UNMETERED_COLUMN = "unmetered"

MESSAGE_ROLES = ("user", "assistant", "system", "tool")


# The columns is_error reads: a step that loads only some request columns loads these.
OUTCOME_COLUMNS = ("status_code", "error_type", "error_code", "finish_reason")
# Finish (stop, block) reasons saying a content filter withheld the answer, lower case: OpenAI and Azure
# `content_filter`, Anthropic `refusal`, Gemini's finishReason and promptFeedback.blockReason values.
WITHHELD = frozenset(
    ("content_filter", "refusal", "safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety")
)


def text_or_empty(values: pd.Series) -> pd.Series:
    """A column's values as text, "" where missing (whatever its dtype: an all-missing column reads as floats)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(str).where(values.notna(), "")
    return values.fillna("").astype(str)


def _text_test(values: pd.Series, test: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`test` of text_or_empty(values), for a test false on "": applied to the present values only.

    Most requests name no error and no finish reason, so filling a million missing values with "" and
    testing them all cost several times what testing the few present ones does.
    """
    present = values.notna().to_numpy(dtype=bool)
    found = np.zeros(len(values), dtype=bool)
    found[present] = test(text_or_empty(values[present])).to_numpy(dtype=bool)
    return pd.Series(found, index=values.index, name=values.name)


def withheld(requests: pd.DataFrame) -> pd.Series:
    """Whether a content filter withheld each request's answer, as its `finish_reason` says (WITHHELD)."""
    if "finish_reason" not in requests:
        return pd.Series(False, index=requests.index)
    return _text_test(requests["finish_reason"], lambda text: text.str.strip().str.lower().isin(WITHHELD))


def is_error(requests: pd.DataFrame) -> pd.Series:
    """A request failed when its status is 400 or above, it names an error type or code, or a content
    filter withheld its answer (a 200 with finish_reason content_filter, SAFETY, ...: withheld).

    The single definition used by every metric, chart and check. A frame without error_code or
    finish_reason (built by hand, or an older warehouse's) is judged on the columns it has.
    """
    status_failed = requests["status_code"].fillna(0).astype("int64") >= 400
    named = pd.Series(False, index=requests.index)
    for column in ("error_type", "error_code"):
        if column in requests:
            named |= _text_test(requests[column], lambda text: text.str.len() > 0)
    return status_failed | named | withheld(requests)
