"""The canonical schema every source is mapped onto.

One place names the columns and their kinds, so extract, clean, the warehouse
and the metrics agree on what a request, a message and a feedback row are.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals


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

# Text columns whose values repeat (labels, who, the file a row came from, a request's metadata), held as
# pandas categoricals from extract on: a code per row and each distinct text once. The benchmark's 2M-request
# frame as handed off takes 376 MB instead of 766 (docs/benchmarks.md), and no column more than as text. Frames
# put together (stacked) get sorted categories, the same whichever way their rows came.
CODED = frozenset(
    (
        "user_id",
        "provider",
        "model",
        "endpoint",
        "error_type",
        "error_code",
        "finish_reason",
        "service_tier",
        "metadata",
        "role",
        SOURCE_FILE,
    )
)


def coded(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its CODED text columns made categoricals (in place; the frame itself is returned)."""
    for name in CODED.intersection(frame.columns):
        column = frame[name]
        if not isinstance(column.dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(column):
            frame[name] = column.astype("category")
    return frame


def by_category(texts: pd.Series, change: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`change` (text to text, index kept) of a categorical's texts, applied once to each distinct text (its
    categories), the rows keeping their codes; categories `change` makes alike (or missing) merge."""
    changed = change(pd.Series(texts.cat.categories))
    merged, distinct = pd.factorize(changed, sort=True)
    codes = np.append(merged, -1)[texts.cat.codes.to_numpy()]  # code -1 (missing) takes the last
    return pd.Series(pd.Categorical.from_codes(codes, categories=distinct), index=texts.index, name=texts.name)


def stacked_column(parts: list[pd.Series]) -> pd.Series:
    """One column of frames stacked (pd.concat, ignore_index): categoricals stay one of every part's values,
    where pd.concat gives plain objects for categoricals of different categories."""
    if len(parts) > 1 and all(isinstance(part.dtype, pd.CategoricalDtype) for part in parts):
        try:
            return pd.Series(union_categoricals(parts, sort_categories=True, ignore_order=True), name=parts[0].name)
        except TypeError:  # categories of different dtypes (an all-missing part's): joined as objects, coded again
            return pd.concat([part.astype(object) for part in parts], ignore_index=True).astype("category")
    return pd.concat(parts, ignore_index=True)


def stacked(frames: list[pd.DataFrame], *, consume: bool = False) -> pd.DataFrame:
    """The frames one after the other (pd.concat, ignore_index), their CODED columns coded (stacked_column);
    codes the frames' own CODED columns first (in place). With `consume`, frames sharing their columns are
    joined a column at a time, each column deleted from them once joined: the frames and their join are never
    both whole."""
    frames = [coded(frame) for frame in frames]
    if len(frames) < 2 or any(list(frame.columns) != list(frames[0].columns) for frame in frames):
        return coded(pd.concat(frames, ignore_index=True))
    columns = {}
    for name in list(frames[0].columns):
        columns[name] = stacked_column([frame[name] for frame in frames])
        if consume:
            for frame in frames:
                del frame[name]
    return pd.DataFrame(columns, copy=False)


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
    if isinstance(values.dtype, pd.CategoricalDtype):  # "" may be no category: fill the values, not the codes
        values = values.astype(values.dtype.categories.dtype)
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
