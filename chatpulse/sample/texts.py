"""The texts of the sample chats, loaded once from texts.yaml into pools to pick from in bulk.

texts.yaml holds the prompts (templates with slots), follow-ups, replies and rating
comments for every scenario in English and Chinese. The generator picks them by index
from a seeded stream, so the order of the file's lists is part of what a seed produces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from chatpulse.sample.traffic import SCENARIOS

TEXTS_FILE = Path(__file__).with_name("texts.yaml")
EN, ZH = 0, 1
LANGUAGES = {"en": EN, "zh": ZH}  # the keys texts.yaml uses
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it; same result


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with prompts, follow_ups, replies and comments")
    return raw


def _at(raw: dict[str, Any], *keys: str) -> Any:
    """raw[key][key]..., naming the first missing key by its path in the file."""
    node: Any = raw
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"{TEXTS_FILE}: {'.'.join(keys[: depth + 1])} is missing")
        node = node[key]
    return node


def _texts(node: Any, where: str) -> list[str]:
    """node if it is a non-empty list of strings: an empty group would make picks fall into the next one."""
    if not isinstance(node, list) or not node or not all(isinstance(text, str) for text in node):
        raise ValueError(f"{TEXTS_FILE}: {where} must be a non-empty list of texts, got {node!r}")
    return node


def _templates(raw: dict[str, Any], scenario: str, lang: str) -> list[tuple[str, list[list[str]]]]:
    where = f"prompts.{scenario}.{lang}"
    templates = _at(raw, "prompts", scenario, lang)
    if not isinstance(templates, list) or not templates:
        raise ValueError(f"{TEXTS_FILE}: {where} must be a non-empty list of templates, got {templates!r}")
    out = []
    for i, entry in enumerate(templates):
        template, slots = (entry.get("template"), entry.get("slots")) if isinstance(entry, dict) else (None, None)
        if not isinstance(template, str) or not isinstance(slots, list) or template.count("{}") != len(slots):
            raise ValueError(
                f"{TEXTS_FILE}: {where}[{i}] needs a template string with one {{}} per list of slots, got {entry!r}"
            )
        out.append((template, [_texts(slot, f"{where}[{i}].slots[{j}]") for j, slot in enumerate(slots)]))
    return out


_RAW = _load(TEXTS_FILE)
# (scenario, language) -> templates with the fillers for each of their slots.
PROMPT_TEMPLATES: dict[tuple[str, int], list[tuple[str, list[list[str]]]]] = {
    (scenario, lang): _templates(_RAW, scenario, code) for scenario in SCENARIOS for code, lang in LANGUAGES.items()
}
FOLLOW_UPS: dict[int, tuple[str, ...]] = {
    lang: tuple(_texts(_at(_RAW, "follow_ups", code), f"follow_ups.{code}")) for code, lang in LANGUAGES.items()
}
REPLIES: dict[tuple[str, int], tuple[str, ...]] = {
    (scenario, lang): tuple(_texts(_at(_RAW, "replies", scenario, code), f"replies.{scenario}.{code}"))
    for scenario in SCENARIOS
    for code, lang in LANGUAGES.items()
}
# (positive, language) -> comments left with a rating.
COMMENTS: dict[tuple[bool, int], tuple[str, ...]] = {
    (positive, lang): tuple(_texts(_at(_RAW, "comments", tone, code), f"comments.{tone}.{code}"))
    for positive, tone in ((True, "positive"), (False, "negative"))
    for code, lang in LANGUAGES.items()
}


@dataclass(frozen=True)
class TextPool:
    """Texts of several groups in one flat array, so rows pick theirs by index in bulk."""

    texts: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, groups: list[tuple[str, ...]]) -> TextPool:
        """A pool whose group i holds groups[i], in order."""
        sizes = np.array([len(group) for group in groups])
        texts = np.array([text for group in groups for text in group], dtype=object)
        return cls(texts, np.cumsum(sizes) - sizes, sizes)

    def pick(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        """One text per entry of ``group`` (group numbers), uniform within its group; one draw each."""
        return self.texts[self.offsets[group] + (rng.random(len(group)) * self.sizes[group]).astype(np.int64)]


def _expand(templates: list[tuple[str, list[list[str]]]]) -> tuple[str, ...]:
    return tuple(t.format(*fill) for t, fillers in templates for fill in itertools.product(*fillers))


# Groups are numbered scenario * 2 + language.
PROMPTS = TextPool.of([_expand(PROMPT_TEMPLATES[s, lang]) for s in SCENARIOS for lang in (EN, ZH)])
ANSWERS = TextPool.of([REPLIES[s, lang] for s in SCENARIOS for lang in (EN, ZH)])
FOLLOW_UP_POOL = TextPool.of([FOLLOW_UPS[EN], FOLLOW_UPS[ZH]])
# Groups are positive * 2 + language.
COMMENT_POOL = TextPool.of([COMMENTS[positive, lang] for positive in (False, True) for lang in (EN, ZH)])
