"""Alert rules: what a user writes in alert_rules.yaml, parsed and checked into `Rule`s.

Errors name the file and the key path (`rules[2].window`), so a typo never passes silently.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from chatpulse import checks

DEFAULT_RULES_PATH = Path(__file__).with_name("alert_rules.yaml")
WINDOWS = {"5m": 5, "1h": 60, "1d": 1440}
METRICS = (
    "requests_per_minute",
    "requests_per_hour",
    "latency_p95_ms",
    "error_rate",
    "cost_per_day",
    "tokens",
    "quarantine_rate",
)
DAILY_ONLY = {"cost_per_day", "quarantine_rate"}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SEVERITIES = ("warn", "error")
BASELINE_METHODS = ("mad", "ratio")


class AlertRuleError(ValueError):
    """A rules file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Baseline:
    """Compare a window with the same window on the previous `days` days."""

    method: str = "mad"
    days: int = 7
    min_days: int = 3


@dataclass(frozen=True)
class Rule:
    """One alert rule: fires when `metric` over a `window` compares true against `threshold`.

    With a baseline, the compared value is the robust z-score (mad) or the ratio to the
    baseline median (ratio) instead of the metric itself.
    """

    name: str
    metric: str
    comparison: str
    threshold: float
    window: str = "1h"
    min_requests: int = 0
    severity: str = "warn"
    model: str | None = None
    scenario: str | None = None
    baseline: Baseline | None = None

    def breaches(self, scores: pd.Series) -> pd.Series:
        """Which scores cross the threshold; a missing score (no baseline, no requests) never does."""
        scores = scores.astype("float64")
        return np.isfinite(scores) & COMPARISONS[self.comparison](scores, self.threshold)


_expect = partial(checks.expect, error=AlertRuleError)
_choice = partial(checks.choice, error=AlertRuleError)
_known = partial(checks.known_keys, error=AlertRuleError)


def _baseline(raw: Any, key: str) -> Baseline:
    _expect(raw, dict, key, "a mapping with method (mad or ratio)")
    _known(raw, {"method", "days", "min_days"}, key)
    days = _expect(raw.get("days", 7), int, f"{key}.days", "a whole number of days, at least 1", valid=lambda n: n >= 1)
    min_days = _expect(raw.get("min_days", 3), int, f"{key}.min_days", f"1 to {days}", valid=lambda n: 1 <= n <= days)
    return Baseline(_choice(raw.get("method", "mad"), BASELINE_METHODS, f"{key}.method"), days, min_days)


def parse_rule(raw: Any, key: str) -> Rule:
    """One rule from its YAML mapping, checking every key."""
    _expect(raw, dict, key, "a mapping")
    known = {"name", "metric", "comparison", "threshold", "window", "min_requests", "severity", "model", "scenario"}
    _known(raw, known | {"baseline"}, key)
    checks.required_keys(raw, ("name", "metric", "comparison", "threshold"), key, AlertRuleError)
    metric = _choice(raw["metric"], METRICS, f"{key}.metric")
    window = _choice(str(raw.get("window", "1h")), WINDOWS, f"{key}.window")
    scenario = _expect(raw.get("scenario"), (str, type(None)), f"{key}.scenario", "a scenario name")
    model = _expect(raw.get("model"), (str, type(None)), f"{key}.model", "a model name")
    if (metric in DAILY_ONLY or scenario is not None) and window != "1d":
        raise AlertRuleError(f"{key}.window: {metric}{' per scenario' if scenario else ''} needs window 1d")
    if metric == "quarantine_rate" and (model or scenario):
        raise AlertRuleError(f"{key}.model: quarantine_rate cannot be filtered")
    if model and scenario:
        raise AlertRuleError(f"{key}.scenario: filter on model or scenario, not both")
    min_requests = _expect(
        raw.get("min_requests", 0), int, f"{key}.min_requests", "a whole number", valid=lambda n: n >= 0
    )
    return Rule(
        name=_expect(raw["name"], str, f"{key}.name", "a string"),
        metric=metric,
        comparison=_choice(raw["comparison"], COMPARISONS, f"{key}.comparison"),
        threshold=float(_expect(raw["threshold"], (int, float), f"{key}.threshold", "a number")),
        window=window,
        min_requests=min_requests,
        severity=_choice(raw.get("severity", "warn"), SEVERITIES, f"{key}.severity"),
        model=model,
        scenario=scenario,
        baseline=None if raw.get("baseline") is None else _baseline(raw["baseline"], f"{key}.baseline"),
    )


def load_rules(path: Path | None = None) -> tuple[Rule, ...]:
    """The rules of a YAML file (default: the packaged alert_rules.yaml); errors name the file and key."""
    path = DEFAULT_RULES_PATH if path is None else Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise AlertRuleError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise AlertRuleError(f"{path}: not valid YAML: {exc}") from exc
    try:
        rules = _expect(raw.get("rules") if isinstance(raw, dict) else None, list, "rules", "a list of rules")
        parsed = tuple(parse_rule(item, f"rules[{i}]") for i, item in enumerate(rules))
        names = [rule.name for rule in parsed]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise AlertRuleError(f"rules: duplicate name {duplicates[0]!r}")
    except AlertRuleError as exc:
        raise AlertRuleError(f"{path}: {exc}") from exc
    return parsed
