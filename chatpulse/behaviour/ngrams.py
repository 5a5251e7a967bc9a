"""Hashed character n-grams and word n-grams of a batch of texts, computed with NumPy over the whole batch.

Character n-grams need no word segmentation, so one representation serves Chinese,
Japanese, Thai and space-separated scripts alike. Word unigrams and bigrams add what
character n-grams miss in space-separated languages: which words stand next to each other
("write a", "give me"); a Han, kana or Hangul character counts as a word of its own, so
Chinese, Japanese and Korean text gets word features too. Each text is normalised (NFKC form,
lowercase, digits as 0, runs of white space as one space), cut to its first HEAD_CHARS and
last TAIL_CHARS characters (an instruction usually opens or closes a prompt; a pasted
passage in between says little about what is asked, and the cut bounds the work per
text), padded with a space at each end, and every MIN_N..MAX_N-gram is hashed into one of
2**HASH_BITS columns. Python touches each text only to pad it and join the batch into one
array of code points; every n-gram's hash is then a vectorised rolling product over it.
Words are split by Arrow's RE2 and hashed over their UTF-8 bytes with NumPy into 2**HASH_BITS
columns of their own, after the character columns (COLUMNS in all), so a word and a character
n-gram never share a column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEAD_CHARS = 120
TAIL_CHARS = 40
MIN_N = 2
MAX_N = 4
HASH_BITS = 22
COLUMNS = 2 << HASH_BITS  # character n-gram columns, then as many word n-gram columns
CUT = " \u2026 "  # between head and tail of a long text
_MULTIPLIER = np.uint64(0x100000001B3)
_SALT = np.uint64(0x9E3779B97F4A7C15)  # added once per n, so n-grams of different lengths hash apart
_WORD_SALT = np.uint64(0xD1B54A32D192ED03)  # word bigrams hash apart from unigrams
# Each such character is a word of its own (these scripts do not separate words by spaces).
_OWN_WORD = r"([\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}])"
_NOT_WORD = r"[^\pL\pM\pN]+"  # what separates words: anything but letters, their marks and digits


def normalise(texts: pa.Array | list[str | None]) -> list[str]:
    """Each text in NFKC form (full-width "？" as "?"), lowercased, digits as 0, white space runs as one space,
    long ones cut to head and tail.

    None becomes "". The result is what n-grams are taken from (and what explanations quote).
    """
    array = texts.cast(pa.string()) if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    array = pc.fill_null(array, "")
    array = pc.utf8_lower(pc.utf8_normalize(array, "NFKC"))
    array = pc.replace_substring_regex(array, r"\d", "0")
    array = pc.utf8_trim_whitespace(pc.replace_substring_regex(array, r"\s+", " "))
    long = pc.greater(pc.utf8_length(array), HEAD_CHARS + TAIL_CHARS)
    cut = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(array, 0, HEAD_CHARS), pc.utf8_slice_codeunits(array, -TAIL_CHARS), CUT
    )
    return pc.if_else(long, cut, array).to_pylist()


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit, so the low bits make a fair column."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


@dataclass(frozen=True)
class Grams:
    """Every n-gram occurrence of a batch: its text (row) and hashed column; with `where`, what `name` needs to
    read an occurrence back: for character n-grams its start in the padded text and its n, for word n-grams
    its words."""

    row: np.ndarray
    column: np.ndarray
    start: np.ndarray | None
    size: np.ndarray | None
    texts: list[str]  # padded, normalised texts, which start indexes into
    words: np.ndarray | None = None  # object array: a word n-gram occurrence's words, space-separated

    def name(self, at: int) -> str:
        """The text of occurrence `at` (the grams must have been taken with `where`)."""
        if self.words is not None:
            return str(self.words[at])
        start = int(self.start[at])
        return self.texts[self.row[at]][start : start + int(self.size[at])]


def grams(texts: list[str], where: bool = False) -> Grams:
    """The MIN_N..MAX_N-grams of already normalised texts, each text padded by a space each side."""
    padded = [f" {text} " for text in texts]
    lengths = np.fromiter((len(text) for text in padded), dtype=np.int64, count=len(padded))
    points = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    row_of = np.repeat(np.arange(len(padded), dtype=np.int32), lengths)
    left = np.repeat(np.cumsum(lengths), lengths) - np.arange(
        len(points)
    )  # characters from each position to its text's end
    rows, columns, starts, sizes = [], [], [], []
    rolling = np.zeros(len(points), dtype=np.uint64)
    for n in range(1, MAX_N + 1):
        rolling = rolling[: len(points) - n + 1] * _MULTIPLIER + points[n - 1 :]
        if n < MIN_N:
            continue
        inside = left[: len(rolling)] >= n
        hashed = _mix(rolling[inside] + np.uint64(n * int(_SALT) % (1 << 64)))
        rows.append(row_of[: len(rolling)][inside])
        columns.append((hashed >> np.uint64(64 - HASH_BITS)).astype(np.int64))
        if where:
            starts.append(
                np.flatnonzero(inside) - np.repeat(np.cumsum(lengths) - lengths, lengths)[: len(rolling)][inside]
            )
            sizes.append(np.full(len(hashed), n, dtype=np.int8))
    return Grams(
        np.concatenate(rows),
        np.concatenate(columns),
        np.concatenate(starts) if where else None,
        np.concatenate(sizes) if where else None,
        padded,
    )


def _hash_words(words: pa.Array) -> np.ndarray:
    """A 64-bit hash of each non-empty string: a polynomial over its UTF-8 bytes, mixed."""
    offsets = np.frombuffer(words.buffers()[1], dtype=np.int32)[words.offset : words.offset + len(words) + 1]
    data = np.frombuffer(words.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].astype(np.uint64)
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    position = np.arange(len(data)) - np.repeat(starts, lengths)
    powers = np.cumprod(np.full(int(lengths.max()), _MULTIPLIER, dtype=np.uint64))  # wraps modulo 2**64
    return _mix(np.add.reduceat((data + np.uint64(1)) * powers[position], starts))


def words(texts: list[str], where: bool = False) -> Grams:
    """The word unigrams and bigrams of already normalised texts (words: runs of letters and digits, and each Han,
    kana or Hangul character alone)."""
    spaced = pc.replace_substring_regex(pa.array(texts, pa.string()), _OWN_WORD, r" \1 ")
    split = pc.split_pattern_regex(spaced, _NOT_WORD)
    flat = pc.list_flatten(split)
    kept = pc.not_equal(flat, "")
    flat = flat.filter(kept)
    row = pc.list_parent_indices(split).filter(kept).to_numpy().astype(np.int32)
    if not len(flat):
        return Grams(row, np.zeros(0, np.int64), None, None, texts, np.zeros(0, object) if where else None)
    hashed = _hash_words(flat.cast(pa.string()))
    follows = np.flatnonzero(row[1:] == row[:-1])  # a word with a next one in the same text
    unigrams = _mix(hashed + _WORD_SALT)
    bigrams = _mix(hashed[follows] * _MULTIPLIER + hashed[follows + 1] + _WORD_SALT + _WORD_SALT)
    names = None
    if where:
        text = flat.to_numpy(zero_copy_only=False).astype(object)
        names = np.concatenate([text, (text[follows] + " ") + text[follows + 1]])
    column = (np.concatenate([unigrams, bigrams]) >> np.uint64(64 - HASH_BITS)).astype(np.int64) + (1 << HASH_BITS)
    return Grams(np.concatenate([row, row[follows]]), column, None, None, texts, names)
