"""Labels from the logs, shown as untrusted text: model names, endpoints, user, session and request ids, error types.

A label arrives with any length and any characters. The warehouse keeps it whole; the pages, the e-mail
and the charts show it cut to a fixed maximum with an ellipsis in the middle (the start names a model's
family, the end the version or date that tells two apart), with control characters as visible marks, and
a label of any size costs the same: only its two ends are ever looked at. The charts draw them literally
(their style turns matplotlib's mathtext off, so ``gpt-$\\alpha$`` is not a formula) and the templates
escape them.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from chatpulse.formatting import DASH, missing

LABEL_MAX = 48  # a table cell: long enough for "anthropic.claude-3-5-sonnet-20240620-v1:0" or a UUID
CHART_LABEL_MAX = 24  # beside a bar of a chart drawn for a phone's width
# A data-quality reason, written by ChatPulse around configured names: "total_tokens: not prompt_tokens +
# completion_tokens" (51) was cut in the middle at LABEL_MAX; a long configured path still is.
REASON_MAX = 96
ELLIPSIS = "…"
_HEAD_SHARE = 0.6  # of the kept width, the start's share; the rest goes to the end
# Invisible characters that reorder the text around them, so a label could show as another one.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(char: str) -> str:
    """The character as shown: whitespace controls (tab, newline) as a space; other controls, lone surrogates
    (which UTF-8 cannot encode) and bidi overrides as U+FFFD; everything else as it is. One for one, so the
    positions of a label's ends do not move."""
    if char in _BIDI_CONTROLS:
        return "\ufffd"
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp"):
        return " " if char.isspace() else "\ufffd"
    return "\ufffd" if category == "Cs" else char


def _width(char: str) -> int:
    """Columns a character takes: 2 for East Asian wide and full-width ones, which are drawn twice as wide."""
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _take(chars: str, budget: int) -> str:
    """The longest start of ``chars`` whose width fits ``budget``."""
    used = 0
    for count, char in enumerate(chars):
        used += _width(char)
        if used > budget:
            return chars[:count]
    return chars


def inline_label(value: Any) -> str:
    """display_label for a label inside running text: wrapped in Unicode's first-strong isolate (U+2068 ...
    U+2069), so a right-to-left label keeps its own direction and does not reorder the text around it (an
    Arabic scenario name beside its share read "50.0 <label>%")."""
    return f"\u2068{display_label(value)}\u2069"


def display_label(value: Any, limit: int = LABEL_MAX) -> str:
    """A label from the logs as the report shows it: at most ``limit`` columns (a CJK character counts two),
    cut in the middle with "…" when longer; control characters visible; DASH for a missing value.

    Reads at most ``limit`` characters from each end of ``value``, so a 200,000-character model name
    costs what a short one does. ``limit`` must be at least 3. Non-text values are shown by ``str()``.
    """
    if missing(value):
        return DASH
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit and sum(_width(char) for char in text) <= limit:
        return "".join(map(_visible, text)).strip() or DASH
    kept = limit - 1  # the ellipsis takes one column
    head = _take(text[:limit], round(kept * _HEAD_SHARE))
    tail = _take(text[-limit:][::-1], kept - sum(_width(char) for char in head))[::-1]
    shown = "".join(map(_visible, head)).rstrip() + ELLIPSIS + "".join(map(_visible, tail)).lstrip()
    return shown.strip()
