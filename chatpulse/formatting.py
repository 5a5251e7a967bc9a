"""Numbers as people read them on the report pages and in the e-mail: "1,234", "2.5%", "1.8 s", "$12.35".

Every formatter takes whatever a warehouse cell holds (int, float, numpy scalar, None, NaN, NA) and
returns DASH for a number the day doesn't have, so the templates only lay out strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

DASH = "—"  # shown for a number the day doesn't have (e.g. latency with no requests)


def missing(value: Any) -> bool:
    """True for None/NaN/NA, which pandas uses interchangeably for absent numbers."""
    return value is None or bool(pd.isna(value))


def plural(number: int, noun: str) -> str:
    """A count and its noun: '3 files', '1 file', '1,204 ratings'."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def format_int(value: Any) -> str:
    """Whole number with thousands separators: 1234 -> "1,234"."""
    return DASH if missing(value) else f"{round(float(value)):,}"


def format_decimal(value: Any) -> str:
    """A mean with one decimal: 3.14 -> "3.1"."""
    return DASH if missing(value) else f"{float(value):,.1f}"


def format_pct(rate: Any) -> str:
    """A 0-1 fraction as a percentage with one decimal: 0.025 -> "2.5%"; what rounds to zero reads "0.0%",
    never "-0.0%"."""
    if missing(rate):
        return DASH
    percent = round(float(rate) * 100, 1)
    return f"{percent + 0.0:.1f}%"  # adding 0.0 turns -0.0 into 0.0


def format_ms(ms: Any) -> str:
    """Latency in ms below a second, else seconds: 420 -> "420 ms", 1834 -> "1.8 s".

    The one unit style of every latency on the pages, in the e-mail and on the charts' legends; 999.7 ms,
    which would round to "1,000 ms", already reads "1.0 s".
    """
    if missing(ms):
        return DASH
    ms = float(ms)
    return f"{ms:,.0f} ms" if round(ms) < 1000 else f"{ms / 1000:,.1f} s"


def format_ms_tick(ms: float) -> str:
    """A latency axis tick in the style of format_ms, without a needless ".0": 500 -> "500 ms", 2000 -> "2 s",
    1500 -> "1.5 s", 0.5 -> "0.5 ms"."""
    if round(ms) < 1000:
        return f"{ms:,.1f}".removesuffix(".0") + " ms"
    return f"{ms / 1000:,.1f}".removesuffix(".0") + " s"


def format_duration(seconds: Any) -> str:
    """Session length in the largest sensible unit: "45 s", "3.5 min", "1.2 h"."""
    if missing(seconds):
        return DASH
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:,.1f} h"


def format_usd(amount: Any) -> str:
    """Dollars with cents: 1234.5 -> "$1,234.50"; an amount under a cent with two significant digits,
    0.0051393 -> "$0.0051", since a small team's day of LLM calls often costs less than a cent and "$0.00"
    or "$0.01" would misstate it; a negative amount (a difference) -> "-$0.40"."""
    if missing(amount):
        return DASH
    amount = float(amount)
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    # Rounded half up from its 12 significant digits, so one amount logged as text and the same amount
    # computed (0.000225 and 0.00022499999999999999) read alike: "$0.00023" both.
    exact = Decimal(f"{size:.12g}")
    places = 1 - math.floor(math.log10(size)) if 0 < size < 0.01 else 2
    rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{sign}${rounded:,.{places}f}"


def format_metric(metric: str) -> Callable[[Any], str]:
    """The formatter of a metric by its name, as the warehouse names them: ``*_ms`` latency, ``*_rate``,
    ``*_share`` and ``satisfaction`` percentages, ``*_usd`` and ``cost_per_day`` dollars, anything else a count."""
    if metric.endswith("_ms"):
        return format_ms
    if metric.endswith(("_rate", "_share")) or metric == "satisfaction":
        return format_pct
    if metric.endswith("_usd") or metric == "cost_per_day":
        return format_usd
    return format_int


def format_clock(iso: Any) -> str:
    """Time of day from an ISO timestamp: "2026-11-20T14:32:00+00:00" -> "14:32 UTC"."""
    if missing(iso):
        return DASH
    return pd.Timestamp(iso).strftime("%H:%M %Z").strip()


def format_change(now: Any, then: Any, points: bool) -> str | None:
    """'+12%' (relative) or '+0.4 pp' (a rate's difference); None when it cannot be said."""
    if missing(now) or missing(then):
        return None
    if points:
        return f"{(float(now) - float(then)) * 100:+.1f} pp"
    if float(then) == 0:
        return None
    return f"{(float(now) - float(then)) / float(then):+.0%}"
