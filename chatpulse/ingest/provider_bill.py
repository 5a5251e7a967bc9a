"""The provider's bill: cost exports in the landing folder, read into one line per charge and day.

Two formats (`provider_bills:` in the configuration, chatpulse.spendconfig.ProviderBill):

- `openai_costs`: pages of OpenAI's organization Costs API (`GET /v1/organization/costs`) as a user
  saves them: `{"object": "page", "data": [bucket, ...], "has_more", "next_page"}`, each bucket
  `{"object": "bucket", "start_time", "end_time", "results": [...]}` (Unix seconds, one UTC day), each
  result `{"object": "organization.costs.result", "amount": {"value", "currency"}, "line_item",
  "project_id"}`; `line_item` and `project_id` are null unless the export was grouped by them. A file
  holds one page, a JSON list of pages, or one page per line.
- `csv`: a header naming `day` (YYYY-MM-DD), `amount` and `currency`, and optionally `project` and
  `line_item` (`line item` too; case does not matter), then one charge per line.

A charge's model is its line item up to the first ", " (OpenAI writes `gpt-4o-2024-08-06, input`), else
the whole line item. Amounts are kept in their currency; `amount_usd` is the amount of a USD line only:
another currency is never converted, it is counted and named where the bill is compared.

Every line ends in exactly one place: a charge of its day; the quarantine (kind `bills`) with its
file, line and reason (a result's line is its position in the file, 1 for the first result of the first
bucket), filed under its own day, else the file's most frequent day; or a duplicate. Exports overlap
(this week's page repeats yesterday's days), so for each provider and day the newest file holding that
day (modification time, then name) is the bill, and the same day's lines in older files are duplicates.
A file that cannot be read at all raises BillError naming it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from chatpulse.schema import SOURCE_FILE, SOURCE_LINE
from chatpulse.spendconfig import ProviderBill
from chatpulse.tables import table_columns

KIND = "bills"  # the quarantine's kind for a bill line that cannot be read
COST_COLUMNS = table_columns("provider_costs")
QUARANTINE_COLUMNS = table_columns("quarantine")
DAY_SECONDS = 86_400
CSV_REQUIRED = ("day", "amount", "currency")
CURRENCY = re.compile(r"[A-Za-z]{3}")


class BillError(RuntimeError):
    """A bill file cannot be read at all; the message names the file (and the line, where there is one)."""


@dataclass(frozen=True)
class Bills:
    """The charges of every bill file (COST_COLUMNS, newest file per provider and day), the quarantine
    rows of the lines that could not be read, and per day the lines left out as duplicates."""

    costs: pd.DataFrame
    quarantine: pd.DataFrame
    duplicates: dict[str, int]

    def day(self, day: str) -> Bills:
        """The same, for one day."""
        return Bills(
            self.costs[self.costs["day"] == day].reset_index(drop=True),
            self.quarantine[self.quarantine["day"] == day].reset_index(drop=True),
            {day: self.duplicates.get(day, 0)} if self.duplicates.get(day) else {},
        )


@dataclass
class _Read:
    """One file's lines: charges (dicts without provider and file) and problems (line, reason, raw, day or None)."""

    charges: list[dict[str, Any]]
    problems: list[tuple[int, str, str, str | None]]


def model_of(line_item: str | None) -> str | None:
    """The model a line item names: up to the first ", " (`gpt-4o-2024-08-06, input`), else all of it."""
    if not isinstance(line_item, str):
        return None
    model = line_item.split(", ", 1)[0].strip()
    return model or None


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else str(value).strip()


def _amount(value: Any) -> float:
    """A number, or a numeric string (some exports quote amounts); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    return float(value)


def _pages(text: str, path: Path) -> Iterator[tuple[str, Any]]:
    """Each page of a Costs API file with where it is: one page, a JSON list of pages, or a page per line."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        document = None
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield f"line {number}", orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BillError(f"{path}:{number}: not JSON: {exc}") from None
    if isinstance(document, list):
        yield from ((f"page {n}", page) for n, page in enumerate(document, start=1))
    elif document is not None:
        yield "page 1", document


def _bucket_day(bucket: dict[str, Any]) -> tuple[str | None, str | None]:
    """A bucket's UTC day, or why it has none."""
    start, end = bucket.get("start_time"), bucket.get("end_time")
    if isinstance(start, bool) or not isinstance(start, int | float):
        return None, f"start_time: expected Unix seconds, got {start!r}"
    if end is not None and (isinstance(end, bool) or not isinstance(end, int | float) or end - start != DAY_SECONDS):
        return None, f"end_time: expected start_time + {DAY_SECONDS} (one day), got {end!r}"
    return datetime.fromtimestamp(start, UTC).date().isoformat(), None


def _read_costs_api(text: str, path: Path) -> _Read:
    read = _Read([], [])
    position = 0
    for where, page in _pages(text, path):
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise BillError(f"{path}: {where}: not a Costs API page (expected an object with a 'data' list)")
        for bucket in page["data"]:
            results = bucket.get("results") if isinstance(bucket, dict) else None
            if not isinstance(results, list):
                position += 1
                read.problems.append((position, "bucket: expected an object with a 'results' list", _raw(bucket), None))
                continue
            day, why = _bucket_day(bucket)
            for result in results:
                position += 1
                reason = why or _result_problem(result)
                if reason:
                    read.problems.append((position, reason, _raw(result), day))
                    continue
                line_item = _text(result.get("line_item"))
                read.charges.append(
                    {
                        "day": day,
                        "project": _text(result.get("project_id")),
                        "line_item": line_item,
                        "amount": _amount(result["amount"]["value"]),
                        "currency": str(result["amount"]["currency"]).strip().upper(),
                        SOURCE_LINE: position,
                    }
                )
    return read


def _result_problem(result: Any) -> str | None:
    """Why a Costs API result is not a charge, or None."""
    if not isinstance(result, dict):
        return "result: expected an object"
    amount = result.get("amount")
    if not isinstance(amount, dict):
        return "amount: expected an object with value and currency"
    try:
        _amount(amount.get("value"))
    except ValueError:
        return f"amount.value: expected a number, got {amount.get('value')!r}"
    return _currency_problem(amount.get("currency"), "amount.currency")


def _currency_problem(currency: Any, key: str) -> str | None:
    """Why a currency is not an ISO 4217 code (three letters, any case), or None."""
    if not _text(currency):
        return f"{key}: missing"
    if not (isinstance(currency, str) and CURRENCY.fullmatch(currency.strip())):
        return f"{key}: expected an ISO 4217 code such as usd, got {currency!r}"
    return None


def _raw(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _header(names: Sequence[str]) -> list[str]:
    return [name.strip().lower().replace(" ", "_") for name in names]


def _read_csv(text: str, path: Path) -> _Read:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    names = _header(header or [])
    missing = [name for name in CSV_REQUIRED if name not in names]
    if missing:
        raise BillError(f"{path}:1: the header lacks {', '.join(missing)} (it needs day, amount and currency)")
    read = _Read([], [])
    for values in rows:
        number = rows.line_num
        if not any(value.strip() for value in values):
            continue
        record = dict(zip(names, values, strict=False))
        day = record.get("day", "").strip()
        try:
            day = date.fromisoformat(day).isoformat()
        except ValueError:
            read.problems.append((number, f"day: expected YYYY-MM-DD, got {day!r}", ",".join(values), None))
            continue
        if len(values) != len(names):
            read.problems.append((number, f"expected {len(names)} fields, got {len(values)}", ",".join(values), day))
            continue
        try:
            amount = _amount(record["amount"].strip())
        except ValueError:
            read.problems.append(
                (number, f"amount: expected a number, got {record['amount']!r}", ",".join(values), day)
            )
            continue
        if why := _currency_problem(record["currency"], "currency"):
            read.problems.append((number, why, ",".join(values), day))
            continue
        read.charges.append(
            {
                "day": day,
                "project": _text(record.get("project")),
                "line_item": _text(record.get("line_item")),
                "amount": amount,
                "currency": record["currency"].strip().upper(),
                SOURCE_LINE: number,
            }
        )
    return read


def read_bill_file(path: Path, bill: ProviderBill, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One bill file's charges (COST_COLUMNS) and quarantine rows (QUARANTINE_COLUMNS), `label` its name
    in both. Raises BillError naming the file when it cannot be read at all (not UTF-8, not JSON, not a
    Costs API page, a CSV header without day, amount or currency, or no line with a readable day)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BillError(f"{path}: cannot read the bill: {exc}") from None
    read = _read_costs_api(text, path) if bill.format == "openai_costs" else _read_csv(text, path)
    days = Counter(charge["day"] for charge in read.charges) + Counter(d for *_, d in read.problems if d)
    if read.problems and not days:
        raise BillError(f"{path}: no line has a readable day ({read.problems[0][1]})")
    home = min(days, key=lambda d: (-days[d], d)) if days else None
    costs = pd.DataFrame(read.charges, columns=["day", "project", "line_item", "amount", "currency", SOURCE_LINE])
    for name in ("project", "line_item"):  # text columns keep None for "not named", as the table stores it
        costs[name] = costs[name].astype(object).where(costs[name].notna(), None)
    costs = costs.assign(
        provider=bill.provider,
        model=pd.Series([model_of(item) for item in costs["line_item"]], index=costs.index, dtype=object),
        amount_usd=costs["amount"].where(costs["currency"] == "USD"),
        **{SOURCE_FILE: label},
    )
    quarantine = pd.DataFrame(
        {
            "day": [day or home for *_, day in read.problems],
            "kind": KIND,
            SOURCE_FILE: label,
            SOURCE_LINE: [line for line, *_ in read.problems],
            "record_id": None,
            "reasons": [json.dumps([reason]) for _, reason, *_ in read.problems],
            "raw": [raw for _, _, raw, _ in read.problems],
        },
        columns=list(QUARANTINE_COLUMNS),
    )
    return costs[list(COST_COLUMNS)], quarantine


def read_bills(landing_dir: Path, bills: Sequence[ProviderBill]) -> Bills:
    """Every file each bill's pattern matches in the landing folder, read and deduplicated (see the module).

    Raises BillError naming a file that cannot be read at all.
    """
    files = [(bill, path) for bill in bills for path in Path(landing_dir).glob(bill.pattern) if path.is_file()]
    files.sort(key=lambda found: (found[1].stat().st_mtime_ns, found[1].name))  # oldest first
    costs, quarantines = [], []
    for age, (bill, path) in enumerate(files):
        found, quarantine = read_bill_file(path, bill, path.relative_to(landing_dir).as_posix())
        costs.append(found.assign(_newest=age))
        quarantines.append(quarantine)
    if not costs:
        return Bills(pd.DataFrame(columns=list(COST_COLUMNS)), pd.DataFrame(columns=list(QUARANTINE_COLUMNS)), {})
    every = pd.concat(costs, ignore_index=True)
    newest = every.groupby(["provider", "day"])["_newest"].transform("max")
    kept = every["_newest"] == newest
    duplicates = every.loc[~kept, "day"].value_counts()
    return Bills(
        every[kept].drop(columns="_newest").reset_index(drop=True),
        pd.concat(quarantines, ignore_index=True),
        {str(day): int(count) for day, count in duplicates.items()},
    )
