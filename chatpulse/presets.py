"""Presets: a source's mapping for a log format that tools write, kept as data in `presets.yaml`.

`preset: NAME` in a source fills its kind, columns, time format, token convention, failure rule,
layout and records from the preset; the source's own keys override it: `columns:` entry by entry,
every other key whole. Each preset is an ordinary source mapping (without `pattern` or `sql`), so
it is validated by the same model as a source the user writes, every time it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from chatpulse.yamlfile import problem

PRESETS_FILE = "presets.yaml"


@cache
def presets() -> dict[str, dict[str, Any]]:
    """Every preset by name, as written in chatpulse/presets.yaml (keys starting with '.' are YAML anchors' holders)."""
    loaded = yaml.safe_load(files("chatpulse").joinpath(PRESETS_FILE).read_text(encoding="utf-8"))
    return {name: body for name, body in loaded.items() if not name.startswith(".")}


def with_preset(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A source mapping with its preset's keys filled in (unchanged without `preset`).

    The source's keys win: `columns` entry by entry, every other key whole. The preset's `optional`
    columns (those its files need not hold) lose the columns the source maps itself, unless the
    source writes its own `optional`. Raises a pydantic error keyed `preset` for an unknown name.
    """
    name = raw.get("preset")
    if name is None:
        return raw
    known = presets()
    if not isinstance(name, str) or name not in known:
        raise problem(f"unknown preset {name!r} (expected one of {', '.join(sorted(known))})", key="preset")
    preset = deepcopy(known[name])
    own_columns = raw.get("columns") if isinstance(raw.get("columns"), Mapping) else {}
    merged = {**preset, **raw}
    if isinstance(raw.get("columns", {}), Mapping):
        merged["columns"] = {**preset.get("columns", {}), **own_columns}
    if "optional" not in raw and "optional" in preset:
        merged["optional"] = [entry for entry in preset["optional"] if entry not in own_columns]
    return merged
