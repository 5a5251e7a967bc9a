"""Classifier accuracy on MT-Bench's 80 labelled prompts.

Source: lm-sys/FastChat, Apache-2.0; see ../shared/realdata/README.md.

MT-Bench groups prompts by subject, our taxonomy by what the user wants done, so a
category maps onto the labels that cover it: its "writing" spans our writing, business
communication and creative writing, and "stem"/"humanities" questions ask for
information or practical guidance. Each prompt's first turn is classified with the
default rules; a prediction is correct when it is one of its category's labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from chatpulse.behaviour.scenarios import DEFAULT_RULES, classify

ACCEPTED = {
    "writing": {"writing", "business_communication", "creative_roleplay"},
    "roleplay": {"creative_roleplay"},
    "reasoning": {"math_reasoning"},
    "math": {"math_reasoning"},
    "coding": {"coding"},
    "extraction": {"extraction_summary"},
    "stem": {"information_query", "practical_guidance"},
    "humanities": {"information_query", "practical_guidance"},
}


def mt_bench(realdata: Path) -> pd.DataFrame:
    """category, prompt (first turn) and our predicted label, one row per question."""
    rows = [
        json.loads(line) for line in (realdata / "mt_bench_question.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    frame = pd.DataFrame({"category": [r["category"] for r in rows], "prompt": [r["turns"][0] for r in rows]})
    frame["predicted"] = [classify(prompt, DEFAULT_RULES) for prompt in frame["prompt"]]
    return frame


def test_mt_bench_accuracy_at_least_75_percent(realdata: Path) -> None:
    frame = mt_bench(realdata)
    assert len(frame) == 80 and set(frame["category"]) == set(ACCEPTED)
    correct = [
        label in ACCEPTED[category] for category, label in zip(frame["category"], frame["predicted"], strict=True)
    ]
    accuracy = sum(correct) / len(correct)
    print(f"\naccuracy {accuracy:.3f}\n" + pd.crosstab(frame["category"], frame["predicted"]).to_string())
    assert accuracy >= 0.75
