"""`chatpulse scenarios`: measure the scenario classifier on labelled prompts, and fit its model on them.

    chatpulse scenarios evaluate FILE   per-label precision and recall, the confusion table, one JSON line
    chatpulse scenarios train [FILE]    fit the learned model into the file `scenario_model` points at

Both use the configured rules (`scenario_rules`) and, for evaluate, the configured model
(`scenario_model`, else the shipped one). FILE is JSONL, `{"prompt": ..., "label": ...}` a line.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from chatpulse.behaviour.labelled import Labelled, LabelledError, evaluate, read_corpus, read_jsonl, report
from chatpulse.behaviour.scenario_model import ModelFileError, fit
from chatpulse.behaviour.scenario_rules import OTHER, ScenarioRuleError, load_rules
from chatpulse.behaviour.scenarios import classify_prompts, read_model
from chatpulse.config import Settings
from chatpulse.pipelines.cli_errors import CliError

LABELLED_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUTWEIGHED = 10  # a label of the user's with under a tenth of a corpus label's prompts is seldom chosen
LOOK_ALIKE = 0.85  # difflib ratio from which a new label reads as a typo of another ('biling', 'billing': 0.92)


def _settings(ctx: click.Context) -> Settings:
    """The configuration the root command was given (its Invocation, kept in the root context)."""
    return ctx.find_root().obj.settings()


@click.group(name="scenarios")
def scenarios() -> None:
    """Measure or retrain the usage-scenario classifier."""


@scenarios.command(name="evaluate")
@click.argument("file", type=LABELLED_FILE)
@click.pass_context
def evaluate_command(ctx: click.Context, file: Path) -> None:
    """Classify each prompt of FILE as a one-turn session and score the labels.

    FILE has one JSON object a line: {"prompt": "...", "label": "coding"}, where label is a
    configured label or a list of labels any of which counts as right. Prints per-label
    precision and recall and the confusion table, then one JSON line
    {"n", "accuracy", "per_label"}.
    """
    settings = _settings(ctx)
    try:
        rules = load_rules(settings.scenario_rules)
        model = read_model(settings.scenario_model)
        known = sorted({rule.label for rule in rules} | set(model.labels) | {OTHER})
        labelled = read_jsonl(file, known)
    except (ScenarioRuleError, ModelFileError, LabelledError) as error:
        raise CliError(str(error)) from None
    predicted = classify_prompts(labelled.prompts, rules, model).scenario
    result = evaluate(labelled.labels, [str(label) for label in predicted])
    click.echo(report(result))
    click.echo(json.dumps(result.summary(), ensure_ascii=False))


@scenarios.command(name="train")
@click.argument("file", type=LABELLED_FILE, required=False)
@click.option(
    "--base/--no-base",
    default=True,
    help="Also fit on the shipped corpus (its labels stay known); --no-base fits on FILE's prompts alone.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="the configured scenario_model",
    help="Where to write the model (.npz).",
)
@click.pass_context
def train_command(ctx: click.Context, file: Path | None, base: bool, out: Path | None) -> None:
    """Fit the scenario model on FILE's labelled prompts and the rules' example prompts.

    FILE has one JSON object a line, {"prompt": "...", "label": "billing"} (a list of
    labels trains on the first). The fit is deterministic: the same prompts give the same
    model. Without FILE, rebuilds the shipped model from the shipped corpus.
    """
    settings = _settings(ctx)
    target = out or settings.scenario_model
    if target is None:
        raise CliError("no model file: set scenario_model in the configuration or give --out")
    try:
        rules = load_rules(settings.scenario_rules)
        parts = [read_corpus()] if base else []
        if file is not None:
            parts.append(read_jsonl(file))
    except (ScenarioRuleError, LabelledError) as error:
        raise CliError(str(error)) from None
    examples = [(example, rule.label) for rule in rules for example in rule.examples]
    prompts = [prompt for part in parts for prompt in part.prompts] + [example for example, _ in examples]
    labels = [accepted[0] for part in parts for accepted in part.labels] + [label for _, label in examples]
    try:
        model = fit(prompts, labels)
    except ValueError as error:
        raise CliError(str(error)) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    fitted = Labelled(tuple(prompts), tuple((label,) for label in labels), (None,) * len(prompts))
    on_training = evaluate(fitted.labels, [model.labels[index] for index in model.predict(list(prompts)).label])
    click.echo(
        f"fitted {len(model.labels)} labels on {len(prompts):,} prompts ({len(model.columns):,} n-gram columns); "
        f"accuracy on the prompts it was fitted on {on_training.accuracy:.3f} (measure it on others with "
        f"`chatpulse scenarios evaluate`); wrote {target}"
    )
    counts = Counter(labels)
    click.echo("labels: " + ", ".join(f"{label} {counts[label]:,}" for label in model.labels))
    for warning in look_alike_labels(counts, {rule.label for rule in rules} | {OTHER}):
        click.echo(f"warning: {warning}", err=True)
    if base and file is not None and (few := outweighed(counts, parts[0].labels, parts[1].labels)):
        click.echo(
            f"warning: your label{'s' if len(few) > 1 else ''} {', '.join(few)} "
            f"{'have' if len(few) > 1 else 'has'} under a tenth of the prompts of the corpus's labels: the model will "
            "seldom choose them over the built-in ones (README: Your own taxonomy). With labels of your own "
            "only, train with --no-base.",
            err=True,
        )


def outweighed(counts: Mapping[str, int], corpus: Sequence[Sequence[str]], own: Sequence[Sequence[str]]) -> list[str]:
    """The labels of the user's file (`own`, each row's accepted labels; the first is trained on) that the corpus
    (`corpus`, likewise) has none of, with under 1/OUTWEIGHED of the median prompts of a corpus label (`counts`:
    every label's prompts as fitted)."""
    built_in = {row[0] for row in corpus}
    theirs = sorted(counts[label] for label in built_in)
    median = theirs[len(theirs) // 2]
    return sorted(
        {row[0] for row in own} - built_in - {label for label in counts if counts[label] * OUTWEIGHED >= median}
    )


def look_alike_labels(counts: Mapping[str, int], configured: set[str]) -> list[str]:
    """Labels that look like a typo of another: one in no rule (nor `other`) that differs from a label with
    more prompts, or from a configured one, only by case and spaces or by a letter or two (difflib ratio of
    at least LOOK_ALIKE). A label of a model alone is allowed, so each is said, not refused."""
    found = []
    for label, count in sorted(counts.items()):
        if label in configured:
            continue
        others = [other for other in (*configured, *counts) if other != label]
        for other in sorted(others, key=lambda name: (name not in configured, -counts.get(name, 0), name)):
            if other in configured or counts[other] > count:
                same = other.casefold().strip() == label.casefold().strip()
                if same or difflib.SequenceMatcher(None, label, other).ratio() >= LOOK_ALIKE:
                    found.append(
                        f"label {label!r} ({count:,} prompt{'' if count == 1 else 's'}) looks like {other!r}: a typo? "
                        "(it is now a label of the model)"
                    )
                    break
    return found
