"""The canonical schema every source is mapped onto.

One place names the columns and their kinds, so extract, clean, the warehouse
and the metrics agree on what a request, a message and a feedback row are.
"""

from __future__ import annotations

from enum import StrEnum

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
    "model": "string",
    "endpoint": "string",
    "status_code": "int",
    "error_type": "string",
    "latency_ms": "float",
    "ttft_ms": "float",
    "prompt_tokens": "int",
    "completion_tokens": "int",
    "total_tokens": "int",
    "cached_tokens": "int",
    "reasoning_tokens": "int",
    "cost_usd": "float",
    "metadata": "json",
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

# The identifier a kind is deduplicated on; derived from the row when absent.
ID_COLUMN: dict[Kind, str] = {
    Kind.REQUESTS: "request_id",
    Kind.MESSAGES: "message_id",
    Kind.FEEDBACK: "feedback_id",
}

# Lineage columns carried from extract to the clean tables and the quarantine.
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"

MESSAGE_ROLES = ("user", "assistant", "system", "tool")


def is_error(requests: pd.DataFrame) -> pd.Series:
    """A request failed when its status is 400 or above, or it names an error type.

    The single definition used by every metric, chart and check.
    """
    status_failed = requests["status_code"].fillna(0).astype("int64") >= 400
    typed_failed = requests["error_type"].fillna("").astype(str).str.len() > 0
    return status_failed | typed_failed
