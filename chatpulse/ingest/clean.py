"""Turn a partition's extracted rows into clean rows, quarantine and a quality record.

Every input row ends in exactly one place: clean, quarantined (with its reasons)
or counted as a duplicate. Recoverable values are repaired and counted first,
so a repairable row is never quarantined for what could be fixed. Values that are
kept but contradict a convention (token counts) are flagged and counted, never changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionArray

from chatpulse.days import DaySpan
from chatpulse.ingest.extract import DAY, ERRORS, RAW, REPAIRED, UNREADABLE, extract_repairs
from chatpulse.ingest.validate import Validation, validate
from chatpulse.schema import COLUMNS, ID_COLUMN, SOURCE_FILE, SOURCE_LINE, UNMETERED_COLUMN, Kind, by_category
from chatpulse.tokens import UNMETERED, contradictions, unmetered

OUTSIDE = "timestamp: outside the partition range"


@dataclass(frozen=True)
class Cleaned:
    """The outcome of cleaning one kind for one day."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    quality: dict[str, object]
    validation: Validation


def derive_ids(frame: pd.DataFrame, kind: Kind) -> pd.Series:
    """Fill missing identifiers from the row's canonical values and its occurrence in its file.

    The id is a 16-hex-digit hash of the values, not of where the row came from, so the same
    record read again (a rerun, another day's run reading the file, a copy in a second file) gets
    the same id and is deduplicated. The n-th identical id-less row of one file (n > 1) gets that
    hash + "-n": a trace without ids (BurstGPT, Mooncake) holds separate, identical calls. Occurrences
    are counted in line order within the frame, which holds all of them: identical rows share their
    timestamp, hence their day (an undated row, its file's home day).
    """
    id_column = ID_COLUMN[kind]
    # Kept in their type (Arrow-backed text), never as a million Python objects (at 1M requests: +266 MB).
    ids = frame[id_column]
    missing = ids.isna()
    if not missing.any():
        return ids
    content = [c for c in COLUMNS[kind] if c != id_column]
    rows = frame.loc[missing]
    hashes = pd.util.hash_pandas_object(rows[content], index=False)
    keys = pd.DataFrame({"file": rows[SOURCE_FILE], "line": rows[SOURCE_LINE], "hash": hashes})
    occurrence = keys.sort_values("line", kind="stable").groupby(["file", "hash"], sort=False).cumcount()
    occurrence = occurrence.reindex(rows.index)
    derived = hashes.map("{:016x}".format)
    derived = derived.where(occurrence == 0, derived + "-" + (occurrence + 1).astype(str))
    return ids.mask(missing, derived)


def _repair_tokens(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Recover a missing token count from the other two of prompt, completion and total.

    Only missing counts are filled: a logged total that is not prompt + completion is kept and flagged
    (_flag_tokens), since it may be the right number under another convention.
    """
    prompt, completion, total = frame["prompt_tokens"], frame["completion_tokens"], frame["total_tokens"]
    fixes = {
        "total_tokens": (prompt.notna() & completion.notna() & total.isna(), prompt + completion),
        "prompt_tokens": (
            prompt.isna() & completion.notna() & total.notna() & (total >= completion),
            total - completion,
        ),
        "completion_tokens": (completion.isna() & prompt.notna() & total.notna() & (total >= prompt), total - prompt),
    }
    repaired = {}
    for column, (mask, value) in fixes.items():
        mask = mask.fillna(False).astype(bool)
        if mask.any():
            frame[column] = frame[column].mask(mask, value)
            repaired[f"{column}: recomputed"] = mask
    return repaired


def _flag_tokens(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Flag counts that contradict the canonical token convention, and unmetered requests (in place:
    the `unmetered` column). Flagged rows stay clean and keep their numbers; data_quality counts them."""
    frame[UNMETERED_COLUMN] = unmetered(frame).to_numpy(dtype=bool)
    flags = contradictions(frame)
    flags[UNMETERED] = frame[UNMETERED_COLUMN]
    return {reason: mask for reason, mask in flags.items() if mask.any()}


def _repair_roles(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Normalise role spelling ('User ' -> 'user') before the role expectation runs.

    A categorical role (schema.CODED) is normalised in its few categories, not in every row."""
    role = frame["role"]
    coded = isinstance(role.dtype, pd.CategoricalDtype)
    if coded:
        categories = pd.Series(role.cat.categories)
        changed = (categories != _normal_role(categories)).to_numpy(dtype=bool)
        mask = pd.Series(np.append(changed, False)[role.cat.codes.to_numpy()], index=role.index)
    else:
        normalised = _normal_role(role)
        mask = (role.notna() & (role != normalised)).astype(bool)
    if not mask.any():
        return {}
    frame["role"] = by_category(role, _normal_role) if coded else normalised
    return {"role: normalised": mask}


def _normal_role(roles: pd.Series) -> pd.Series:
    return roles.str.strip().str.lower()


REPAIRS: dict[Kind, Callable[[pd.DataFrame], dict[str, pd.Series]]] = {
    Kind.REQUESTS: _repair_tokens,
    Kind.MESSAGES: _repair_roles,
    Kind.FEEDBACK: lambda frame: {},
}
# Values kept as they are but worth a look: reason -> rows, counted in data_quality.flags.
FLAGS: dict[Kind, Callable[[pd.DataFrame], dict[str, pd.Series]]] = {
    Kind.REQUESTS: _flag_tokens,
    Kind.MESSAGES: lambda frame: {},
    Kind.FEEDBACK: lambda frame: {},
}


def _reasons(frame: pd.DataFrame, validation: Validation) -> dict[int, list[str]]:
    """Reasons of each failing row, by position: extract problems first, then expectations, except on a
    line that held no record (its empty fields would only fail every not-null expectation again)."""
    problems = frame[ERRORS]
    reasons = {int(p): list(problems.iat[p]) for p in np.flatnonzero(problems.notna().to_numpy())}
    for position, failed in validation.row_reasons.items():
        found = reasons.setdefault(position, [])
        if not _unreadable(found):
            found.extend(failed)
    return reasons


def _unreadable(reasons: list[str]) -> bool:
    return any(reason.startswith(UNREADABLE) for reason in reasons)


def _raw_records(rejected: pd.DataFrame, kind: Kind) -> list[str]:
    """The original line where extract kept it, else the record as read, as JSON.

    A row that parsed but failed an expectation is shown by its canonical fields,
    which is what the expectation judged.
    """
    fields = rejected[list(COLUMNS[kind])]
    records = fields.astype(object).where(fields.notna(), None).to_dict("records")
    return [
        line if isinstance(line, str) else json.dumps({k: v for k, v in record.items() if v is not None}, default=str)
        for line, record in zip(rejected[RAW], records, strict=True)
    ]


def _quarantine(rejected: pd.DataFrame, reasons: list[list[str]], day: str | pd.Series, kind: Kind) -> pd.DataFrame:
    """The quarantine table's rows for rejected rows, each with its list of reasons."""
    return pd.DataFrame(
        {
            "day": day if isinstance(day, str) else day.to_numpy(),
            "kind": kind.value,
            SOURCE_FILE: rejected[SOURCE_FILE].to_numpy(),
            SOURCE_LINE: rejected[SOURCE_LINE].to_numpy(),
            "record_id": rejected[ID_COLUMN[kind]].to_numpy(),
            "reasons": [json.dumps(r) for r in reasons],
            "raw": _raw_records(rejected, kind),
        }
    )


def quarantine_outside(outside: pd.DataFrame, kind: Kind, span: DaySpan) -> pd.DataFrame:
    """Quarantine rows for the rows filed on a day that cannot be run (extract.Extract.outside).

    Each keeps that day as its `day` (not a partition, so no day's run replaces it) and, after any
    problem extract found, the reason "timestamp: outside the partition range (before start_date)"
    or "(after today)"; an undated row (filed on its file's home day) also "timestamp: missing", unless
    its line held no record.
    """
    frame = outside.reset_index(drop=True)
    frame[ID_COLUMN[kind]] = derive_ids(frame, kind)
    reasons = []
    for problems, stamp, day in zip(frame[ERRORS], frame["timestamp"], frame[DAY], strict=True):
        found = list(problems) if isinstance(problems, list | np.ndarray) else []
        if pd.isna(stamp) and not any(reason.startswith(("timestamp:", UNREADABLE)) for reason in found):
            found.append("timestamp: missing")
        found.append(f"{OUTSIDE} ({span.where(date.fromisoformat(day))})")
        reasons.append(found)
    return _quarantine(frame, reasons, frame[DAY], kind)


def _duplicates(frame: pd.DataFrame, id_column: str, candidates: np.ndarray) -> np.ndarray:
    """Candidate rows whose id an earlier row (by file, then line) already has.

    Only the two ordering columns are sorted, never the whole frame; the ids are sorted by Arrow (stable,
    so the earliest row of each id leads its run), since hashing them (pandas' duplicated, a factorize)
    keeps a table of every distinct id (5M message ids: +0.75 GB against +0.4 GB sorted).
    """
    duplicate = np.zeros(len(frame), dtype=bool)
    rows = np.flatnonzero(candidates)
    if len(rows) < 2:
        return duplicate
    files = pd.factorize(frame[SOURCE_FILE].iloc[rows], sort=True)[0]
    rows = rows[np.lexsort((frame[SOURCE_LINE].to_numpy()[rows], files))]
    ids = pa.array(frame[id_column].iloc[rows], pa.large_string(), from_pandas=True)
    order = pc.sort_indices(ids).to_numpy()
    ids = ids.take(pa.array(order))
    earlier, later = ids.slice(0, len(ids) - 1), ids.slice(1)
    both_missing = pc.and_(pc.is_null(earlier), pc.is_null(later))
    repeated = pc.fill_null(pc.equal(earlier, later), both_missing).to_numpy(zero_copy_only=False)
    duplicate[rows[order[1:][repeated]]] = True
    return duplicate


# Rows of Arrow-backed text taken at a time: Arrow grows one output buffer for a whole column's take, which
# at 4M requests' message content rose 0.35 GB beyond the column it made.
TAKE_ROWS = 1 << 20


def _take(column: pd.Series, rows: np.ndarray) -> ExtensionArray | np.ndarray:
    """`column`'s values at `rows` (positions). Arrow-backed text at ascending rows is taken chunk by chunk, at most
    TAKE_ROWS rows at a time, into a chunked array: Arrow's take on a chunked array first joins its chunks into
    one copy (4M messages' content: +0.37 GB, and five times the time)."""
    dtype = column.dtype
    ascending = len(rows) == 0 or bool(rows[0] >= 0 and (rows[1:] > rows[:-1]).all())
    if not (ascending and isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return column.take(rows).array
    values = column.array.__arrow_array__()
    bounds = np.cumsum([0, *(len(chunk) for chunk in values.chunks)])
    pieces = []
    for chunk, start, end in zip(values.chunks, bounds[:-1], bounds[1:], strict=True):
        first, last = np.searchsorted(rows, [start, end])
        for at in range(first, last, TAKE_ROWS):
            pieces.append(chunk.take(pa.array(rows[at : min(at + TAKE_ROWS, last)] - start)))
    return pd.array(pa.chunked_array(pieces, values.type), dtype)


def _taken(frame: pd.DataFrame, kept: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The kept rows of `columns`, each column dropped from `frame` (in place) once taken: a million
    requests' raw frame and its clean copy are then never held whole together (-370 MB at 1M)."""
    rows = np.flatnonzero(kept)
    taken = {}
    for column in columns:
        taken[column] = _take(frame[column], rows)
        del frame[column]
    return pd.DataFrame(taken, index=pd.RangeIndex(len(rows)), copy=False)


def clean_partition(extracted: pd.DataFrame, kind: Kind, day: str, *, consume: bool = False) -> Cleaned:
    """Repair, validate, quarantine and deduplicate one kind's rows for one day.

    With `consume`, `extracted` itself is worked on and emptied of its columns as the clean frame is
    built (for a caller that holds it only to clean it: the clean step), so the two are never whole at once.
    """
    if consume:
        frame = extracted
        frame.index = pd.RangeIndex(len(frame))
    else:
        frame = extracted.reset_index(drop=True)
    frame[ID_COLUMN[kind]] = derive_ids(frame, kind)
    repairs = {**extract_repairs(frame), **REPAIRS[kind](frame)}
    flags = FLAGS[kind](frame)
    validation = validate(frame, kind)
    reasons = _reasons(frame, validation)
    positions = sorted(reasons)
    bad = np.zeros(len(frame), dtype=bool)
    bad[positions] = True
    quarantine = _quarantine(frame.iloc[positions], [reasons[p] for p in positions], day, kind)
    duplicate = _duplicates(frame, ID_COLUMN[kind], candidates=~bad)
    kept = ~bad & ~duplicate
    columns = [c for c in frame.columns if c not in (ERRORS, RAW, REPAIRED)]
    clean = _taken(frame, kept, columns) if consume else frame.loc[kept, columns].reset_index(drop=True)
    repair_counts = {name: int((mask & kept).sum()) for name, mask in repairs.items()}
    repaired = pd.DataFrame(repairs).any(axis=1) if repairs else pd.Series(False, index=frame.index)
    flagged = pd.DataFrame(flags).any(axis=1) if flags else pd.Series(False, index=frame.index)
    flag_counts = {name: int((mask & kept).sum()) for name, mask in flags.items()}
    quality: dict[str, object] = {
        "day": day,
        "kind": kind.value,
        "rows_in": len(frame),
        "clean": len(clean),
        "quarantined": int(bad.sum()),
        "duplicates": int(duplicate.sum()),
        "repaired": int((repaired & kept).sum()),
        "reasons": json.dumps(dict(Counter(r for rs in reasons.values() for r in rs).most_common())),
        "repairs": json.dumps({k: v for k, v in repair_counts.items() if v}),
        "flagged": int((flagged & kept).sum()),
        "flags": json.dumps({k: v for k, v in flag_counts.items() if v}),
    }
    return Cleaned(clean, quarantine, quality, validation)
