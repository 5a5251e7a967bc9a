"""Rule-based classification of sessions into usage scenarios, and per-scenario summaries.

A rule is a label with keywords (literal text) and patterns (RE2 regular expressions:
no lookarounds or backreferences), matched case-insensitively. A keyword that begins or
ends with a Latin letter or digit must stand as a whole word on that side ("api" does
not match "capital"); CJK keywords match inside text, which has no word boundaries.

A session is scored per rule: FIRST_TURN_WEIGHT when the rule matches its first user
message (what the user came for) plus LATER_TURNS_WEIGHT when it matches any later one.
The best-scoring rule decides the label (the earlier rule on ties, so the file's order is
the priority); the confidence is the winning label's score over the summed scores of
every label with evidence, so 1.0 means no other label matched at all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from chatpulse.behaviour.sessions import event_sessions
from chatpulse.schema import is_error
from chatpulse.stats import group_percentile
from chatpulse.tables import TABLES, table_columns

OTHER = "other"
SCENARIO = "scenario"
SCENARIO_RULE = "scenario_rule"
SCENARIO_CONFIDENCE = "scenario_confidence"
SESSION_ROW = "session_row"
# A session's model when none of its requests names one (or it has none).
UNKNOWN_MODEL = "unknown"
FIRST_TURN_WEIGHT = 2.0
LATER_TURNS_WEIGHT = 1.0
DEFAULT_RULES_FILE = "scenario_rules.yaml"


_LATIN = re.compile(r"[a-z0-9_]", re.IGNORECASE)


def _compile(keywords: tuple[str, ...], patterns: tuple[str, ...]) -> str:
    """One RE2 expression, for lowercased text, matching any keyword or pattern.

    RE2 (through Arrow) runs every session's text in C++, dozens of times faster than
    Python's re. Its \\b is ASCII-only, which is what keywords need: a keyword that
    begins or ends with a Latin letter or digit stands as a whole word on that side,
    while CJK text, which has no word boundaries, matches anywhere.
    """
    by_bounds: dict[tuple[bool, bool], list[str]] = {}
    for keyword in keywords:
        bounds = (bool(_LATIN.match(keyword[0])), bool(_LATIN.match(keyword[-1])))
        by_bounds.setdefault(bounds, []).append(re.escape(keyword.lower()))
    alternatives = [
        (r"\b" if before else "") + f"(?:{'|'.join(words)})" + (r"\b" if after else "")
        for (before, after), words in by_bounds.items()
    ]
    return "|".join([*alternatives, *(f"(?i:{pattern})" for pattern in patterns)])


def _matches(texts: pa.Array, expression: str) -> np.ndarray:
    """Which lowercased texts the RE2 expression matches."""
    return pc.match_substring_regex(texts, expression).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Rule:
    """One scenario label and the keywords and patterns (RE2 syntax) that select it.

    name identifies the rule in sessions.scenario_rule (a label may have several rules);
    it defaults to the label.
    """

    label: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    name: str = ""
    expression: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or self.label)
        object.__setattr__(self, "expression", _compile(self.keywords, self.patterns))


_RULE_KEYS = {"label", "name", "keywords", "patterns"}


def _string_list(value: object, where: str, path: Path) -> tuple[str, ...]:
    """The value as a tuple of non-empty strings, or ValueError naming the file and key."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{path}: {where} must be a list of non-empty strings")
    return tuple(value)


def load_rules(path: Path | None) -> list[Rule]:
    """Rules from a YAML file {rules: [{label, name, keywords: [...], patterns: [...]}]}; the defaults for None.

    Unknown keys are rejected so a misspelt "keyword" fails loudly instead of matching nothing.
    """
    if path is None:
        return list(DEFAULT_RULES)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list) or not document["rules"]:
        raise ValueError(f"{path}: rules must be a non-empty list")
    rules = []
    for number, entry in enumerate(document["rules"]):
        where = f"rules[{number}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {where} must be a mapping")
        if unknown := set(entry) - _RULE_KEYS:
            raise ValueError(f"{path}: {where} has unknown keys {sorted(unknown)}")
        label, name = entry.get("label"), entry.get("name", "")
        if not isinstance(label, str) or not label:
            raise ValueError(f"{path}: {where}.label must be a non-empty string")
        if not isinstance(name, str):
            raise ValueError(f"{path}: {where}.name must be a string")
        keywords = _string_list(entry.get("keywords"), f"{where}.keywords", path)
        patterns = _string_list(entry.get("patterns"), f"{where}.patterns", path)
        if not keywords and not patterns:
            raise ValueError(f"{path}: {where} needs keywords or patterns")
        for index, pattern in enumerate(patterns):
            try:
                _matches(pa.array([""], pa.string()), _compile((), (pattern,)))
            except pa.ArrowInvalid as error:
                raise ValueError(f"{path}: {where}.patterns[{index}] is not a valid RE2 regex: {error}") from error
        rules.append(Rule(label, keywords, patterns, name))
    return rules


DEFAULT_RULES_PATH = Path(__file__).with_name(DEFAULT_RULES_FILE)
DEFAULT_RULES: tuple[Rule, ...] = tuple(load_rules(DEFAULT_RULES_PATH))
DEFAULT_LABELS: tuple[str, ...] = (*dict.fromkeys(rule.label for rule in DEFAULT_RULES), OTHER)


@dataclass(frozen=True)
class Labels:
    """Per text: the scenario, the deciding rule's name (None for OTHER) and the confidence (NaN for OTHER)."""

    scenario: np.ndarray
    rule: np.ndarray
    confidence: np.ndarray


def _lowered(texts: pd.Series) -> pa.Array:
    """Lowercased text, "" for missing, as Arrow (zero-copy from pandas' Arrow-backed strings)."""
    return pc.utf8_lower(pc.fill_null(pa.array(texts, pa.string()), ""))


def _mask(size: int, positions: np.ndarray) -> pa.Array:
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return pa.array(mask)


def _classify(first: pa.Array, later: pa.Array, later_rows: np.ndarray, count: int, rules: Sequence[Rule]) -> Labels:
    """Labels of `count` conversations from their lowercased first turns and later turns (with their conversation)."""
    labels = list(dict.fromkeys(rule.label for rule in rules))
    evidence = np.zeros((count, len(labels)))
    best_score, best_rule = np.zeros(count), np.full(count, -1)
    for number, rule in enumerate(rules):
        score = FIRST_TURN_WEIGHT * _matches(first, rule.expression)
        later_hit = np.bincount(later_rows[_matches(later, rule.expression)], minlength=count) > 0
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
    return Labels(scenarios[best_rule], names[best_rule], confidence)


def classify(text: str, rules: Sequence[Rule], later: Sequence[str] = ()) -> str:
    """Label of one conversation: its first user message and its later ones."""
    later_texts = _lowered(pd.Series(list(later), dtype=object))
    result = _classify(_lowered(pd.Series([text])), later_texts, np.zeros(len(later), dtype=np.int64), 1, rules)
    return str(result.scenario[0])


def session_rows(
    sessions: pd.DataFrame, requests: pd.DataFrame, messages: pd.DataFrame, gap_minutes: float = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Row in sessions (build_sessions of the same frames) of each request's and message's session, -1 when in none.

    Passed on as SESSION_ROW, so every summary groups by integers instead of building
    and hashing a session id string per event.
    """
    codes, ids = event_sessions(requests, messages, gap_minutes)
    row_of_code = np.append(pd.Index(sessions["session_id"].to_numpy(dtype=object)).get_indexer(ids), -1)
    rows = row_of_code[codes]
    return rows[: len(requests)], rows[len(requests) :]


def label_sessions(sessions: pd.DataFrame, messages: pd.DataFrame, rules: Sequence[Rule]) -> pd.DataFrame:
    """SCENARIO, SCENARIO_RULE and SCENARIO_CONFIDENCE of each session (index-aligned with sessions).

    messages carry SESSION_ROW (session_rows). A session's first turn is its earliest user
    message; its later turns are its other user messages, each matched on its own (a
    pattern does not span two messages). A session without user text is OTHER with no
    rule and no confidence.
    """
    user = messages[(messages["role"] == "user").to_numpy(bool) & (messages[SESSION_ROW] >= 0).to_numpy()]
    rows = user[SESSION_ROW].to_numpy()
    order = np.lexsort((user["timestamp"].to_numpy(dtype="datetime64[ns]"), rows))
    rows = rows[order]
    is_first = np.ones(len(rows), dtype=bool)
    is_first[1:] = rows[1:] != rows[:-1]
    texts = _lowered(user["content"]).take(pa.array(order))
    first = pa.array(np.full(len(sessions), "", dtype=object), pa.string())
    first = pc.replace_with_mask(first, _mask(len(sessions), rows[is_first]), texts.filter(pa.array(is_first)))
    result = _classify(first, texts.filter(pa.array(~is_first)), rows[~is_first], len(sessions), rules)
    return pd.DataFrame(
        {
            SCENARIO: pd.Series(result.scenario, index=sessions.index, dtype="str"),
            SCENARIO_RULE: pd.Series(result.rule, index=sessions.index, dtype="str"),
            SCENARIO_CONFIDENCE: result.confidence,
        },
        index=sessions.index,
    )


def session_usage(sessions: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per session (index-aligned): model, errors, latency_mean_ms, latency_max_ms, total_tokens, cost_usd.

    requests carry SESSION_ROW. model is the one that served most of the session's
    requests (alphabetically first on ties), so every session counts under one model;
    UNKNOWN_MODEL when no request of the session names one or it has no requests, so
    scenario_model_daily and feedback_by_model name such sessions alike.
    """
    keyed = requests[(requests[SESSION_ROW] >= 0).to_numpy()]
    rows = keyed[SESSION_ROW].to_numpy()
    model_codes, models = pd.factorize(keyed["model"].fillna(UNKNOWN_MODEL).to_numpy(dtype=object), sort=True)
    pairs = pd.DataFrame({"row": rows, "model": model_codes}).value_counts().reset_index()
    pairs = pairs.sort_values(["row", "count", "model"], ascending=[True, False, True], kind="stable").drop_duplicates(
        "row"
    )
    model = np.full(len(sessions), UNKNOWN_MODEL, dtype=object)
    model[pairs["row"].to_numpy()] = np.asarray(models, dtype=object)[pairs["model"].to_numpy()]
    grouped = pd.DataFrame(
        {
            "errors": is_error(keyed).to_numpy(dtype="int64"),
            "latency_ms": keyed["latency_ms"].to_numpy(dtype="float64"),
            "total_tokens": keyed["total_tokens"].astype("float64").to_numpy(),
            "cost_usd": keyed["cost_usd"].to_numpy(dtype="float64"),
        }
    ).groupby(rows)
    stats = grouped.agg(
        errors=("errors", "sum"),
        latency_mean_ms=("latency_ms", "mean"),
        latency_max_ms=("latency_ms", "max"),
        total_tokens=("total_tokens", "sum"),
        cost_usd=("cost_usd", "sum"),
    ).reindex(range(len(sessions)))
    return pd.DataFrame(
        {
            "model": pd.Series(model, dtype="str").to_numpy(),
            "errors": stats["errors"].fillna(0).to_numpy(dtype="int64"),
            "latency_mean_ms": stats["latency_mean_ms"].to_numpy(dtype="float64"),
            "latency_max_ms": stats["latency_max_ms"].to_numpy(dtype="float64"),
            "total_tokens": stats["total_tokens"].fillna(0).to_numpy(dtype="int64"),
            "cost_usd": stats["cost_usd"].fillna(0.0).to_numpy(dtype="float64"),
        },
        index=sessions.index,
    )


# The summary's counts (0 for a label without sessions): the integer columns the table declares.
_COUNTS = tuple(c.name for c in TABLES["scenario_daily"].columns if c.type.python_type is int)


def scenario_summary(
    sessions: pd.DataFrame, requests: pd.DataFrame, ratings: pd.DataFrame, day: dt.date, by_model: bool = False
) -> pd.DataFrame:
    """Per scenario (and model when by_model): the columns of scenario_daily (scenario_model_daily).

    sessions carries SCENARIO, user_id, turns, duration_s, requests (build_sessions) and
    model (session_usage); requests and ratings (feedback.rate) carry SESSION_ROW and count
    under their session's scenario and model, so rows in no session are left out. share is
    of the day's sessions; error_rate = errors / requests; feedback_coverage = rated
    sessions / sessions; satisfaction is the mean score of the ratings; percentiles are
    chatpulse.stats'. Per scenario there is a row for every DEFAULT_LABELS label
    (zero when unused, so the shape is stable across days), then other labels alphabetically;
    per scenario and model, one row per pair seen.
    """
    keys = [SCENARIO, "model"] if by_model else [SCENARIO]
    group, index = (
        pd.MultiIndex.from_frame(sessions[keys].astype(object)).factorize()
        if by_model
        else pd.factorize(sessions[SCENARIO].to_numpy(dtype=object))
    )

    def grouped(frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> pd.api.typing.DataFrameGroupBy:
        rows = frame[SESSION_ROW].to_numpy()
        inside = rows >= 0
        return pd.DataFrame({name: values[inside] for name, values in columns.items()}).groupby(group[rows[inside]])

    by_session = pd.DataFrame(
        {name: sessions[name].to_numpy() for name in ("requests", "turns", "duration_s")}
        | {"user": pd.factorize(sessions["user_id"].to_numpy(dtype=object))[0]}
    ).groupby(group)
    by_request = grouped(
        requests,
        {
            "latency": requests["latency_ms"].to_numpy(dtype="float64"),
            "errors": is_error(requests).to_numpy(dtype="int64"),
            **{
                c: requests[c].astype("float64").to_numpy()
                for c in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
            "cost_usd": requests["cost_usd"].to_numpy(dtype="float64"),
        },
    )
    by_rating = grouped(
        ratings, {"score": ratings["score"].to_numpy(dtype="float64"), "row": ratings[SESSION_ROW].to_numpy()}
    )
    table = pd.DataFrame(
        {
            "sessions": by_session.size(),
            "users": by_session["user"].nunique(),
            "requests": by_session["requests"].sum(),
            "turns": by_session["turns"].sum(),
            "duration_p50_s": group_percentile(by_session["duration_s"], 50),
            "duration_p95_s": group_percentile(by_session["duration_s"], 95),
            "latency_p50_ms": group_percentile(by_request["latency"], 50),
            "latency_p95_ms": group_percentile(by_request["latency"], 95),
            **{
                c: by_request[c].sum()
                for c in ("errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
            },
            "rated_sessions": by_rating["row"].nunique(),
            "ratings": by_rating.size(),
            "satisfaction": by_rating["score"].mean(),
        }
    ).reindex(range(len(index)))
    table.index = index
    if by_model:
        table = table.sort_index()
    else:
        table = table.reindex([*DEFAULT_LABELS, *sorted(set(index) - set(DEFAULT_LABELS))])
    table[list(_COUNTS)] = table[list(_COUNTS)].fillna(0).astype("int64")
    table["cost_usd"] = table["cost_usd"].fillna(0.0)
    table["share"] = table["sessions"] / len(sessions) if len(sessions) else np.nan
    table["error_rate"] = (table["errors"] / table["requests"].where(table["requests"] > 0)).astype("float64")
    table["feedback_coverage"] = (table["rated_sessions"] / table["sessions"].where(table["sessions"] > 0)).astype(
        "float64"
    )
    table = table.rename_axis(keys).reset_index()
    table.insert(0, "day", day.isoformat())
    for key in keys:
        table[key] = table[key].astype("str")
    return table[list(table_columns("scenario_model_daily" if by_model else "scenario_daily"))]
