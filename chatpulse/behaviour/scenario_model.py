"""The learned part of the scenario classifier: a linear model over hashed character and word n-grams.

A prompt becomes two TF-IDF vectors over the n-gram columns the model knows, one of its
character n-grams and one of its word n-grams (chatpulse.behaviour.ngrams; sublinear term
frequency, each L2-normalised, so neither kind outweighs the other), side by side, and a multinomial
logistic regression gives each label a probability. The model is a few NumPy arrays in
one compressed .npz file: the known columns, their idf, the weights, the intercepts, the
labels, and for the columns that weigh most an n-gram of the training corpus that hashed
there (what an explanation names: text the model was trained on, never a user's).

Inference needs NumPy and SciPy only; scikit-learn is imported by `fit` alone.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from chatpulse.behaviour import ngrams

CHUNK_ROWS = 10_000  # texts featurised at once: bounds the n-gram arrays to about 100 MB
EXPLAINED_COLUMNS = 400  # per label: the strongest columns kept with a name, for explanations
EXPLAINED_FEATURES = 3  # named in a prediction's explanation
MIN_DOCUMENTS = 2  # a column must occur in this many training prompts to be kept
REGULARISATION = 15.0  # LogisticRegression's C: 5-fold cross-validation on the corpus, 0.885 (10: 0.869)
SEED = 0
# L-BFGS run to the optimum: at scikit-learn's default 1e-4 where it stopped depended on the machine's
# BLAS kernels (weights 0.3 apart on AVX-512 and AVX2), so the shipped model was not reproducible.
TOLERANCE = 1e-6
MAX_ITERATIONS = 10_000
FORMAT = 2  # 2: word n-grams beside character n-grams
NAME_CHARS = 24  # an explanation quotes at most this much of an n-gram
DEFAULT_MODEL_PATH = Path(__file__).with_name("scenario_model.npz")


class ModelFileError(ValueError):
    """A model file cannot be read: missing, not a model, or of another format; the message names the file."""


@dataclass(frozen=True)
class Prediction:
    """Per text: the label index, its probability, and the names of its strongest features (None when none)."""

    label: np.ndarray
    probability: np.ndarray
    features: pa.Array


@dataclass(frozen=True)
class ScenarioModel:
    """A fitted model: labels (L), known columns (K, sorted), idf (K), weights (K x L), intercept (L),
    and per known column its name (an n-gram of the training corpus, "" when not kept for explanations)."""

    labels: tuple[str, ...]
    columns: np.ndarray
    idf: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray
    names: np.ndarray

    def vectors(self, texts: Sequence[str | None] | pa.Array) -> sp.csr_matrix:
        """TF-IDF rows (len(texts) x K) over the known columns, L2-normalised; unknown n-grams are left out."""
        return sp.vstack(
            [
                self._vectors(ngrams.normalise(texts[start : start + CHUNK_ROWS]))
                for start in range(0, len(texts), CHUNK_ROWS)
            ]
            or [sp.csr_matrix((0, len(self.columns)), dtype=np.float32)],
            format="csr",
        )

    @cached_property
    def _named(self) -> np.ndarray:
        """Per known column, whether it has a name to explain with (comparing a boolean per n-gram, not a
        string): not one holding the mark normalise puts where a long text was cut, which is not the user's."""
        return (self.names != "") & (np.char.find(self.names, ngrams.CUT.strip()) < 0)

    @cached_property
    def _position(self) -> np.ndarray:
        """Per hashed column, its index among the known columns, -1 for the others (a 32 MB lookup table)."""
        position = np.full(ngrams.COLUMNS, -1, dtype=np.int32)
        position[self.columns] = np.arange(len(self.columns), dtype=np.int32)
        return position

    def _vectors(self, texts: list[str]) -> sp.csr_matrix:
        blocks = []
        for found in (ngrams.grams(texts), ngrams.words(texts)):
            position = self._position[found.column]
            known = position >= 0
            blocks.append(tfidf(found.row[known], position[known], len(texts), self.idf))
        return blocks[0] + blocks[1]

    def predict(self, texts: Sequence[str | None] | pa.Array) -> Prediction:
        """The most probable label of each text, its probability and its explanation (see `explain`)."""
        labels, probabilities, features = [], [], []
        for start in range(0, len(texts), CHUNK_ROWS):
            vectors = self._vectors(ngrams.normalise(texts[start : start + CHUNK_ROWS]))
            scores = vectors @ self.weights + self.intercept
            scores -= scores.max(axis=1, keepdims=True)
            probability = np.exp(scores)
            probability /= probability.sum(axis=1, keepdims=True)
            label = probability.argmax(axis=1)
            labels.append(label)
            probabilities.append(probability[np.arange(len(label)), label])
            features.append(self.explain(vectors, label))
        if not labels:
            return Prediction(np.zeros(0, np.int64), np.zeros(0), pa.array([], pa.string()))
        return Prediction(np.concatenate(labels), np.concatenate(probabilities), pa.concat_arrays(features))

    def explain(self, vectors: sp.csr_matrix, label: np.ndarray) -> pa.Array:
        """Per row, its EXPLAINED_FEATURES named columns that add most to `label`'s score, strongest first,
        each in double quotes and separated by a space (null when no named column adds to it)."""
        rows = np.repeat(np.arange(vectors.shape[0]), np.diff(vectors.indptr))
        contribution = vectors.data * self.weights[vectors.indices, label[rows]]
        contribution[~self._named[vectors.indices] | (contribution <= 0)] = 0
        starts = vectors.indptr[:-1]
        empty = starts == vectors.indptr[1:]
        quoted = []
        for _ in range(EXPLAINED_FEATURES):
            padded = np.append(contribution, 0)  # reduceat of an empty row reads the next row's first entry
            best = np.maximum.reduceat(padded, np.minimum(starts, len(contribution)))[: len(starts)]
            best[empty] = 0
            at = np.full(len(starts), -1)
            hit = np.flatnonzero(contribution > 0)
            hit = hit[contribution[hit] == best[rows[hit]]]
            at[rows[hit[::-1]]] = hit[::-1]  # the first entry of a row that reaches its best
            at[best <= 0] = -1
            names = pa.array(np.where(at >= 0, self.names[vectors.indices[np.maximum(at, 0)]], None), pa.string())
            quoted.append(pc.fill_null(pc.binary_join_element_wise('"', names, '"', ""), ""))
            contribution[at[at >= 0]] = 0
        # A row's later picks are empty only after its earlier ones, so trimming the end drops every gap.
        joined = pc.utf8_rtrim(pc.binary_join_element_wise(*quoted, " "), characters=" ")
        return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)

    def save(self, path: Path) -> None:
        """Write the model as a compressed .npz (no pickled objects, so loading runs no code)."""
        np.savez_compressed(
            path,
            format=np.array(_layout()),
            labels=np.array(self.labels),
            columns=self.columns.astype(np.int32),
            idf=self.idf.astype(np.float16),
            weights=self.weights.astype(np.float16),
            intercept=self.intercept.astype(np.float32),
            names=self.names,
        )


def _layout() -> list[int]:
    """What a saved model must agree with to be read: the file format and how n-grams are taken."""
    return [FORMAT, ngrams.HASH_BITS, ngrams.MIN_N, ngrams.MAX_N, ngrams.HEAD_CHARS, ngrams.TAIL_CHARS]


def model_labels(path: Path) -> tuple[str, ...]:
    """The labels of the model saved at `path`, read from its small entries only (about a millisecond, where
    loading the model takes 25-60 ms), so a run can check its model file before its first step.

    Raises ModelFileError naming the file: missing (and how to write one), unreadable, not a model
    (`chatpulse scenarios train` writes an .npz), or of another format or version.
    """
    with _opened(path) as saved:
        return tuple(str(label) for label in saved["labels"])


@contextmanager
def _opened(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """The .npz at `path`, open, once it is known to be a model of this version (ModelFileError otherwise)."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; `chatpulse scenarios train --out {path}` writes one")
    not_a_model = f"{path}: not a scenario model file (an .npz written by `chatpulse scenarios train`)"
    try:
        # Opened here, as numpy leaves its own file open when the zip is broken.
        with path.open("rb") as file:
            saved = np.load(file, allow_pickle=False)  # an .npz opens lazily: only the entries read are inflated
            if not isinstance(saved, np.lib.npyio.NpzFile):  # an .npy holds one array
                raise ModelFileError(not_a_model)
            with saved:
                if not {"format", "labels"} <= set(saved.files):
                    raise ModelFileError(not_a_model)
                if saved["format"].tolist() != _layout():
                    raise ModelFileError(
                        f"{path}: a scenario model of another format or version; "
                        "rebuild it with `chatpulse scenarios train`"
                    )
                yield saved
    except ModelFileError:  # a ValueError itself, already saying what is wrong
        raise
    except IsADirectoryError:
        raise ModelFileError(not_a_model) from None
    except OSError as error:
        raise ModelFileError(f"cannot read scenario model {path}: {error.strerror or error}") from None
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise ModelFileError(not_a_model) from None  # numpy's own text is about pickles


def load_model(path: Path) -> ScenarioModel:
    """The model saved at `path`; ModelFileError naming the file when it is not one this version can read
    (see model_labels)."""
    with _opened(path) as saved:
        return ScenarioModel(
            tuple(str(label) for label in saved["labels"]),
            saved["columns"].astype(np.int64),
            saved["idf"].astype(np.float32),
            saved["weights"].astype(np.float32),
            saved["intercept"],
            saved["names"],
        )


def _unit_counts(texts: Sequence[str | None] | pa.Array) -> sp.csr_matrix:
    """len(texts) x 2**HASH_BITS n-gram counts, each row scaled to unit length."""
    found = ngrams.grams(ngrams.normalise(texts))
    return tfidf(found.row, found.column, len(texts), np.ones(1 << ngrams.HASH_BITS, dtype=np.float32), sublinear=False)


def nearest(texts: Sequence[str | None] | pa.Array, examples: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text, the index of the example most like it and their cosine similarity (of n-gram counts, 0..1)."""
    known = _unit_counts(examples).T.tocsc()
    best, similarity = [], []
    for start in range(0, len(texts), CHUNK_ROWS):
        scores = (_unit_counts(texts[start : start + CHUNK_ROWS]) @ known).toarray()
        best.append(scores.argmax(axis=1))
        similarity.append(scores.max(axis=1))
    if not best:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(best), np.concatenate(similarity).astype(np.float64)


@cache
def _shipped() -> ScenarioModel:
    return load_model(DEFAULT_MODEL_PATH)


def scenario_model(path: Path | None = None) -> ScenarioModel:
    """The model saved at `path` (a user's, from `chatpulse scenarios train`), or the shipped one for None."""
    return _shipped() if path is None else load_model(path)


def tfidf(rows: np.ndarray, columns: np.ndarray, count: int, idf: np.ndarray, sublinear: bool = True) -> sp.csr_matrix:
    """count x len(idf) matrix from n-gram occurrences (row, column): (1 + ln tf) * idf (tf * idf when not
    sublinear), each row scaled to unit length."""
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(count, len(idf)), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data = ((1 + np.log(matrix.data)) if sublinear else matrix.data) * idf[matrix.indices]
    norms = np.sqrt(np.bincount(np.repeat(np.arange(count), np.diff(matrix.indptr)), matrix.data**2, minlength=count))
    matrix.data /= np.repeat(np.where(norms > 0, norms, 1), np.diff(matrix.indptr)).astype(np.float32)
    return matrix


def fit(prompts: Sequence[str], labels: Sequence[str]) -> ScenarioModel:
    """A model fitted on labelled prompts: deterministic (fixed seed, lbfgs), so the same corpus gives the same model.

    Raises ValueError when fewer than two labels are given.
    """
    from sklearn.linear_model import LogisticRegression  # only fitting needs scikit-learn (1 s to import)

    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise ValueError(f"a model needs prompts of at least two labels, got {label_names}")
    texts = ngrams.normalise(list(prompts))
    blocks = (ngrams.grams(texts, where=True), ngrams.words(texts, where=True))
    pairs = np.unique(np.concatenate([found.row * ngrams.COLUMNS + found.column for found in blocks]))
    columns, documents = np.unique(pairs % ngrams.COLUMNS, return_counts=True)
    columns = columns[documents >= MIN_DOCUMENTS]
    documents = documents[documents >= MIN_DOCUMENTS]
    idf = (np.log((1 + len(prompts)) / (1 + documents)) + 1).astype(np.float32)
    positions = []
    for found in blocks:
        position = np.searchsorted(columns, found.column)
        position[position == len(columns)] = 0
        positions.append(np.where(columns[position] == found.column, position, -1))
    char_vectors, word_vectors = (
        tfidf(found.row[position >= 0], position[position >= 0], len(prompts), idf)
        for found, position in zip(blocks, positions, strict=True)
    )
    vectors = char_vectors + word_vectors
    target = np.searchsorted(label_names, labels)
    classifier = LogisticRegression(C=REGULARISATION, max_iter=MAX_ITERATIONS, tol=TOLERANCE, random_state=SEED)
    classifier.fit(vectors, target)
    weights = classifier.coef_.T.astype(np.float32)
    intercept = classifier.intercept_.astype(np.float32)
    if len(label_names) == 2:  # scikit-learn keeps one column for two classes: the second's score against the first
        weights = np.hstack([-weights / 2, weights / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    names = _names(blocks, positions, weights)
    return ScenarioModel(tuple(label_names), columns, idf, weights, intercept, names)


def _names(blocks: Sequence[ngrams.Grams], positions: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Per known column, the first training n-gram that hashed there, cut to NAME_CHARS, for the
    EXPLAINED_COLUMNS strongest columns of each label; "" for the others.

    blocks: the character and the word n-grams (their columns apart); positions: per block, each
    occurrence's known column, -1 for one the model does not keep."""
    strongest = np.unique(np.argsort(-weights, axis=0)[:EXPLAINED_COLUMNS].ravel())
    names = np.full(len(weights), "", dtype=f"<U{NAME_CHARS}")
    for found, position in zip(blocks, positions, strict=True):
        occurrence = np.flatnonzero(position >= 0)
        first = np.full(len(weights), -1)
        first[position[occurrence[::-1]]] = occurrence[::-1]
        for column in strongest[first[strongest] >= 0]:
            names[column] = found.name(first[column])[:NAME_CHARS]
    return names
