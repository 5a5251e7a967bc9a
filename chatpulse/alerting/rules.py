"""Alert rules: what a user writes in alert_rules.yaml, parsed and checked into `Rule`s.

Errors name the file and the key path (`rules[2].window`), so a typo never passes silently.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from pydantic import AfterValidator, Field, StrictFloat, StrictInt, ValidationInfo, field_validator, model_validator
from pydantic import dataclasses as checked

from chatpulse.yamlfile import YamlSection, expect, line_of, problem, read_yaml, validate

DEFAULT_RULES_PATH = Path(__file__).with_name("alert_rules.yaml")
WINDOWS = {"5m": 5, "1h": 60, "1d": 1440}
DAILY_ONLY = {"cost_per_day", "quarantine_rate"}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class AlertRuleError(ValueError):
    """A rules file is malformed; the message names the file and the key."""


@checked.dataclass(frozen=True)
class Baseline(YamlSection):
    """Compare a window with the same window on the previous `days` days."""

    method: Literal["mad", "ratio"] = "mad"
    days: Annotated[StrictInt, Field(ge=1), expect("a whole number of days, at least 1")] = 7
    min_days: StrictInt = 3

    @field_validator("min_days")
    @classmethod
    def _within_days(cls, min_days: int, info: ValidationInfo) -> int:
        days = info.data.get("days")  # absent when days itself is wrong
        if days is not None and not 1 <= min_days <= days:
            raise problem(f"expected 1 to {days}, got {min_days!r}")
        return min_days


@checked.dataclass(frozen=True)
class Rule(YamlSection):
    """One alert rule: fires when `metric` over a `window` compares true against `threshold`.

    With a baseline, the compared value is the robust z-score (mad) or the ratio to the
    baseline median (ratio) instead of the metric itself.
    """

    name: Annotated[str, expect("a string")]
    metric: Literal[
        "requests_per_minute",
        "requests_per_hour",
        "latency_p95_ms",
        "error_rate",
        "cost_per_day",
        "tokens",
        "quarantine_rate",
    ]
    comparison: Literal[">", ">=", "<", "<="]
    # allow_inf_nan=False: a rule whose threshold is .nan could never fire, one of .inf never or always
    threshold: Annotated[StrictFloat, Field(allow_inf_nan=False), expect("a finite number")]
    window: Literal["5m", "1h", "1d"] = "1h"
    min_requests: Annotated[StrictInt, Field(ge=0), expect("a whole number, at least 0")] = 0
    severity: Literal["warn", "error"] = "warn"
    model: Annotated[str | None, expect("a model name")] = None
    scenario: Annotated[str | None, expect("a scenario name")] = None
    baseline: Annotated[Baseline | None, expect("a mapping with method (mad or ratio)")] = None

    @model_validator(mode="after")
    def _window_and_filters_fit(self) -> Rule:
        if (self.metric in DAILY_ONLY or self.scenario is not None) and self.window != "1d":
            per_scenario = " per scenario" if self.scenario else ""
            raise problem(f"{self.metric}{per_scenario} needs window 1d", key="window")
        if self.metric == "quarantine_rate" and (self.model or self.scenario):
            raise problem("quarantine_rate cannot be filtered", key="model")
        if self.model and self.scenario:
            raise problem("filter on model or scenario, not both", key="scenario")
        return self

    def breaches(self, scores: pd.Series) -> pd.Series:
        """Which scores cross the threshold; a missing score (no baseline, no requests) never does. An infinite
        one does (a baseline of nothing but empty windows: evaluate._baseline_scores)."""
        scores = scores.astype("float64")
        return scores.notna() & COMPARISONS[self.comparison](scores, self.threshold)


def _distinct_names(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The rules, each name once; else the first repeated name, at the rule that repeats it."""
    names = [rule.name for rule in rules]
    again = next((index for index, name in enumerate(names) if name in names[:index]), None)
    if again is not None:
        raise problem(f"duplicate name {names[again]!r}", key=(again, "name"))
    return rules


@checked.dataclass(frozen=True)
class RulesFile:
    """A rules file, `{rules: [rule, ...]}`; other top-level keys are ignored."""

    # Absent reads as None, so a missing list gets the same hint as a wrong one.
    rules: Annotated[tuple[Rule, ...], AfterValidator(_distinct_names), expect("a list of rules")] = Field(
        None, validate_default=True
    )


def parse_rule(raw: object, key: str) -> Rule:
    """One rule from its YAML mapping; AlertRuleError names the wrong key below `key` (e.g. `rules[2]`)."""
    return validate(Rule, raw, AlertRuleError, where=key)


def load_rules(path: Path | None = None, scenarios: Sequence[str] | None = None) -> tuple[Rule, ...]:
    """The rules of a YAML file (default: the packaged alert_rules.yaml); given the `scenarios` the classifier
    gives (behaviour.scenarios.scenario_labels), a rule's `scenario:` must be one of them (a typo never fired).

    Raises AlertRuleError naming the file, the key and its line (`rules[2].window: ... (line 9)`).
    """
    path = DEFAULT_RULES_PATH if path is None else Path(path)
    raw = read_yaml(path, AlertRuleError, "alert rules")
    if isinstance(raw, Mapping) and "rules" not in raw:  # other keys are ignored: say so when one is a typo of it
        close = difflib.get_close_matches("rules", [str(key) for key in raw], n=1, cutoff=0.6)
        if close:
            raise AlertRuleError(
                f"{path}: {close[0]}: no 'rules' key; did you mean 'rules'? (line {line_of(raw, [close[0]])})"
            )
    try:
        rules = validate(RulesFile, {} if raw is None else raw, AlertRuleError).rules
    except AlertRuleError as exc:
        raise AlertRuleError(f"{path}: {exc}") from None
    for index, rule in enumerate(rules):
        if scenarios is not None and rule.scenario is not None and rule.scenario not in scenarios:
            close = difflib.get_close_matches(rule.scenario, scenarios, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            line = line_of(raw, ["rules", index, "scenario"])
            raise AlertRuleError(
                f"{path}: rules[{index}].scenario: unknown scenario {rule.scenario!r}{hint}; the classifier gives "
                f"{', '.join(scenarios)} (line {line})"
            )
    return rules
