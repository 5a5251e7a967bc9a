"""Labelled prompts: the shipped training corpus, a user's JSONL files, and how well labels match them.

A JSONL file has one object per line, `{"prompt": "...", "label": "coding"}`; `label` may
be a list of labels any of which counts as right (for a source category that spans two
scenarios). Blank lines are skipped. Mistakes raise LabelledError naming the file, the line
and the field.

Scores: a prediction is correct when it is one of the row's labels. For per-label figures
each row has one true label, the prediction when it was correct, else the row's first
label; precision of a label is correct predictions of it over its predictions, recall is
correct predictions over the rows whose true label it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pandas as pd

from chatpulse.behaviour.scenario_rules import LABEL_CHARS, too_long
from chatpulse.byteorder import as_utf8
from chatpulse.yamlfile import read_yaml

DEFAULT_CORPUS_PATH = Path(__file__).with_name("scenario_corpus")
SHOWN_PROBLEMS = 5  # bad lines named in one error; the rest are counted


class LabelledError(ValueError):
    """A labelled-prompt file is malformed; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Labelled:
    """Prompts with their accepted labels (a tuple each, the first the main one) and, if known, their language."""

    prompts: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    languages: tuple[str | None, ...]


def read_corpus(path: Path = DEFAULT_CORPUS_PATH) -> Labelled:
    """A corpus YAML file, `{label: {language: [prompt, ...]}}`, in file order; or a folder of them, read in
    name order (the shipped corpus has one file per language, so each can be extended on its own)."""
    if not path.is_dir():
        return _read_corpus_file(path)
    parts = [_read_corpus_file(file) for file in sorted(path.glob("*.yaml"))]
    if not parts:
        raise LabelledError(f"{path}: no corpus files (*.yaml)")
    return Labelled(
        tuple(prompt for part in parts for prompt in part.prompts),
        tuple(labels for part in parts for labels in part.labels),
        tuple(language for part in parts for language in part.languages),
    )


def _read_corpus_file(path: Path) -> Labelled:
    raw = read_yaml(path, LabelledError, "scenario corpus")
    prompts, labels, languages = [], [], []
    if not isinstance(raw, dict):
        raise LabelledError(f"{path}: expected a mapping of labels to languages to prompts")
    for label, by_language in raw.items():
        if not isinstance(by_language, dict):
            raise LabelledError(f"{path}: {label}: expected a mapping of languages to prompts")
        for language, items in by_language.items():
            if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
                raise LabelledError(f"{path}: {label}.{language}: expected a list of non-empty strings")
            prompts += items
            labels += [(str(label),)] * len(items)
            languages += [str(language)] * len(items)
    return Labelled(tuple(prompts), tuple(labels), tuple(languages))


def _labelled_line(line: bytes, known: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """One line's prompt and accepted labels; LabelledError says what is wrong with it (without its place)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise LabelledError(f"not a JSON object: {error}") from None
    if not isinstance(row, dict):
        raise LabelledError("expected a JSON object with prompt and label")
    prompt, label = row.get("prompt"), row.get("label")
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabelledError("prompt: expected a non-empty string")
    accepted = (label,) if isinstance(label, str) else tuple(label) if isinstance(label, list) else ()
    if not accepted or not all(isinstance(item, str) and item for item in accepted):
        raise LabelledError("label: expected a label or a non-empty list of labels")
    if reasons := [reason for item in accepted if (reason := too_long(item, LABEL_CHARS, "scenario"))]:
        raise LabelledError(f"label: {reasons[0]}")
    if known is not None and (unknown := [item for item in accepted if item not in known]):
        raise LabelledError(f"label: {unknown[0]!r} is not a configured label ({', '.join(known)})")
    return prompt, accepted


def read_jsonl(path: Path, known: Sequence[str] | None = None) -> Labelled:
    """The labelled prompts of a JSONL file; with `known`, every label must be one of them.

    Raises LabelledError naming the file and line of each bad line (`data.jsonl:3: label: ...`; the first
    SHOWN_PROBLEMS, then how many more), also for a label longer than the warehouse's scenario columns hold
    (LABEL_CHARS). A byte order mark and UTF-16 or
    UTF-32 text (with its mark) are read as the landing folder's files are (chatpulse.byteorder).
    """
    try:
        lines = as_utf8(path.read_bytes()).splitlines()
    except OSError as error:
        raise LabelledError(f"cannot read {path}: {error.strerror}") from error
    except UnicodeDecodeError:
        raise LabelledError(f"{path}: a UTF-16 or UTF-32 file cut in the middle of a character") from None
    prompts, labels, problems = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            prompt, accepted = _labelled_line(line, known)
        except LabelledError as error:  # every bad line is said at once, not one fix and rerun each
            problems.append(f"{path}:{number}: {error}")
            continue
        prompts.append(prompt)
        labels.append(accepted)
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        raise LabelledError("; ".join(problems[:SHOWN_PROBLEMS]) + (f" (and {more} more lines)" if more > 0 else ""))
    if not prompts:
        raise LabelledError(f"{path}: no labelled prompts")
    return Labelled(tuple(prompts), tuple(labels), (None,) * len(prompts))


@dataclass(frozen=True)
class Evaluation:
    """How predictions match labelled prompts: the count, accuracy, per label precision, recall and support
    (rows whose true label it is), and the confusion table (true label by predicted label, counts)."""

    n: int
    accuracy: float
    per_label: pd.DataFrame
    confusion: pd.DataFrame

    def summary(self) -> dict[str, object]:
        """{"n", "accuracy", "per_label": {label: {"precision", "recall", "support"}}}; NaN shows as None."""
        per_label = self.per_label.astype(object).where(self.per_label.notna(), None)
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "per_label": {label: row.to_dict() for label, row in per_label.iterrows()},
        }


def evaluate(labels: Sequence[Sequence[str]], predicted: Sequence[str]) -> Evaluation:
    """Score predictions against accepted labels (see the module docstring)."""
    correct = [guess in accepted for accepted, guess in zip(labels, predicted, strict=True)]
    truth = [guess if right else accepted[0] for accepted, guess, right in zip(labels, predicted, correct, strict=True)]
    frame = pd.DataFrame({"truth": truth, "predicted": list(predicted), "correct": correct})
    names = sorted(set(truth) | set(predicted))
    hits = frame[frame["correct"]].groupby("predicted").size().reindex(names, fill_value=0)
    guesses = frame.groupby("predicted").size().reindex(names, fill_value=0)
    support = frame.groupby("truth").size().reindex(names, fill_value=0)
    per_label = pd.DataFrame(
        {
            "precision": (hits / guesses.where(guesses > 0)).astype("float64"),
            "recall": (hits / support.where(support > 0)).astype("float64"),
            "support": support.astype("int64"),
        }
    )
    confusion = pd.crosstab(frame["truth"], frame["predicted"]).reindex(index=names, columns=names, fill_value=0)
    return Evaluation(len(frame), float(frame["correct"].mean()) if len(frame) else float("nan"), per_label, confusion)


def report(evaluation: Evaluation) -> str:
    """The per-label table and the confusion table as text, for a terminal."""
    per_label = evaluation.per_label.copy()
    for column in ("precision", "recall"):
        per_label[column] = per_label[column].map(lambda value: "-" if pd.isna(value) else f"{value:.3f}")
    confusion = evaluation.confusion.rename_axis(index="true \\ predicted", columns=None)
    return (
        f"{evaluation.n} prompts, accuracy {evaluation.accuracy:.3f}\n\n"
        f"{per_label.rename_axis('label').to_string()}\n\n{confusion.to_string()}"
    )
