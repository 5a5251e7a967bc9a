"""Checks on values read from YAML a user edits; a failure names the key, what was expected and what came.

The configuration, price table and alert rules each raise their own error type, so every
check takes the class to raise.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any


def expect(
    value: Any,
    types: type | tuple[type, ...],
    key: str,
    expected: str,
    error: type[Exception],
    valid: Callable[[Any], bool] = lambda _: True,
) -> Any:
    """`value` if it is one of `types` and `valid`; YAML's true/false never pass for a number."""
    allowed = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed) or not valid(value):
        raise error(f"{key}: expected {expected}, got {value!r}")
    return value


def positive(number: float) -> bool:
    return number > 0


def non_negative(number: float) -> bool:
    return number >= 0


def choice(value: Any, choices: Collection[str], key: str, error: type[Exception]) -> str:
    if value not in choices:
        raise error(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def known_keys(raw: Mapping[str, Any], known: Collection[str], key: str, error: type[Exception]) -> None:
    """Refuse a key outside `known` (a typo would otherwise be ignored without a word)."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        name = f"{key}.{unknown[0]}" if key else unknown[0]
        raise error(f"{name}: unknown key (expected one of {', '.join(sorted(known))})")


def required_keys(raw: Mapping[str, Any], names: Collection[str], key: str, error: type[Exception]) -> None:
    for name in names:
        if name not in raw:
            raise error(f"{key}.{name}: required")
