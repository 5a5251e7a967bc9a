"""The records of a CSV file's text: each with its first physical line, and the lines that hold no record.

The csv module, not strict, takes everything after a quote that is never closed as one field: the rest
of the file would be read as one record. Such a line is malformed here, and the lines after it are read
as records of their own.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator

from chatpulse.ingest.text import NOT_UTF8, holds_undecodable

# The csv module's own cap on a field (131072 by default) would fail the whole file; fields are
# instead measured against the source's max_field_bytes once read, which quarantines only the row.
CSV_FIELD_LIMIT = 2**31 - 1
UNCLOSED = "a quote opened on this line is never closed"


class CsvLineError(ValueError):
    """The csv module refused a line (e.g. a NUL byte); the message names the line."""


def _lines_from(text: str, first: int) -> Iterator[str]:
    """The physical lines of `text` from line `first` (1-based) on, as the csv module counts them."""
    return itertools.islice(io.StringIO(text, newline=""), first - 1, None)


def _unclosed_quote(text: str) -> bool:
    """Whether CSV `text` ends inside a quoted field."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def csv_records(
    text: str, undecodable: bool
) -> tuple[list[str] | None, list[list[str]], list[int], list[tuple[int, str]]]:
    """The header (None for an empty file), the records with as many fields as it, each record's first
    line (1-based), and the malformed lines with why: a record of another length, one holding bytes that
    are not UTF-8 (`undecodable`: `text` was decoded with surrogateescape), a quote never closed (UNCLOSED).

    Raises CsvLineError naming the line where the csv module refuses the text.
    """
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return None, [], [], []
    if undecodable:
        header = [name.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace") for name in header]
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    first = reader.line_num + 1
    while True:
        reader = csv.reader(_lines_from(text, first))
        start = last = first
        try:
            for row in reader:
                last = start
                if undecodable and holds_undecodable(row):
                    malformed.append((start, NOT_UTF8))
                elif len(row) == len(header):
                    rows.append(row)
                    lines.append(start)
                elif row:  # a blank line is no record; a short or long one (even of empty fields) is malformed
                    malformed.append((start, f"expected {len(header)} fields, got {len(row)}"))
                start = first + reader.line_num
        except csv.Error as exc:
            raise CsvLineError(f"line {first - 1 + reader.line_num}: {exc}") from exc
        # A last record over several lines may be a quote that runs to the end of the file.
        if start - last < 2 or not _unclosed_quote("".join(_lines_from(text, last))):
            return header, rows, lines, malformed
        if lines and lines[-1] == last:
            rows.pop()
            lines.pop()
        else:
            malformed = [(line, why) for line, why in malformed if line != last]
        malformed.append((last, UNCLOSED))
        first = last + 1
