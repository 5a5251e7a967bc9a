"""Read a source's time values as UTC instants, or say why a value cannot be one.

Every value ends as an instant or as a reason; nothing here raises for a value, so one odd
time quarantines its row, never a file or a run. Columns are parsed whole by pandas; only
the values that fast path rejects are looked at again (offsets pandas does not read, DST
gaps and folds), so a day of a million rows costs one vectorised pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from chatpulse.config import SourceConfig

# Nanoseconds per unit of each epoch format; seconds_since counts seconds from its origin.
NS_PER_UNIT = {"epoch_s": 10**9, "epoch_ms": 10**6, "epoch_us": 10**3, "epoch_ns": 1, "seconds_since": 10**9}
# What a nanosecond timestamp holds (1677-09-21 to 2262-04-11), a day in from each end, so
# that turning a local time into UTC by any offset cannot step outside.
FIRST = pd.Timestamp("1677-09-22", tz="UTC")
LAST = pd.Timestamp("2262-04-10", tz="UTC")
OUTSIDE = "outside what a timestamp holds (1677-09-22 to 2262-04-10)"
UNRECOGNISED = "unrecognised time format"
# A time of day followed by a zone: Z, z, +08, +0800, +08:00, UTC or GMT (a date alone is never zoned,
# so 2026-11-20 is not read as 2026-11 at -20:00).
ZONED = r"[Tt ]\d\d(?::?\d\d)?(?::?\d\d)?(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?|UTC|GMT|utc|gmt)$"
# Spellings pandas' ISO 8601 parser refuses, rewritten as ones it reads.
SPELLINGS = (
    (r"\s*(?:[Zz]|UTC|GMT|utc|gmt)$", "+00:00"),
    (r"\s+([+-]\d\d(?::?\d\d)?)$", r"\1"),
    (r"(\d)t(\d)", r"\1T\2"),
    (r"(:\d\d),(\d)", r"\1.\2"),
)
# Plausible epoch seconds (2000-2100), to tell a user which unit an out-of-range number looks like.
PLAUSIBLE_SECONDS = (946_684_800, 4_102_444_800)


@dataclass(frozen=True)
class Times:
    """Parsed times: `utc` (datetime64[ns, UTC], NaT where missing or unreadable) and, on the same index,
    `problems` (object: None, or why the value is not a time, without the column name)."""

    utc: pd.Series
    problems: pd.Series


def parse_timestamps(values: pd.Series, source: SourceConfig) -> Times:
    """Parse one column of a source's time values into UTC, as its `timestamp` settings say.

    ISO 8601 text may carry an offset (Z, z, +08, +0800, +08:00, UTC) or none: a value without
    one is a wall-clock time in `timestamp.timezone`. A wall-clock time the zone skips (a DST
    gap) or repeats (a fold) is read with the offset in force just before the change, as Python's
    own datetime does (PEP 495, fold=0): 02:30 on a spring-forward night is 03:30 summer time, and
    01:30 on a fall-back night is its first occurrence. Epoch formats take seconds, milliseconds,
    microseconds or nanoseconds since 1970-01-01 UTC; `seconds_since` counts from `timestamp.origin`.
    A missing or blank value is NaT without a problem; a value outside FIRST..LAST (what a
    nanosecond timestamp holds, a day in from each end) is NaT with the problem OUTSIDE, any
    other unreadable value NaT with UNRECOGNISED or "not a number (...)".
    A column of date-times (as a database gives them) is read as they are, whatever the format:
    an aware one is an instant, a naive one a wall-clock time in `timestamp.timezone`. A value the
    format cannot read is tried with each format of `timestamp.fallback` in turn; one none of them
    reads keeps the format's own problem, saying which fallbacks did not read it either
    ("not a number (timestamp.format is epoch_s), nor iso (timestamp.fallback)").
    """
    values = values.reset_index(drop=True)
    if _holds_datetimes(values):
        return _parse_datetimes(values, source.naive_timezone)
    times = _parse(values, source.timestamp_format, source)
    tried = []
    for fmt in source.timestamp.fallback:
        retry = times.problems.notna()
        if fmt == "file_time" or not retry.any():
            continue
        tried.append(fmt)
        again = _parse(values[retry], fmt, source)
        read = again.utc.notna().to_numpy()
        rows = retry[retry].index[read]
        times.utc[rows] = again.utc[read].to_numpy()
        times.problems[rows] = None
    if tried:
        unread = times.problems.notna()
        times.problems[unread] = times.problems[unread] + f", nor {' nor '.join(tried)} (timestamp.fallback)"
    return times


def _parse(values: pd.Series, fmt: str, source: SourceConfig) -> Times:
    """Values in one format (see parse_timestamps), on their own index."""
    if fmt == "iso":
        return _parse_iso(values, source.naive_timezone)
    origin = None
    if fmt == "seconds_since":
        origin = _localized_origin(pd.Timestamp(source.timestamp_origin), source.naive_timezone)
    return _parse_numbers(values, fmt, origin)


def _blank_to_missing(values: pd.Series) -> pd.Series:
    text = values.astype("str").str.strip()
    return text.mask(text == "")


def _bounded(parsed: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parsed times at nanosecond resolution, NaT outside FIRST..LAST; and where they were outside."""
    outside = parsed.notna() & ((parsed < FIRST) | (parsed > LAST))
    return parsed.mask(outside).astype("datetime64[ns, UTC]"), outside


def _parse_iso(values: pd.Series, timezone: str) -> Times:
    text = _blank_to_missing(values)
    present = text.notna()
    utc, outside = _bounded(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    retry = present & utc.isna() & ~outside
    if retry.any():
        again = text[retry]
        for pattern, replacement in SPELLINGS:
            again = again.str.replace(pattern, replacement, regex=True)
        utc[retry], outside[retry] = _bounded(pd.to_datetime(again, format="ISO8601", utc=True, errors="coerce"))
    unread = present & utc.isna() & ~outside
    if unread.any():
        # A year pandas cannot read (0000, 10000, or one past nanoseconds in a column that has
        # nanosecond digits) is out of range, not a bad format.
        years = pd.to_numeric(text[unread].str.extract(r"^([+-]?\d{4,})-", expand=False), errors="coerce")
        outside[unread] = years.notna() & ~years.between(FIRST.year + 1, LAST.year - 1)
    if timezone != "UTC":
        naive = utc.notna() & ~text.str.contains(ZONED, regex=True).fillna(False).astype(bool)
        if naive.any():
            utc[naive], lost = _bounded(_localized(utc[naive].dt.tz_localize(None), timezone))
            outside[naive] = lost
    problems = pd.Series(np.full(len(values), None, dtype=object), index=values.index)
    problems[outside] = OUTSIDE
    problems[present & utc.isna() & ~outside] = UNRECOGNISED
    return Times(utc, problems)


def _holds_datetimes(values: pd.Series) -> bool:
    """A datetime64 column, or one of Python date-times (of several offsets, or aware and naive mixed)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "datetime"


def _parse_datetimes(values: pd.Series, timezone: str) -> Times:
    """Date-time values as UTC: aware ones converted, naive ones read as wall-clock times in `timezone`."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        utc = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        utc = _localized(values, timezone)
    else:
        aware = values.map(lambda value: value is not None and value.tzinfo is not None, na_action="ignore")
        aware = aware.fillna(False).astype(bool)
        naive = values.notna() & ~aware
        utc = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
        if aware.any():
            utc[aware] = pd.to_datetime(values[aware], utc=True).dt.as_unit("us")
        if naive.any():
            utc[naive] = _localized(pd.to_datetime(values[naive]).dt.as_unit("us"), timezone)
    utc, outside = _bounded(utc)
    problems = pd.Series(np.full(len(values), None, dtype=object), index=values.index)
    problems[outside] = OUTSIDE
    return Times(utc, problems)


def _localized(wall: pd.Series, timezone: str) -> pd.Series:
    """Naive wall-clock times in `timezone` as UTC; gap and fold times with the offset before the change."""
    utc = wall.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    odd = utc.isna() & wall.notna()
    if odd.any():
        # Rare (at most an hour or two a year), so Python's zoneinfo answers each distinct time once.
        zone = ZoneInfo(timezone)
        offsets = {
            moment: moment.to_pydatetime(warn=False).replace(tzinfo=zone).utcoffset() for moment in wall[odd].unique()
        }
        shifted = wall[odd] - pd.to_timedelta(wall[odd].map(offsets))
        utc[odd] = shifted.dt.tz_localize("UTC")
    return utc


def _localized_origin(origin: pd.Timestamp, timezone: str) -> pd.Timestamp:
    if origin.tzinfo is not None:
        return origin.tz_convert("UTC")
    wall = pd.Series([origin]).astype("datetime64[ns]")
    return _localized(wall, timezone).iloc[0]


def _parse_numbers(values: pd.Series, fmt: str, origin: pd.Timestamp | None) -> Times:
    """Epoch numbers (or seconds since `origin`) as UTC; whole numbers are converted exactly."""
    present = values.notna()
    readable = values.astype(object) if pd.api.types.is_bool_dtype(values) else values
    if pd.api.types.infer_dtype(readable, skipna=True) in ("boolean", "mixed", "mixed-integer"):
        # true/false is no time (to_numeric would read it as 1 and 0); JSON's line path alone mixes them in.
        readable = readable.mask(readable.map(lambda value: isinstance(value, bool)).astype(bool))
    unit = NS_PER_UNIT[fmt]
    numbers = pd.to_numeric(readable, errors="coerce")
    if unit < 10**6 and pd.api.types.is_float_dtype(numbers) and not pd.api.types.is_float_dtype(readable):
        # A float holds whole numbers exactly only up to 2**53: enough for seconds and milliseconds,
        # not for today's microseconds and nanoseconds, so those are read again as nullable integers.
        numbers = pd.to_numeric(readable, errors="coerce", dtype_backend="numpy_nullable")
    origin_ns = 0 if origin is None else origin.as_unit("ns").value
    floats = numbers.astype("float64").to_numpy(na_value=np.nan)
    unread = present & numbers.isna()
    if unread.any():  # blank text is a missing value, not a bad number
        present[unread] = _blank_to_missing(values[unread]).notna()
    with np.errstate(invalid="ignore", over="ignore"):
        offset_seconds = floats * (unit / 1e9)
        seconds = offset_seconds + origin_ns / 1e9
        # The offset alone must fit in 64-bit nanoseconds too, whatever the origin.
        inside = (seconds >= FIRST.value / 1e9) & (seconds <= LAST.value / 1e9) & (np.abs(offset_seconds) < 9e9)
    ns = np.zeros(len(floats), dtype="int64")
    if pd.api.types.is_integer_dtype(numbers):
        ns[inside] = numbers[inside].to_numpy(dtype="int64") * unit
    else:
        whole = np.floor(floats[inside])
        ns[inside] = whole.astype("int64") * unit + np.round((floats[inside] - whole) * unit).astype("int64")
    utc = pd.Series(pd.to_datetime(ns + origin_ns, unit="ns", utc=True), index=values.index).where(inside)
    problems = pd.Series(np.full(len(values), None, dtype=object), index=values.index)
    problems[present & np.isnan(floats)] = f"not a number (timestamp.format is {fmt})"
    outside = (present & ~np.isnan(floats) & ~inside).to_numpy()
    problems[outside] = _out_of_range(fmt, floats[outside])
    return Times(utc.astype("datetime64[ns, UTC]"), problems)


def _out_of_range(fmt: str, floats: np.ndarray) -> np.ndarray:
    """Why each number is no time in `fmt`, naming the epoch unit it looks like where one fits."""
    reasons = np.full(len(floats), f"{OUTSIDE} as {fmt}", dtype=object)
    for guess, unit in NS_PER_UNIT.items():
        if guess not in (fmt, "seconds_since"):
            seconds = floats * (unit / 1e9)
            fits = (seconds >= PLAUSIBLE_SECONDS[0]) & (seconds <= PLAUSIBLE_SECONDS[1])
            reasons[fits] = f"{OUTSIDE} as {fmt} (it looks like {guess})"
    return reasons
