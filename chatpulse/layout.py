"""How a source's files hold their records: the `layout:` values and the `records:` section.

A landing file is read as documents (a JSON line, a CSV row, a whole JSON file, a Server-Sent
Events stream's `data:` payloads); `records:` says where the records are inside each document,
which of them to keep, how to decode an encoding (OTLP/JSON) and how a stream's events are grouped
into one response. This module only says what is written; `chatpulse.ingest.records` reads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic import dataclasses as checked

from chatpulse.mapping import PathText, value_key
from chatpulse.yamlfile import YamlSection, expect

# rows: JSON lines or CSV rows; sessions: a session per line with its turns; document: a file is one JSON
# value (an array: each item), else JSON lines; sse: Server-Sent Events, else as document.
Layout = Literal["rows", "sessions", "document", "sse"]


@checked.dataclass(frozen=True)
class Records(YamlSection):
    """Where a document's records are and which to keep.

    `path`: where a document holds it, its records are the objects there (a list's items; lists on
    the way are stepped through item by item), each with the fields around it at every level
    beside its own (its own win); a document in which it reaches nothing is a record itself (a
    wrapper that some lines lack). `where`: keep the records whose value at each path is one of
    those listed (by its text, as a map compares; a null in the list lets a record without a value
    pass). `having`: keep the records holding a value at one of these paths or more. `decode: otlp`:
    OTLP/JSON attribute lists become objects keyed by attribute name, typed values plain values.
    `group_by`: a stream's events belong to one response while their value at this path stays the
    same (layout sse: an event without it belongs to the response before it); JSON lines, or a
    document's array items, in a row that hold the same value are one response too (a stream's
    chunks logged one per line, Gemini's streamGenerateContent array).
    """

    path: PathText | None = None
    where: Annotated[dict[PathText, tuple[Any, ...]], expect("a mapping of path to a value or a list of values")] = (
        Field(default_factory=dict)
    )
    having: Annotated[tuple[PathText, ...], expect("a list of paths")] = ()
    decode: Literal["otlp"] | None = None
    group_by: PathText | None = None

    @field_validator("where", mode="before")
    @classmethod
    def _listed(cls, raw: Any) -> Any:
        # A single value is short for a list of one; values are compared by their text.
        if not isinstance(raw, dict):
            return raw
        return {
            key: tuple(
                None if v is None else value_key(v) for v in (value if isinstance(value, list | tuple) else [value])
            )
            for key, value in raw.items()
        }
