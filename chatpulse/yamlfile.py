"""YAML files a user edits (configuration, price table, alert rules): read, then validated by pydantic.

A mistake comes back as one line naming the key path and what was expected,
`sources[1].columns.timestamp: expected a string, got 5 (line 7)`, never a traceback. Models
declare what they accept with pydantic types; `expect` words a field's message;
`describe` is the one place a `ValidationError` becomes that line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    StrictFloat,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError

T = TypeVar("T")

OWN_ERRORS = ("expected", "problem")  # already worded here; `expect` leaves them as they are
PHRASES = {
    "int_type": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping",
    "tuple_type": "a list",
}
INPUT_SHOULD_BE = "Input should be "
SHOWN_CHARS = 80  # of a wrong value quoted in a message


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (2026-13-45) as text instead of raising.

    PyYAML builds dates while parsing, so a bad one would fail without its key;
    as text, validation reports it under the key it belongs to.
    """


def _date_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


class _Mapping(dict):
    """A YAML mapping as a dict that remembers the line (1-based) of each of its keys."""

    lines: dict[Any, int]


class _Sequence(list):
    """A YAML sequence as a list that remembers the line (1-based) of each of its items."""

    lines: list[int]


def _refuse_duplicates(node: yaml.MappingNode) -> None:
    """A key written twice in one mapping is an error at its second place: PyYAML keeps the last without a
    word, so a second `mail:` or `sources:` further down would silently replace the first."""
    seen: dict[Any, yaml.Mark] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key.value}' (first at line {seen[key.value].line + 1})", key.start_mark
            )
        seen[key.value] = key.start_mark


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    data = _Mapping()
    yield data  # first, as PyYAML's own constructor does, so an alias inside can refer to it
    _refuse_duplicates(node)
    data.update(loader.construct_mapping(node))  # flattens merge keys (<<) into node.value first
    data.lines = {loader.construct_object(key): key.start_mark.line + 1 for key, _ in node.value}


def _sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Iterator[_Sequence]:
    data = _Sequence()
    yield data
    data.extend(loader.construct_sequence(node))
    data.lines = [item.start_mark.line + 1 for item in node.value]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _date_or_text)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def line_of(raw: Any, loc: Sequence[str | int]) -> int | None:
    """The line (1-based) in its file of the value at key path `loc` inside `raw` as `read_yaml` gave it:
    the deepest key or item of the path found; None where the path leaves the file's mappings at once."""
    line = None
    for part in loc:
        in_mapping = isinstance(raw, _Mapping) and part in raw.lines
        if not (in_mapping or (isinstance(raw, _Sequence) and isinstance(part, int) and 0 <= part < len(raw))):
            break
        line, raw = raw.lines[part], raw[part]
    return line


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """The parsed document of `path` (None when empty); `error` names the file when it is
    unreadable (`cannot read <what> <path>: ...`) or not YAML (one line with the line and column:
    `<path>: not valid YAML at line 4, column 10: ...`; also a key written twice in one mapping). Its
    mappings and lists remember their keys' lines, which `validate` gives in its errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML{_yaml_problem(exc)}") from exc


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what PyYAML found wrong, on one line: its own text spans lines, quotes the document and
    calls the file "<unicode string>" (it was given the text)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        context = ""
        if exc.context:
            start = exc.context_mark
            context = f" ({exc.context}" + (f" from {_at(start)}" if start is not None else "") + ")"
        return f" at {_at(exc.problem_mark)}: {exc.problem}{context}"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow, counted from the start
        return f": character #x{exc.character:04x} at character {exc.position + 1} is not allowed"
    return f": {' '.join(str(exc).split())}"


def problem(message: str, key: str | tuple[str | int, ...] | None = None) -> PydanticCustomError:
    """An error worded by the caller; `key` names the sub-key it is about, below the value's path
    (a check across fields sits on the mapping but is about one of its keys), or the path below it (a check
    across a list's items is about one item's key: `(1, "name")`)."""
    return PydanticCustomError("problem", "{message}", {"message": message} | ({"key": key} if key else {}))


def expect(phrase: str, *, secret: bool = False) -> WrapValidator:
    """Annotation wording a wrong value as `expected <phrase>, got <value>`.

    Only errors about the value itself are reworded: those of keys or items inside it
    keep their own path and message. A `secret` value (a webhook URL with its token, a
    database URL with its password) is never quoted, nor is anything inside it.
    """

    def reword(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = exc.errors()
            # An error about a key inside quotes that key's value (a secret key is marked itself); one about
            # the value as a whole, unless worded here, would quote the secret.
            if secret and any(not e["loc"] and e["type"] not in (*OWN_ERRORS, "secret") for e in errors):
                raise PydanticCustomError("secret", "expected {expected}", {"expected": phrase}) from None
            if any(e["loc"] or e["type"] in (*OWN_ERRORS, "secret") for e in errors):
                raise
            raise PydanticCustomError("expected", "expected {expected}", {"expected": phrase}) from None

    return WrapValidator(reword)


def _not_a_number(value: Any) -> Any:
    # pydantic reads a number as seconds (since the epoch, since midnight): a date never is one.
    if isinstance(value, int | float):
        raise ValueError("a number")
    return value


TEXT_NOT_NUMBER = BeforeValidator(_not_a_number)
Positive = Annotated[StrictFloat, Field(gt=0)]
NonNegative = Annotated[StrictFloat, Field(ge=0)]
Day = Annotated[date, TEXT_NOT_NUMBER, expect("a date YYYY-MM-DD")]


@dataclass(frozen=True)
class YamlSection:
    """Base of a mapping in a YAML file: a key that is not a field is refused, naming those that are
    (a typo would otherwise be ignored without a word)."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            known = sorted(field.alias or name for name, field in cls.__pydantic_fields__.items())
            unknown = sorted(str(key) for key in raw if key not in known)
            if unknown:
                close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise problem(f"unknown key ({hint}expected one of {', '.join(known)})", key=unknown[0])
        return raw


def key_path(loc: Sequence[str | int]) -> str:
    """`('sources', 1, 'columns', 'timestamp')` as `sources[1].columns.timestamp`.

    pydantic's `[key]` (the key of a mapping, not its value) follows without a dot.
    """
    parts = (f"[{part}]" if isinstance(part, int) else part if part == "[key]" else f".{part}" for part in loc)
    return "".join(parts).removeprefix(".")


def _what(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "required"
    if kind == "problem":
        return error["msg"]
    if kind == "secret":
        return f"expected {ctx['expected']} (the value is not shown: it may hold a secret)"
    if kind == "expected":
        expected = ctx["expected"]
    elif kind in ("literal_error", "enum"):
        expected = "one of " + ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
    elif kind in PHRASES:
        expected = PHRASES[kind]
    elif error["msg"].startswith(INPUT_SHOULD_BE):
        expected = error["msg"].removeprefix(INPUT_SHOULD_BE)
    else:
        return f"{error['msg']}, got {_shown(error['input'])}"
    return f"expected {expected}, got {_shown(error['input'])}"


def _shown(value: Any) -> str:
    """A wrong value as a message quotes it, cut to SHOWN_CHARS (it may be a whole document)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def describe(exc: ValidationError, where: str = "", raw: Any = None) -> str:
    """Every error of `exc` as `path: what`, on one line joined by '; '; paths start at `where`. Given the
    document `raw` as `read_yaml` read it, each ends with the line of its key in the file: `(line 12)`."""
    lines = []
    for error in exc.errors():
        key = error.get("ctx", {}).get("key")
        loc = [*error["loc"], *(key if isinstance(key, tuple) else [key] if key else [])]
        path = key_path([where, *loc] if where else loc)
        line = line_of(raw, loc)
        at = f" (line {line})" if line is not None else ""
        lines.append(f"{path}: {_what(error)}{at}" if path else f"{_what(error)}{at}")
    return "; ".join(dict.fromkeys(lines))


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validate(kind: type[T], raw: Any, error: type[Exception], where: str = "") -> T:
    """`raw` (parsed YAML) as `kind`; else `error` naming each wrong key below `where`, what was expected and,
    for a document `read_yaml` read, the key's line."""
    try:
        return _adapter(kind).validate_python(raw)
    except ValidationError as exc:
        raise error(describe(exc, where, raw)) from None
