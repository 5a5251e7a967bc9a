"""Token counts: each provider's convention, the one canonical convention stored, and what contradicts it.

Canonical (docs/metrics.md, "Token convention"): `prompt_tokens` counts every input token, cache reads
and cache writes included; `cached_tokens` (cache reads) and `cache_write_tokens` are parts of it;
`completion_tokens` includes `reasoning_tokens`; `total_tokens = prompt_tokens + completion_tokens`.
A source declares how its counts are meant (`token_convention`) and extract converts them with
`to_canonical`; what still contradicts the canonical convention afterwards is named by `contradictions`
(flagged, never capped or "repaired"). Sources of the conventions: OpenAI's usage object (prompt includes
cached, completion includes reasoning), Anthropic's Messages usage (input_tokens excludes
cache_read_input_tokens and cache_creation_input_tokens), Gemini's usageMetadata (candidatesTokenCount
excludes thoughtsTokenCount, totalTokenCount includes it, cachedContentTokenCount is inside
promptTokenCount); see ../shared/realdata/formats/README.md for recorded examples.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from chatpulse.schema import is_error

Convention = Literal["openai", "anthropic", "gemini"]
CONVENTIONS: tuple[str, ...] = ("openai", "anthropic", "gemini")
# Every token count of a request; a served request with none of them above 0 is unmetered.
TOKEN_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
UNMETERED = "unmetered: served without token counts"  # or with a total alone


def _count(frame: pd.DataFrame, column: str) -> pd.Series:
    """A token column as nullable integers (all missing when the frame lacks it)."""
    if column not in frame:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return frame[column].astype("Int64")


def to_canonical(frame: pd.DataFrame, convention: Convention) -> None:
    """Convert a frame's token counts, written in `convention`, to the canonical convention (in place).

    openai: already canonical. anthropic: prompt_tokens holds input_tokens, which excludes cache reads
    and writes, so prompt = input + cached + cache_write (where input is known); a logged total equal
    to input + output (the two counts Anthropic sends, summed by a logging tool) becomes
    prompt + completion, and a missing total is prompt + completion (Anthropic sends none, so it is
    no repair). gemini: completion_tokens holds candidatesTokenCount, which excludes the
    thoughts in reasoning_tokens, so completion = candidates + thoughts (where either is known; Gemini
    leaves out a count that is 0). Counts that stay missing are left for clean to recover.
    """
    if convention == "anthropic":
        raw_input, output = _count(frame, "prompt_tokens"), _count(frame, "completion_tokens")
        prompt = raw_input + _count(frame, "cached_tokens").fillna(0) + _count(frame, "cache_write_tokens").fillna(0)
        frame["prompt_tokens"] = prompt
        total = _count(frame, "total_tokens")
        summed = (total == raw_input + output).fillna(False).astype(bool)
        frame["total_tokens"] = total.mask(summed | total.isna(), prompt + output)
    elif convention == "gemini":
        candidates, thoughts = _count(frame, "completion_tokens"), _count(frame, "reasoning_tokens")
        known = candidates.notna() | thoughts.notna()
        frame["completion_tokens"] = (candidates.fillna(0) + thoughts.fillna(0)).where(known)


def contradictions(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Rows whose canonical counts contradict the canonical convention: reason -> bool Series.

    Judged only where both sides are known: cache reads above the prompt; cache reads and writes
    together above it; reasoning above the completion; a total other than prompt + completion.
    Such counts usually mean the source's token_convention is not the one its provider uses.
    """
    prompt, completion = _count(frame, "prompt_tokens"), _count(frame, "completion_tokens")
    cached, written = _count(frame, "cached_tokens"), _count(frame, "cache_write_tokens")
    checks = {
        "cached_tokens: more than prompt_tokens": cached > prompt,
        "cache_write_tokens: cache reads and writes more than prompt_tokens": (
            (cached.fillna(0) + written > prompt) & ~(cached > prompt).fillna(False)
        ),
        "reasoning_tokens: more than completion_tokens": _count(frame, "reasoning_tokens") > completion,
        "total_tokens: not prompt_tokens + completion_tokens": _count(frame, "total_tokens") != prompt + completion,
    }
    return {reason: mask.fillna(False).astype(bool) for reason, mask in checks.items()}


def contradicted(frame: pd.DataFrame) -> pd.Series:
    """Whether any of a row's counts contradicts the canonical convention (see contradictions)."""
    found = pd.Series(False, index=frame.index)
    for mask in contradictions(frame).values():
        found |= mask
    return found


def unmetered(requests: pd.DataFrame) -> pd.Series:
    """Served requests (not failed, schema.is_error) that report no usage a price applies to: every token
    count missing or 0, or a total alone (neither a prompt nor a completion count).

    An OpenAI stream without `stream_options.include_usage` logs no usage block; some proxies log
    0/0 for a served answer. Such a request used tokens nobody counted: its cost is unknown, not $0.
    A total alone (a log that keeps only `total_tokens`, or a field renamed by an SDK upgrade) does
    not say how much was input and how much output, which are priced apart: unknown too.
    """
    total = _count(requests, "total_tokens").fillna(0) > 0
    split = _count(requests, "prompt_tokens").notna() | _count(requests, "completion_tokens").notna()
    return (_uncounted(requests) | (total & ~split)).astype(bool) & ~is_error(requests)


def unbilled(requests: pd.DataFrame) -> pd.Series:
    """Failed requests (schema.is_error) that report no usage: every token count missing or 0.

    A rejected request (a 4xx, an Azure content-filter block of the prompt) reports no tokens because
    it used none; its log often names no model either (pricing.unpriced).
    """
    return _uncounted(requests) & is_error(requests)


def _uncounted(requests: pd.DataFrame) -> pd.Series:
    """Rows whose every token count is missing or 0."""
    counted = pd.Series(False, index=requests.index)
    for column in TOKEN_COUNTS:
        counted |= (_count(requests, column).fillna(0) > 0).astype(bool)
    return ~counted
