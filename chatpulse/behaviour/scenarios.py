"""Usage scenarios of sessions: keyword rules, example prompts and a learned model; per-scenario summaries.

A conversation's label comes from, in this order of precedence:
1. an example prompt of the rules file that its first user message closely resembles
   (cosine similarity of character n-gram counts at least EXAMPLE_SIMILARITY);
2. the best matching rule, when its label is one the model does not know (a user's own label),
   or when it is an `over_model` rule that matched the first message;
3. the model (chatpulse.behaviour.scenario_model) on its first user message, when at least
   MODEL_TRUST sure;
4. the best matching rule (chatpulse.behaviour.scenario_rules), when any matched;
5. the model, however unsure: a prompt in a language the rules do not cover still gets a
   learned label rather than OTHER.
SCENARIO_RULE records which: the rule's name, `example`, or `model:` and the n-grams
that weighed most for the label. SCENARIO_CONFIDENCE is the rule's confidence, the
example's similarity or the model's probability. Without a model, rules alone decide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from chatpulse.behaviour.language import UNDETERMINED, detect_languages
from chatpulse.behaviour.scenario_model import ModelFileError, ScenarioModel, model_labels, nearest, scenario_model
from chatpulse.behaviour.scenario_rules import (
    DEFAULT_RULES,
    LABEL_CHARS,
    OTHER,
    RULE_CHARS,
    Labels,
    Rule,
    load_rules,
    score_rules,
    too_long,
)
from chatpulse.behaviour.sessions import event_sessions
from chatpulse.schema import is_error
from chatpulse.stats import group_percentile
from chatpulse.tables import TABLES, table_columns

SCENARIO = "scenario"
SCENARIO_RULE = "scenario_rule"
SCENARIO_CONFIDENCE = "scenario_confidence"
LANGUAGE = "language"
SESSION_ROW = "session_row"
# A session's model when none of its requests names one (or it has none).
UNKNOWN_MODEL = "unknown"
MODEL_TRUST = 0.4  # a model less sure than this yields to a matching rule
EXAMPLE_SIMILARITY = 0.5  # cosine from which a prompt counts as one of the rules file's examples
DEFAULT_LABELS: tuple[str, ...] = (*dict.fromkeys(rule.label for rule in DEFAULT_RULES), OTHER)


def _check_labels(path: Path, labels: Sequence[str]) -> None:
    """ModelFileError when a label of the model at `path` is longer than the warehouse's scenario columns hold
    (a model written before labels were checked)."""
    for label in labels:
        if (reason := too_long(label, LABEL_CHARS, "scenario")) is not None:
            raise ModelFileError(f"{path}: a label of the model has {reason}; retrain it")


def read_model(path: Path | None) -> ScenarioModel:
    """The model at `path` (a user's), or the shipped one for None; ModelFileError naming the file when it is
    not a model this version reads (scenario_model.load_model) or has a label too long for the warehouse."""
    model = scenario_model(path)
    if path is not None:
        _check_labels(path, model.labels)
    return model


def check_scenario_files(rules: Path | None, model: Path | None) -> None:
    """Read the configured rules file and check the model file, so that a mistake in
    either fails a run before its first step: ScenarioRuleError or ModelFileError, one line naming the file.
    The model file is checked from its small entries only (scenario_model.model_labels)."""
    load_rules(rules)
    if model is not None:
        _check_labels(model, model_labels(model))


def scenario_labels(rules: Path | None, model: Path | None) -> tuple[str, ...]:
    """Every label the configured classifier can give: the built-in ones, then the rules file's and the model
    file's (read from its small entries), each once. Raises ScenarioRuleError or ModelFileError naming the file,
    as check_scenario_files does."""
    labels = [*DEFAULT_LABELS, *(rule.label for rule in load_rules(rules))]
    if model is not None:
        labels += model_labels(model)
    return tuple(dict.fromkeys(labels))


def _texts(texts: pd.Series | Sequence[str | None]) -> pa.Array:
    """Text as Arrow strings, "" for missing (zero-copy from pandas' Arrow-backed strings)."""
    return pc.fill_null(pa.array(texts, pa.string()), "")


def _mask(size: int, positions: np.ndarray) -> pa.Array:
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return pa.array(mask)


def _within(texts: pa.Array, limit: int) -> pa.Array:
    """Texts of more than `limit` characters cut to `limit`, the last one "…".

    A model's explanation names n-grams of its training prompts, up to 24 characters each (a
    user's model: long words), so three can outgrow sessions.scenario_rule, which PostgreSQL
    would refuse.
    """
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(texts, 0, limit - 1), "…", "")
    return pc.if_else(pc.greater(pc.utf8_length(texts), limit), cut, texts)


def decide(
    first: pa.Array,
    later: pa.Array,
    later_rows: np.ndarray,
    rules: Sequence[Rule],
    model: ScenarioModel | None = None,
) -> Labels:
    """Labels of len(first) conversations from their first user messages and their later ones (with the row of
    the conversation each belongs to), by the precedence in this module's docstring."""
    result = score_rules(pc.utf8_lower(first), pc.utf8_lower(later), later_rows, rules)
    scenario, rule, confidence = result.scenario.copy(), result.rule.copy(), result.confidence.copy()
    text = np.flatnonzero(pc.utf8_length(pc.utf8_trim_whitespace(first)).to_numpy(zero_copy_only=False) > 0)
    matched = ~pd.isna(rule[text])
    if model is not None and len(text):
        # Each distinct prompt once: logs repeat prompts (templates, retries, "hi").
        codes, distinct = pd.factorize(first.take(pa.array(text)).to_numpy(zero_copy_only=False))
        predicted = model.predict(pa.array(np.asarray(distinct, dtype=object), pa.string()))
        probability, label = predicted.probability[codes], predicted.label[codes]
        custom = matched & ~np.isin(scenario[text], model.labels)
        use = ~custom & ~result.over_model[text] & (~matched | (probability >= MODEL_TRUST))
        why = _within(
            pc.utf8_rtrim(pc.binary_join_element_wise("model: ", pc.fill_null(predicted.features, ""), ""), " "),
            RULE_CHARS,
        )
        at = text[use]
        scenario[at] = np.asarray(model.labels, dtype=object)[label[use]]
        rule[at] = why.to_numpy(zero_copy_only=False)[codes][use]
        confidence[at] = probability[use]
    examples = [(rule_.label, example) for rule_ in rules for example in rule_.examples]
    if examples and len(text):
        best, similarity = nearest(first.take(pa.array(text)), [example for _, example in examples])
        close = similarity >= EXAMPLE_SIMILARITY
        at = text[close]
        scenario[at] = np.asarray([label for label, _ in examples], dtype=object)[best[close]]
        rule[at], confidence[at] = "example", similarity[close]
    return Labels(scenario, rule, confidence)


def classify(text: str, rules: Sequence[Rule], later: Sequence[str] = (), model: ScenarioModel | None = None) -> str:
    """Label of one conversation: its first user message and its later ones."""
    result = decide(_texts([text]), _texts(list(later)), np.zeros(len(later), dtype=np.int64), rules, model)
    return str(result.scenario[0])


def classify_prompts(prompts: Sequence[str | None], rules: Sequence[Rule], model: ScenarioModel | None) -> Labels:
    """Labels of prompts, each as a one-turn conversation."""
    return decide(_texts(prompts), _texts([]), np.zeros(0, dtype=np.int64), rules, model)


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


def user_texts_only(messages: pd.DataFrame) -> None:
    """Clears, in place, the content of every message but the users' (label_sessions reads user turns only): the
    answers hold most of a day's text (0.19 of 0.37 GB at 4M requests), and the frame is held all through a step."""
    messages["content"] = messages["content"].where((messages["role"] == "user").to_numpy(bool))


def label_sessions(
    sessions: pd.DataFrame, messages: pd.DataFrame, rules: Sequence[Rule], model: ScenarioModel | None = None
) -> pd.DataFrame:
    """SCENARIO, SCENARIO_RULE, SCENARIO_CONFIDENCE and LANGUAGE of each session (index-aligned with sessions).

    messages carry SESSION_ROW (session_rows). A session's first turn is its earliest user
    message; its later turns are its other user messages, each matched on its own (a
    pattern does not span two messages). A session without user text is OTHER with no
    rule and no confidence, and no language; LANGUAGE is that of the first turn
    (chatpulse.behaviour.language).
    """
    # The user messages' texts are taken once, in order; no copy of their other columns (at 4M requests a
    # frame of the user messages and a second take of their texts cost the step 0.5 GB).
    user = np.flatnonzero((messages["role"] == "user").to_numpy(bool) & (messages[SESSION_ROW] >= 0).to_numpy())
    rows = messages[SESSION_ROW].to_numpy()[user]
    order = np.lexsort((messages["timestamp"].to_numpy(dtype="datetime64[ns]")[user], rows))
    rows = rows[order]
    is_first = np.ones(len(rows), dtype=bool)
    is_first[1:] = rows[1:] != rows[:-1]
    texts = _texts(messages["content"].take(user[order]))
    first = pa.array(np.full(len(sessions), "", dtype=object), pa.string())
    first = pc.replace_with_mask(first, _mask(len(sessions), rows[is_first]), texts.filter(pa.array(is_first)))
    result = decide(first, texts.filter(pa.array(~is_first)), rows[~is_first], rules, model)
    return pd.DataFrame(
        {
            SCENARIO: pd.Series(result.scenario, index=sessions.index, dtype="str"),
            SCENARIO_RULE: pd.Series(result.rule, index=sessions.index, dtype="str"),
            SCENARIO_CONFIDENCE: result.confidence,
            LANGUAGE: pd.Series(detect_languages(first), index=sessions.index, dtype="str"),
        },
        index=sessions.index,
    )


def session_usage(sessions: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Per session (index-aligned): model, errors, latency_mean_ms, latency_max_ms, total_tokens, cost_usd.

    cost_usd sums the logged costs of the session's requests, NaN when none logged one.

    requests carry SESSION_ROW. model is the one that served most of the session's
    requests (alphabetically first on ties), so every session counts under one model;
    UNKNOWN_MODEL when no request of the session names one or it has no requests, so
    scenario_model_daily and feedback_by_model name such sessions alike.
    """
    keyed = requests[(requests[SESSION_ROW] >= 0).to_numpy()]
    rows = keyed[SESSION_ROW].to_numpy()
    # As objects first: a coded model (schema.CODED) cannot take UNKNOWN_MODEL, which is none of its categories.
    model_codes, models = pd.factorize(keyed["model"].astype(object).fillna(UNKNOWN_MODEL).to_numpy(), sort=True)
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
    )
    # NaN, not $0, for a session none of whose requests logged a cost.
    stats["cost_usd"] = grouped["cost_usd"].sum(min_count=1)
    stats = stats.reindex(range(len(sessions)))
    return pd.DataFrame(
        {
            "model": pd.Series(model, dtype="str").to_numpy(),
            "errors": stats["errors"].fillna(0).to_numpy(dtype="int64"),
            "latency_mean_ms": stats["latency_mean_ms"].to_numpy(dtype="float64"),
            "latency_max_ms": stats["latency_max_ms"].to_numpy(dtype="float64"),
            "total_tokens": stats["total_tokens"].fillna(0).to_numpy(dtype="int64"),
            "cost_usd": stats["cost_usd"].to_numpy(dtype="float64"),
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

    users = pd.factorize(sessions["user_id"].to_numpy(dtype=object))[0]
    by_session = pd.DataFrame(
        {name: sessions[name].to_numpy() for name in ("requests", "turns", "duration_s")}
        # A session with no user id is nobody's: NaN, which nunique leaves out (factorize's -1 would count as one user).
        | {"user": np.where(users >= 0, users, np.nan)}
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
            **{c: by_request[c].sum() for c in ("errors", "prompt_tokens", "completion_tokens", "total_tokens")},
            "cost_usd": by_request["cost_usd"].sum(min_count=1),  # NaN, not $0, where no request logged a cost
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


def scenario_languages(sessions: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The columns of scenario_language_daily: sessions per language and scenario, and their share of the
    language's sessions, one row per pair seen (sessions without a LANGUAGE count under UNDETERMINED, with
    those whose language could not be told), languages by their sessions (most first), then scenarios
    likewise."""
    frame = pd.DataFrame(
        {
            LANGUAGE: sessions[LANGUAGE].astype(object).fillna(UNDETERMINED).to_numpy(dtype=object),
            SCENARIO: sessions[SCENARIO].to_numpy(dtype=object),
        }
    )
    table = frame.value_counts().rename("sessions").reset_index()
    per_language = table.groupby(LANGUAGE)["sessions"].transform("sum")
    table["share"] = table["sessions"] / per_language
    table = table.assign(total=per_language).sort_values(
        ["total", LANGUAGE, "sessions", SCENARIO], ascending=[False, True, False, True], kind="stable"
    )
    table.insert(0, "day", day.isoformat())
    table["sessions"] = table["sessions"].astype("int64")
    for key in (LANGUAGE, SCENARIO):
        table[key] = table[key].astype("str")
    return table[list(table_columns("scenario_language_daily"))].reset_index(drop=True)
