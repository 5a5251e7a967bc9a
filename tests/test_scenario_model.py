"""The learned scenario model: n-gram hashing against a direct enumeration, TF-IDF rows by hand, a
reproducible fit, the shipped model as a retrain of the shipped corpus, its accuracy on a held-out
split of that corpus, explanations, nearest examples and the language detector."""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from chatpulse.behaviour import ngrams
from chatpulse.behaviour.labelled import read_corpus
from chatpulse.behaviour.language import detect_languages
from chatpulse.behaviour.scenario_model import ModelFileError, fit, load_model, nearest, scenario_model

TEXTS = ["Translate this into French", "把这句话翻译成英文：你好", "  Größe   42?  ", "", "今日はとても暑いですね 123"]
MASK = (1 << 64) - 1


def _normalised(text: str) -> str:
    """ngrams.normalise for one text, in plain Python."""
    text = re.sub(r"\s+", " ", re.sub(r"\d", "0", unicodedata.normalize("NFKC", text).lower())).strip()
    if len(text) > ngrams.HEAD_CHARS + ngrams.TAIL_CHARS:
        text = text[: ngrams.HEAD_CHARS] + " \u2026 " + text[-ngrams.TAIL_CHARS :]
    return text


MULTIPLIER = 0x100000001B3
WORD_SALT = 0xD1B54A32D192ED03


def _mix(value: int) -> int:
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) & MASK
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) & MASK
    return value ^ (value >> 31)


def _column(gram: str) -> int:
    """The hashed column of one character n-gram, computed character by character with Python integers."""
    value = 0
    for char in gram:
        value = (value * MULTIPLIER + ord(char)) & MASK
    return _mix((value + len(gram) * 0x9E3779B97F4A7C15) & MASK) >> (64 - ngrams.HASH_BITS)


def _grams(text: str) -> list[str]:
    padded = f" {text} "
    return [padded[i : i + n] for n in range(ngrams.MIN_N, ngrams.MAX_N + 1) for i in range(len(padded) - n + 1)]


def _words(text: str) -> list[str]:
    """Words as ngrams.words splits them, by Unicode categories and character names in plain Python: runs of
    letters, marks and digits, and each Han, kana or Hangul character alone."""
    words, current = [], ""
    for char in text:
        if unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA", "HANGUL")):
            words += [current, char] if current else [char]
            current = ""
        elif unicodedata.category(char)[0] in "LMN":
            current += char
        elif current:
            words.append(current)
            current = ""
    return words + [current] if current else words


def _word_hash(word: str) -> int:
    """A word's hash: the polynomial of its UTF-8 bytes (each plus one), mixed."""
    value = sum((byte + 1) * pow(MULTIPLIER, i + 1, 1 << 64) for i, byte in enumerate(word.encode())) & MASK
    return _mix(value)


def _word_grams(text: str) -> list[tuple[str, int]]:
    """Each word unigram and bigram of a text, with its hashed column (after the character n-grams' columns)."""
    words = _words(text)
    hashes = [_word_hash(word) for word in words]
    found = [(word, _mix((h + WORD_SALT) & MASK)) for word, h in zip(words, hashes, strict=True)]
    found += [
        (f"{words[i]} {words[i + 1]}", _mix((hashes[i] * MULTIPLIER + hashes[i + 1] + 2 * WORD_SALT) & MASK))
        for i in range(len(words) - 1)
    ]
    return [(name, (value >> (64 - ngrams.HASH_BITS)) + (1 << ngrams.HASH_BITS)) for name, value in found]


def test_normalise_matches_plain_python():
    long = "Summarise: " + "word " * 100 + "in three bullet points"
    assert ngrams.normalise([*TEXTS, None, long]) == [_normalised(t) for t in [*TEXTS, "", long]]
    assert ngrams.normalise(["？Ａ１"]) == ["?a0"]


def test_hashed_ngrams_match_a_direct_enumeration():
    texts = ngrams.normalise(TEXTS)
    found = ngrams.grams(texts, where=True)
    got = Counter(zip(found.row.tolist(), found.column.tolist(), strict=True))
    expected = Counter((row, _column(gram)) for row, text in enumerate(texts) for gram in _grams(text))
    assert got == expected
    read_back = {found.texts[r][s : s + n] for r, s, n in zip(found.row, found.start, found.size, strict=True)}
    assert read_back == {gram for text in texts for gram in _grams(text)}


def test_hashed_words_match_a_direct_enumeration():
    texts = ngrams.normalise([*TEXTS, "snake_case, naïve; x2 हिन्दी 한국어 ok", "!!", "ok"])
    found = ngrams.words(texts, where=True)
    got = Counter(zip(found.row.tolist(), found.column.tolist(), strict=True))
    expected = Counter((row, column) for row, text in enumerate(texts) for _, column in _word_grams(text))
    assert got == expected
    assert _words(texts[0]) == ["translate", "this", "into", "french"]
    assert _words(texts[5])[:4] == ["snake", "case", "naïve", "x0"] and "हिन्दी" in _words(texts[5])
    assert sorted(found.name(at) for at in range(len(found.row))) == sorted(
        name for text in texts for name, _ in _word_grams(text)
    )


@pytest.fixture(scope="module")
def tiny() -> tuple[list[str], list[str]]:
    prompts = [
        "please translate this sentence",
        "translate the menu into german",
        "could you translate my letter",
        "write a poem about the sea",
        "write a short poem for my mother",
        "a poem about autumn leaves please",
        "what is the capital of peru",
        "what is the boiling point of water",
        "what is a black hole",
    ]
    return prompts, ["translation"] * 3 + ["creative_roleplay"] * 3 + ["information_query"] * 3


def test_tfidf_rows_by_hand(tiny):
    prompts, labels = tiny
    model = fit(prompts, labels)
    text = "translate this poem"
    row = model.vectors([text]).toarray()[0]
    expected = np.zeros(len(model.columns))
    # each kind (character, word n-grams) weighed and scaled to unit length on its own, then added
    for columns in (
        [_column(gram) for gram in _grams(_normalised(text))],
        [column for _, column in _word_grams(_normalised(text))],
    ):
        part = np.zeros(len(model.columns))
        for column, count in Counter(columns).items():
            where = np.searchsorted(model.columns, column)
            if where < len(model.columns) and model.columns[where] == column:
                part[where] = (1 + math.log(count)) * model.idf[where]
        expected += part / np.linalg.norm(part)
    assert np.allclose(row, expected, atol=1e-6)
    # idf as scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1, df over the training prompts
    documents = Counter(
        column
        for prompt in prompts
        for column in {_column(g) for g in _grams(_normalised(prompt))}
        | {column for _, column in _word_grams(_normalised(prompt))}
    )
    kept = sorted(column for column, df in documents.items() if df >= 2)
    assert model.columns.tolist() == kept
    assert np.allclose(model.idf, [math.log(10 / (1 + documents[c])) + 1 for c in kept], atol=1e-6)


def test_fit_is_reproducible_and_survives_a_round_trip(tiny, tmp_path: Path):
    prompts, labels = tiny
    first, second = fit(prompts, labels), fit(prompts, labels)
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.intercept, second.intercept)
    path = tmp_path / "model.npz"
    first.save(path)
    loaded = load_model(path)
    assert loaded.labels == ("creative_roleplay", "information_query", "translation")
    queries = ["translate my note", "a poem on rain", "what is rain"]
    assert [loaded.labels[i] for i in loaded.predict(queries).label] == [
        "translation",
        "creative_roleplay",
        "information_query",
    ]
    assert np.allclose(loaded.predict(queries).probability, first.predict(queries).probability, atol=2e-3)


def test_two_labels_and_bad_files(tmp_path: Path):
    model = fit(["cat cat", "a cat here", "dog dog", "a dog here"], ["cats", "cats", "dogs", "dogs"])
    assert [model.labels[i] for i in model.predict(["my cat", "my dog"]).label] == ["cats", "dogs"]
    with pytest.raises(ValueError, match="at least two labels"):
        fit(["a", "b"], ["x", "x"])
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    for path in (tmp_path / "bad.npz", tmp_path / "missing.npz"):
        with pytest.raises(ModelFileError, match=str(path)):
            load_model(path)


def test_explanations_never_quote_the_mark_where_a_long_text_was_cut():
    """normalise() joins a long text's head and tail with " … ": n-grams of it were quoted as what decided."""
    prompts = read_corpus().prompts
    long = [f"{a} {b} {a}" for a, b in zip(prompts[::7], prompts[3::7], strict=False) if len(a) + len(b) > 200]
    assert len(long) > 100 and all(len(text) > ngrams.HEAD_CHARS + ngrams.TAIL_CHARS for text in long)
    model = scenario_model()
    assert (model.names != "").sum() > model._named.sum()  # the shipped model has such names
    assert not [text for text in model.predict(long).features.to_pylist() if ngrams.CUT.strip() in (text or "")]


def test_explanations_are_weighted_ngrams_of_the_prompt():
    model = scenario_model()
    prompts = ["Please translate this paragraph into Spanish", "写一首关于大海的诗", "x", "Give me ideas, for a party"]
    prediction = model.predict(prompts)
    for prompt, label, features in zip(prompts, prediction.label, prediction.features.to_pylist(), strict=True):
        if features is None:
            continue
        names = re.findall(r'"([^"]*)"', features)
        assert 1 <= len(names) <= 3
        padded = f" {_normalised(prompt)} "
        words = dict(_word_grams(_normalised(prompt)))
        for name in names:  # a character n-gram of the prompt, or a word or two (some words are both)
            hashed = ([_column(name)] if name in padded else []) + ([words[name]] if name in words else [])
            weights = [model.weights[np.searchsorted(model.columns, column), label] for column in hashed]
            assert max(weights, default=0) > 0


def test_nearest_example_is_the_cosine_of_ngram_counts():
    examples = ["refund my order please", "where is my parcel"]
    best, similarity = nearest(["Please refund my order!", "parcel status?"], examples)
    assert best.tolist() == [0, 1]
    for text, index, value in zip(["Please refund my order!", "parcel status?"], best, similarity, strict=True):
        a, b = Counter(_grams(_normalised(text))), Counter(_grams(_normalised(examples[index])))
        cosine = sum(a[g] * b[g] for g in a) / math.sqrt(
            sum(v * v for v in a.values()) * sum(v * v for v in b.values())
        )
        assert value == pytest.approx(cosine, abs=1e-6)


def _split(corpus, share: float = 0.2, seed: int = 15) -> tuple[list[int], list[int]]:
    """Indexes of a training and a held-out part, the held-out share taken within each label and language."""
    groups: dict[tuple[str, str | None], list[int]] = {}
    for index, (labels, language) in enumerate(zip(corpus.labels, corpus.languages, strict=True)):
        groups.setdefault((labels[0], language), []).append(index)
    rng, held = random.Random(seed), []
    for members in groups.values():
        held += rng.sample(members, round(len(members) * share))
    held_set = set(held)
    return [i for i in range(len(corpus.prompts)) if i not in held_set], sorted(held)


def test_shipped_model_is_the_shipped_corpus_refitted_and_holds_out_of_sample():
    corpus = read_corpus()
    shipped = scenario_model()
    refitted = fit(list(corpus.prompts), [labels[0] for labels in corpus.labels])
    assert shipped.labels == refitted.labels and np.array_equal(shipped.columns, refitted.columns)
    assert np.allclose(shipped.weights, refitted.weights, atol=0.02)  # stored as float16
    same = shipped.predict(list(corpus.prompts)).label == refitted.predict(list(corpus.prompts)).label
    assert same.mean() > 0.995
    train, held = _split(corpus)
    model = fit([corpus.prompts[i] for i in train], [corpus.labels[i][0] for i in train])
    predicted = model.predict([corpus.prompts[i] for i in held]).label
    right = np.array([model.labels[p] == corpus.labels[i][0] for p, i in zip(predicted, held, strict=True)])
    languages = np.array([corpus.languages[i] for i in held])
    print(f"\nheld-out accuracy {right.mean():.3f} on {len(held)} prompts")
    for language in sorted(set(languages)):
        print(f"  {language}: {right[languages == language].mean():.3f} ({(languages == language).sum()})")
    assert right.mean() >= 0.80
    for language in ("en", "zh"):
        assert right[languages == language].mean() >= 0.78
    assert right[~np.isin(languages, ["en", "zh"])].mean() >= 0.75  # the nine others together


LANGUAGES = {
    "Please summarise this article in three sentences.": "en",
    "请把这段话翻译成英文": "zh",
    "写一首诗": "zh",
    "今日はとても暑いですね。": "ja",
    "이 문장을 영어로 번역해 주세요": "ko",
    "¿Cómo puedo mejorar mi currículum?": "es",
    "Comment puis-je améliorer mon sommeil ?": "fr",
    "Wie kann ich besser schlafen?": "de",
    "Как приготовить борщ?": "ru",
    "Como faço para aprender a programar?": "pt",
    "كيف أتعلم البرمجة؟": "ar",
    "请把下面的日文翻译成中文：お疲れ様でした。": "zh",
}


def test_language_of_prompts_in_many_scripts():
    texts = [*LANGUAGES, "", "   ", None]
    assert detect_languages(texts).tolist() == [*LANGUAGES.values(), None, None, None]


def test_code_and_single_words_are_undetermined_rather_than_guessed():
    # lid.176 reads these as Galician, Nepali, Turkish and Hungarian, each under 30% sure
    unsure = [
        "Convert this SQL to pandas: SELECT * FROM users WHERE signup_date >= '2024-01-01'",
        "Fix this: ```python print(x[0])```",
        "git rebase -i HEAD~3 explain",
        "test",
    ]
    sure = ["Jak mogę lepiej spać?", "How can I sleep better?", "ok"]
    assert detect_languages(unsure).tolist() == ["und"] * 4
    assert detect_languages(sure).tolist() == ["pl", "en", "en"]


def test_language_agrees_with_oasst2_labels(realdata: Path):
    """oasst2 (Apache-2.0) tags each message with the language its author chose; base codes are compared."""
    rows = [json.loads(line) for line in (realdata / "oasst2_openpaws_filtered.jsonl").read_text().splitlines()]
    texts = [row["prompt"]["text"] for row in rows]
    expected = np.array([row["prompt"]["lang"].split("-")[0] for row in rows])
    found = detect_languages(texts)
    assert (found == expected).mean() >= 0.95
    assert (found == "und").mean() <= 0.02
    for language in ("en", "es", "zh", "ru", "de"):
        assert (found[expected == language] == language).mean() >= 0.85
