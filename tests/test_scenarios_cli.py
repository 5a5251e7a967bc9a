"""`chatpulse scenarios evaluate` and `train` on small JSONL files built here, through click's CliRunner."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatpulse.behaviour.labelled import LabelledError, evaluate, read_jsonl
from chatpulse.behaviour.scenario_model import load_model
from chatpulse.pipelines.cli import cli
from chatpulse.pipelines.scenarios_cli import outweighed

from fixtures import postgres_widths

TRAIN = [
    ("my cat keeps meowing at night", "cats"),
    ("what food do cats like", "cats"),
    ("how to brush a cat", "cats"),
    ("the cat scratched the sofa", "cats"),
    ("my dog keeps barking at night", "dogs"),
    ("what food do dogs like", "dogs"),
    ("how to walk a dog", "dogs"),
    ("the dog chewed the shoe", "dogs"),
]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """A configuration whose rules add a keyword label `billing` and an example label `greeting`, and whose
    model file is tmp_path / pets.npz."""
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - label: billing\n"
        "    keywords: [invoice]\n"
        "  - label: greeting\n"
        "    examples: ['good morning everyone, happy monday']\n",
        encoding="utf-8",
    )
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: {tmp_path / 'home'}\nscenario_rules: rules.yaml\nscenario_model: pets.npz\n", encoding="utf-8"
    )
    return config


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), "scenarios", *args], catch_exceptions=False)


def test_train_then_evaluate_a_taxonomy_of_ones_own(setup: Path, tmp_path: Path):
    trained = _run(
        setup,
        "train",
        str(_jsonl(tmp_path / "train.jsonl", [{"prompt": prompt, "label": label} for prompt, label in TRAIN])),
        "--no-base",
    )
    assert trained.exit_code == 0, trained.output
    assert "fitted 3 labels on 9 prompts" in trained.output  # cats, dogs and the rules' example label greeting
    model = load_model(tmp_path / "pets.npz")
    assert model.labels == ("cats", "dogs", "greeting")
    rows = [
        {"prompt": "my cat meowing again", "label": "cats"},
        {"prompt": "what food do dogs like best", "label": "dogs"},
        {"prompt": "please resend the invoice", "label": "billing"},  # the keyword rule: a label the model lacks
        {"prompt": "Good morning everyone, happy Monday!", "label": "greeting"},  # close to the rules' example
        {"prompt": "the dog chewed my cat toy", "label": ["cats", "billing"]},  # the model says dogs: wrong
    ]
    result = _run(setup, "evaluate", str(_jsonl(tmp_path / "eval.jsonl", rows)))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["n"] == 5 and summary["accuracy"] == pytest.approx(4 / 5)
    # Row 5 counts as a cats row predicted dogs: dogs precision 1/2, cats recall 1/2.
    assert summary["per_label"]["dogs"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert summary["per_label"]["cats"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert summary["per_label"]["billing"] == {"precision": 1.0, "recall": 1.0, "support": 1}
    assert "precision" in result.output and "true \\ predicted" in result.output


def test_train_says_a_label_that_looks_like_a_typo_of_another(setup: Path, tmp_path: Path):
    rows = [{"prompt": prompt, "label": label} for prompt, label in TRAIN]
    rows += [{"prompt": "where is my invoice for march", "label": "biling"}]  # the rules' billing, misspelt
    rows += [{"prompt": "my cat sleeps all day", "label": "Cats "}]
    trained = _run(setup, "train", str(_jsonl(tmp_path / "train.jsonl", rows)), "--no-base")
    assert trained.exit_code == 0, trained.output
    assert "labels: Cats  1, biling 1, cats 4, dogs 4, greeting 1" in trained.output
    warnings = [line for line in trained.output.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: label 'Cats ' (1 prompt) looks like 'cats': a typo? (it is now a label of the model)",
        "warning: label 'biling' (1 prompt) looks like 'billing': a typo? (it is now a label of the model)",
    ]  # cats and dogs, labels of the model alone, are not typos of each other


def test_evaluate_with_the_shipped_model(tmp_path: Path):
    rows = [
        {"prompt": "Translate this paragraph into German, please.", "label": "translation"},
        {"prompt": "把这段话翻译成英文", "label": "translation"},
        {"prompt": "Write a Python function that reverses a list.", "label": ["coding"]},
    ]
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"data_home: {tmp_path / 'home'}\n", encoding="utf-8")
    result = _run(config, "evaluate", str(_jsonl(tmp_path / "eval.jsonl", rows)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"prompt": "a", "label": "cats"}\n{"prompt": "b"\n', "eval.jsonl:2: not a JSON object"),
        ('{"prompt": "a", "label": "parrots"}\n', "eval.jsonl:1: label: 'parrots' is not a configured label"),
        ('{"prompt": "", "label": "cats"}\n', "eval.jsonl:1: prompt: expected a non-empty string"),
        ('{"prompt": "a", "label": []}\n', "eval.jsonl:1: label: expected a label or a non-empty list"),
        ("\n", "eval.jsonl: no labelled prompts"),
    ],
)
def test_evaluate_names_file_line_and_field(setup: Path, tmp_path: Path, lines: str, message: str):
    _jsonl(tmp_path / "train.jsonl", [{"prompt": prompt, "label": label} for prompt, label in TRAIN])
    assert _run(setup, "train", str(tmp_path / "train.jsonl"), "--no-base").exit_code == 0
    (tmp_path / "eval.jsonl").write_text(lines, encoding="utf-8")
    result = _run(setup, "evaluate", str(tmp_path / "eval.jsonl"))
    assert result.exit_code == 2
    assert message in result.output and result.output.startswith("chatpulse: error: ")


def test_train_needs_a_target_and_two_labels(tmp_path: Path):
    config = tmp_path / "chatpulse.yaml"
    config.write_text(f"data_home: {tmp_path / 'home'}\n", encoding="utf-8")
    one = _jsonl(tmp_path / "one.jsonl", [{"prompt": "a cat", "label": "cats"}])
    result = _run(config, "train", str(one), "--no-base")
    assert result.exit_code == 2 and "set scenario_model in the configuration or give --out" in result.output
    result = _run(config, "train", str(one), "--no-base", "--out", str(tmp_path / "m.npz"))
    assert result.exit_code == 2 and "at least two labels" in result.output
    assert _run(config, "evaluate", str(tmp_path / "absent.jsonl")).exit_code == 2


def test_evaluate_scores_by_hand():
    """Precision and recall when a row accepts two labels: a right guess is its own truth, a wrong one the first."""
    result = evaluate([("a",), ("a", "b"), ("b",), ("c",)], ["a", "b", "a", "c"])
    assert result.n == 4 and result.accuracy == 0.75
    assert result.per_label.loc["a"].tolist() == [0.5, 1.0, 1]  # a: predicted twice, right once; truth a once
    assert result.per_label.loc["b"].tolist() == [1.0, 0.5, 2]  # b: row 2 right, row 3 missed
    assert result.confusion.loc["b", "a"] == 1 and result.confusion.loc["c", "c"] == 1


def test_read_jsonl_skips_blank_lines(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "p", "label": ["a", "b"]}\n\n{"prompt": "q", "label": "c"}\n', encoding="utf-8")
    labelled = read_jsonl(path)
    assert labelled.prompts == ("p", "q") and labelled.labels == (("a", "b"), ("c",))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_read_jsonl_reads_a_file_saved_with_a_byte_order_mark(tmp_path: Path, encoding: str):
    """As the landing folder's files are read: a Windows editor's UTF-8 mark or UTF-16 text was refused."""
    path = tmp_path / "x.jsonl"
    path.write_text(
        '{"prompt": "Ça va ?", "label": "other"}\n{"prompt": "写一首诗", "label": "creative"}\n', encoding=encoding
    )
    labelled = read_jsonl(path)
    assert labelled.prompts == ("Ça va ?", "写一首诗") and labelled.labels == (("other",), ("creative",))


def test_train_and_evaluate_refuse_a_label_wider_than_the_warehouse_column(setup: Path, tmp_path: Path):
    """sessions.scenario is VARCHAR in PostgreSQL: a longer label is refused at its line, not at a run's COPY."""
    (width,) = postgres_widths("scenario")
    rows = [{"prompt": prompt, "label": label} for prompt, label in TRAIN]
    assert _run(setup, "train", str(_jsonl(tmp_path / "train.jsonl", rows)), "--no-base").exit_code == 0
    trained = (tmp_path / "pets.npz").read_bytes()
    long = [*rows[:1], {"prompt": "a cat", "label": ["cats", "x" * (width + 1)]}, *rows[1:]]
    path = _jsonl(tmp_path / "long.jsonl", long)
    said = f"long.jsonl:2: label: {width + 1} characters, more than the {width} the warehouse column scenario holds"
    with pytest.raises(LabelledError, match=re.escape(said)):
        read_jsonl(path)
    assert read_jsonl(_jsonl(tmp_path / "fits.jsonl", [{"prompt": "a", "label": "x" * width}])).labels == (
        ("x" * width,),
    )
    for command in ("train", "evaluate"):
        result = _run(setup, command, str(path), *(["--no-base"] if command == "train" else []))
        assert result.exit_code == 2 and result.output.startswith("chatpulse: error: "), result.output
        assert said in result.output and result.output.count("\n") == 1
    assert (tmp_path / "pets.npz").read_bytes() == trained


def test_every_bad_line_of_a_labelled_file_is_named_at_once(tmp_path: Path):
    """It stopped at the first: a file with a typo on three lines took three runs to fix."""
    rows = ['{"prompt": "p", "label": "a"}', '{"prompt": "", "label": "a"}', "{cut", '{"prompt": "q", "label": 3}']
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(rows + rows[1:] * 2) + "\n", encoding="utf-8")
    with pytest.raises(LabelledError) as raised:
        read_jsonl(path)
    said = str(raised.value).split("; ")
    assert [line.split(": ")[0] for line in said[:5]] == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)]
    assert said[0].endswith("prompt: expected a non-empty string") and "not a JSON object" in said[1]
    assert said[4].endswith(" (and 4 more lines)") and len(said) == 5


def test_labels_of_ones_own_that_the_corpus_outweighs_are_named():
    """Trained beside the corpus (about 1,000 prompts a label), twelve prompts of `billing` are seldom chosen:
    a new user's own labels came out worse than with the rules alone, without a word."""
    corpus = [("coding",)] * 1000 + [("writing",)] * 900 + [("other",)] * 600
    own = [("billing",)] * 12 + [("refund",)] * 95 + [("coding",)] * 5  # coding: a built-in label, grown
    counts = Counter(label for (label,) in corpus + own)
    assert outweighed(counts, corpus, own) == ["billing"]  # 95 * 10 >= 900, the median of the corpus's labels
