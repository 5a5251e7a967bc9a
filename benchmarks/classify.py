"""Benchmark: classify 100,000 distinct prompts as one-turn sessions (scenario and language).

The prompts are the shipped corpus's, each joined to a second one picked at random, so
that none repeats (the pipeline classifies each distinct text once) and their lengths and
languages are those of real prompts. Prints the seconds of each part, and one JSON line.

    .venv/bin/python benchmarks/classify.py [--prompts N]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import pyarrow as pa

from chatpulse.behaviour.labelled import read_corpus
from chatpulse.behaviour.language import detect_languages
from chatpulse.behaviour.scenario_model import scenario_model
from chatpulse.behaviour.scenario_rules import DEFAULT_RULES
from chatpulse.behaviour.scenarios import classify_prompts

DEFAULT_PROMPTS = 100_000


def prompts(count: int, seed: int = 15) -> list[str]:
    """`count` distinct prompts made of two corpus prompts each."""
    corpus = read_corpus().prompts
    rng = random.Random(seed)
    made = {f"{rng.choice(corpus)} {rng.choice(corpus)}" for _ in range(count * 2)}
    return sorted(made)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=DEFAULT_PROMPTS, help=f"how many ({DEFAULT_PROMPTS:,})")
    args = parser.parse_args()
    texts = prompts(args.prompts)
    model = scenario_model()
    model.predict(texts[:10])  # loading and the lookup table are not what is measured
    detect_languages(texts[:10])
    timings = {}
    for name, step in (
        ("model_s", lambda: model.predict(texts)),
        ("rules_and_model_s", lambda: classify_prompts(texts, DEFAULT_RULES, model)),
        ("language_s", lambda: detect_languages(pa.array(texts))),
    ):
        started = time.perf_counter()
        step()
        timings[name] = round(time.perf_counter() - started, 2)
        print(f"[classify] {name.removesuffix('_s').replace('_', ' ')}: {timings[name]} s", flush=True)
    chars = sum(len(text) for text in texts) / len(texts)
    print(json.dumps({"prompts": len(texts), "mean_chars": round(chars, 1), **timings}))


if __name__ == "__main__":
    main()
