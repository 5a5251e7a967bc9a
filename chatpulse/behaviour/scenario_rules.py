"""Scenario rules: what a user writes in a rules YAML file, checked into `Rule`s, and how they score text.

A rule is a label with keywords (literal text), patterns (RE2 regular expressions: no
lookarounds or backreferences) and example prompts. Keywords and patterns match
case-insensitively; a keyword that begins or ends with a Latin letter or digit must stand
as a whole word on that side ("api" does not match "capital"); CJK keywords match inside
text, which has no word boundaries. Examples label a prompt that closely resembles one of
them (chatpulse.behaviour.scenarios) and are training prompts for `chatpulse scenarios train`.

A text is scored per rule: FIRST_TURN_WEIGHT when the rule matches a conversation's first
user message (what the user came for) plus LATER_TURNS_WEIGHT when it matches any later
one. The best-scoring rule wins (the earlier rule on ties, so the file's order is the
priority); the confidence is the winning label's score over the summed scores of every
label with evidence, so 1.0 means no other label matched at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field, StringConstraints
from pydantic import dataclasses as checked

from chatpulse.tables import TABLES
from chatpulse.threads import in_order
from chatpulse.yamlfile import YamlSection, expect, problem, read_yaml, validate

OTHER = "other"
FIRST_TURN_WEIGHT = 2.0
LATER_TURNS_WEIGHT = 1.0
# Threads matching the rules (score_rules): RE2 in Arrow runs without the GIL.
RULE_THREADS = 2
DEFAULT_RULES_PATH = Path(__file__).with_name("scenario_rules.yaml")

# The warehouse's widths (VARCHAR(n) in PostgreSQL, which refuses a longer value): a label is written to every
# `scenario` column, a rule's name to sessions.scenario_rule.
LABEL_CHARS = min(
    column.type.length for table in TABLES.values() for column in table.columns if column.name == "scenario"
)
RULE_CHARS = TABLES["sessions"].c.scenario_rule.type.length

# RE2: what continues a word for a keyword's Latin end. Every Latin-script letter (é, ñ, ß, ø), not ASCII's
# alone, so `café` does not match "cafés"; other scripts end no word, so a Cyrillic stem matches its endings.
_WORD = r"\p{Latin}0-9_"
_WORD_START, _WORD_END = f"(?:^|[^{_WORD}])", f"(?:$|[^{_WORD}])"


class ScenarioRuleError(ValueError):
    """A scenario rules file is malformed; the message names the file and the key."""


def _compile(keywords: Sequence[str], patterns: Sequence[str]) -> str:
    """One RE2 expression, for lowercased text, matching any keyword or pattern ("" for neither).

    RE2 (through Arrow) runs every session's text in C++, dozens of times faster than
    Python's re. A keyword that begins or ends with a Latin-script letter or a digit stands
    as a whole word on that side: no Latin letter, digit or underscore next to it (RE2's
    \\b knows ASCII letters alone, and it has no lookarounds, so the neighbour is matched;
    only whether a text matches is used). Keywords in other scripts match inside words:
    CJK text has no word boundaries, and a Cyrillic stem should match its endings.
    """
    ends = [end for keyword in keywords for end in (keyword[0], keyword[-1])]
    latin = matches(pa.array(ends, pa.string()), f"^[{_WORD}]$").tolist()
    by_bounds: dict[tuple[bool, bool], list[str]] = {}
    for number, keyword in enumerate(keywords):
        bounds = (latin[2 * number], latin[2 * number + 1])
        by_bounds.setdefault(bounds, []).append(re.escape(keyword.lower()))
    alternatives = [
        (_WORD_START if before else "") + f"(?:{'|'.join(words)})" + (_WORD_END if after else "")
        for (before, after), words in by_bounds.items()
    ]
    return "|".join([*alternatives, *(f"(?i:{pattern})" for pattern in patterns)])


def matches(texts: pa.Array, expression: str) -> np.ndarray:
    """Which lowercased texts the RE2 expression matches (none for "")."""
    if not expression:
        return np.zeros(len(texts), dtype=bool)
    return pc.match_substring_regex(texts, expression).to_numpy(zero_copy_only=False)


# \b (not \\b) with a letter beyond ASCII beside it, past an opening group: RE2's \b knows ASCII letters alone.
_ASCII_BOUNDARY = re.compile(r"(?<!\\)(?:\\\\)*\\b(?:\((?:\?:)?)*([^\x00-\x7f])|([^\x00-\x7f])\\b")


def _re2(pattern: str) -> str:
    try:
        matches(pa.array([""], pa.string()), _compile((), (pattern,)))
    except pa.ArrowInvalid as error:
        raise problem(f"not a valid RE2 regular expression: {error}") from None
    if (found := _ASCII_BOUNDARY.search(pattern)) and (letter := found.group(1) or found.group(2)).isalpha():
        raise problem(
            f"\\b is RE2's word boundary of ASCII letters: beside {letter!r} it never matches; write "
            "(?:^|[^\\pL\\pN_]) before a word and (?:$|[^\\pL\\pN_]) after it (a rule only asks whether a text "
            "matches, so matching the neighbour too is fine)"
        )
    return pattern


def too_long(text: str, limit: int, column: str) -> str | None:
    """Why `text` cannot be written to a warehouse column of `limit` characters, None when it can."""
    if len(text) <= limit:
        return None
    return f"{len(text)} characters, more than the {limit} the warehouse column {column} holds"


def _fits(limit: int, column: str) -> AfterValidator:
    def check(text: str) -> str:
        if (reason := too_long(text, limit, column)) is not None:
            raise problem(reason)
        return text

    return AfterValidator(check)


NonEmpty = Annotated[str, StringConstraints(min_length=1), expect("a non-empty string")]
Strings = Annotated[tuple[NonEmpty, ...], expect("a list of non-empty strings")]
Patterns = Annotated[tuple[Annotated[NonEmpty, AfterValidator(_re2)], ...], expect("a list of RE2 patterns")]


@checked.dataclass(frozen=True)
class RuleEntry(YamlSection):
    """One entry of a rules file, as written: a label and its keywords, patterns and/or examples."""

    label: Annotated[NonEmpty, _fits(LABEL_CHARS, "scenario")]
    name: Annotated[str, expect("a string"), _fits(RULE_CHARS, "sessions.scenario_rule")] = ""
    keywords: Strings = ()
    patterns: Patterns = ()
    examples: Strings = ()
    over_model: Annotated[bool, expect("true or false")] = False

    def __post_init__(self) -> None:
        if not (self.keywords or self.patterns or self.examples):
            raise problem("needs keywords, patterns or examples")


def _some_rules(entries: tuple[RuleEntry, ...] | None) -> tuple[RuleEntry, ...]:
    if not entries:
        raise problem("expected a non-empty list of rules")
    return entries


@checked.dataclass(frozen=True)
class RulesFile(YamlSection):
    """A rules file: `{rules: [{label, name, keywords, patterns, examples, over_model}, ...]}`."""

    rules: Annotated[tuple[RuleEntry, ...] | None, AfterValidator(_some_rules), expect("a list of rules")] = Field(
        None, validate_default=True
    )


@dataclass(frozen=True)
class Rule:
    """One scenario label and the keywords, patterns (RE2 syntax) and example prompts that select it.

    name identifies the rule in sessions.scenario_rule (a label may have several rules);
    it defaults to the label. over_model: the rule decides whenever it wins on a first
    message, however sure the model is (for requests that name their task outright).
    """

    label: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    name: str = ""
    examples: tuple[str, ...] = ()
    over_model: bool = False
    expression: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or self.label)
        object.__setattr__(self, "expression", _compile(self.keywords, self.patterns))


def load_rules(path: Path | None) -> list[Rule]:
    """Rules from a YAML file (RulesFile); the packaged defaults for None.

    Raises ScenarioRuleError naming the file and the key (`rules[1].patterns[0]: ...`): a
    misspelt "keyword" is refused instead of matching nothing.
    """
    if path is None:
        return list(DEFAULT_RULES)
    raw = read_yaml(path, ScenarioRuleError, "scenario rules")
    try:
        entries = validate(RulesFile, {} if raw is None else raw, ScenarioRuleError).rules or ()
    except ScenarioRuleError as error:
        raise ScenarioRuleError(f"{path}: {error}") from None
    return [Rule(e.label, e.keywords, e.patterns, e.name, e.examples, e.over_model) for e in entries]


DEFAULT_RULES: tuple[Rule, ...] = tuple(load_rules(DEFAULT_RULES_PATH))


@dataclass(frozen=True)
class Labels:
    """Per text: the scenario, the deciding rule's name (None for OTHER) and the confidence (NaN for OTHER);
    from score_rules also whether that rule is an `over_model` one that matched the first message."""

    scenario: np.ndarray
    rule: np.ndarray
    confidence: np.ndarray
    over_model: np.ndarray | None = None


def _rule_matches(first: pa.Array, later: pa.Array, rules: Sequence[Rule]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each rule's matches among the first turns and the later ones, in the rules' order, RULE_THREADS rules at
    a time (threads.in_order): only that many rules' matches are held at once."""
    return in_order(
        lambda rule: (matches(first, rule.expression), matches(later, rule.expression)), rules, RULE_THREADS
    )


def score_rules(first: pa.Array, later: pa.Array, later_rows: np.ndarray, rules: Sequence[Rule]) -> Labels:
    """Rule labels of len(first) conversations from their lowercased first turns and later turns (with their row)."""
    count = len(first)
    labels = list(dict.fromkeys(rule.label for rule in rules))
    evidence = np.zeros((count, len(labels)))
    best_score, best_rule = np.zeros(count), np.full(count, -1)
    for number, (rule, (first_hit, later_hits)) in enumerate(
        zip(rules, _rule_matches(first, later, rules), strict=True)
    ):
        score = FIRST_TURN_WEIGHT * first_hit
        later_hit = np.bincount(later_rows[later_hits], minlength=count) > 0
        score += LATER_TURNS_WEIGHT * later_hit
        better = score > best_score
        best_rule[better], best_score[better] = number, score[better]
        column = labels.index(rule.label)
        evidence[:, column] = np.maximum(evidence[:, column], score)
    names = np.array([rule.name for rule in rules] + [None], dtype=object)
    scenarios = np.array([rule.label for rule in rules] + [OTHER], dtype=object)
    total = evidence.sum(axis=1)
    confidence = np.full(count, np.nan)
    decided = best_rule >= 0
    confidence[decided] = best_score[decided] / total[decided]
    # A score of at least FIRST_TURN_WEIGHT means the rule matched the first message.
    over = np.array([rule.over_model for rule in rules] + [False])[best_rule] & (best_score >= FIRST_TURN_WEIGHT)
    return Labels(scenarios[best_rule], names[best_rule], confidence, over)
