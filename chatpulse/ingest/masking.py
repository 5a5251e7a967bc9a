"""Masking: personal data in free text replaced by a token such as [EMAIL] before anything stores the text.

The patterns run through Arrow's RE2 engine: one combined pass over every text finds the few
that need masking, and only those get the per-pattern replacements, still in RE2. RE2 has no
lookarounds, so a pattern that must not touch a longer run of digits (a phone number inside an
order number) matches the character on either side too and puts it back; it runs twice, since
two numbers sharing one separator (`13812345678,13912345678`) cannot both claim it in one pass.
Only card numbers leave RE2: the few texts holding a 13-19 digit candidate get a Luhn check in
Python, so an order number is not taken for a card.

Request metadata is JSON text, masked the same way: no pattern starts inside an escape such as
`\n` (an e-mail address right after a line break keeps the break). A JSON number that would be
masked (a phone number stored as a number) would leave a bare token, so the rare texts holding
one are parsed and masked value by value instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from chatpulse.schema import by_category

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_HEX = r"[0-9A-Fa-f]{1,4}"
# An address written whole, or shortened by `::` with at least three groups left: `1::2` (a Python slice,
# a C++ scope of hex-looking names) is not taken for one; `::1` and `fe80::1` are not personal anyway.
_IPV6 = rf"(?:{_HEX}:){{7}}{_HEX}|{_HEX}:(?::{_HEX}){{2,6}}|(?:{_HEX}:){{2,6}}(?::{_HEX}){{1,6}}"


def _luhn(candidate: str) -> bool:
    """Whether the digits of `candidate` pass the Luhn check every payment card number passes."""
    digits = [int(c) for c in candidate if c.isdigit()][::-1]
    return sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)) % 10 == 0


# JSON escapes (`\n`, `\u00e9`, `\"`): an e-mail or key after one is matched with it, and the escape put back.
_ESCAPES = r'(?:\\(?:[nrtbf/"\\]|u[0-9A-Fa-f]{4}))'


@dataclass(frozen=True)
class Mask:
    """One kind of personal data: its token, its RE2 pattern, and what may stand before and after it.

    `apart` is a character class (without brackets) the match may not be glued to: `0-9` keeps a
    phone number out of a longer number while `tel13812345678` and `user_13812345678` are still
    masked; `before`, when given, replaces it on the left. `lead` instead is what may come right
    before the match. `check`, when set, must also accept each match (the Luhn check of cards); such a
    mask's matches are taken from runs of `apart` characters joined by single spaces or dashes, by
    whole pieces (see `checked`), so a card next to an expiry date or after another number is found.
    """

    token: str
    core: str
    apart: str | None = None
    before: str | None = None
    lead: str = ""
    check: Callable[[str], bool] | None = None

    @property
    def pattern(self) -> str:
        """The RE2 pattern; group 1 and group 2 are what stands around the match, kept by `replacement`."""
        if self.apart is None:
            return rf"({self.lead})(?:{self.core})()"
        # A JSON escape `\u0001` is one character before the match, never the start of one; a `u` is
        # before it only when it does not begin such an escape.
        lead = rf"^u?|[^{self.before or self.apart}u]|[^\\]u|\\u[0-9A-Fa-f]{{4}}"
        return rf"({lead})(?:{self.core})([^{self.apart}]|$)"

    @property
    def replacement(self) -> str:
        return rf"\1{self.token}\2"

    def checked(self, text: str) -> str:
        """`text` with each match `check` accepts replaced by the token (a mask with `apart` and `check` only).

        A regex match alone is not enough: greedy, it takes `4111 1111 1111 1111 123` whole (failing Luhn)
        and never the card inside. So each run of pieces (`apart` characters) joined by one space or dash
        is tried piece-aligned, leftmost start first, longest first: what matches `core` whole and passes
        `check` is replaced, and the search goes on after it. A run does not start inside a JSON escape
        (`\\u00a0`), but may right after one.
        """
        piece = f"[{self.apart}]+"
        inside_escape = "".join(rf"(?<!\\u{'[0-9A-Fa-f]' * width})" for width in range(4))
        runs = re.compile(
            rf"(?:(?<![{self.apart}]){inside_escape}|(?<=\\u[0-9A-Fa-f]{{4}})){piece}(?:[ -]{piece})*", re.ASCII
        )
        whole, pieces = re.compile(rf"(?:{self.core})\Z", re.ASCII), re.compile(piece, re.ASCII)
        check = self.check
        assert check is not None

        def replace(run: re.Match[str]) -> str:
            bounds = [found.span() for found in pieces.finditer(run[0])]
            out, kept, first = [], 0, 0
            while first < len(bounds):
                for last in range(len(bounds) - 1, first - 1, -1):
                    candidate = run[0][bounds[first][0] : bounds[last][1]]
                    if whole.match(candidate) and check(candidate):
                        out += [run[0][kept : bounds[first][0]], self.token]
                        kept, first = bounds[last][1], last
                        break
                first += 1
            return "".join(out) + run[0][kept:]

        return runs.sub(replace, text)


_MOBILE = r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}"
_ID_NUMBER = r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
_CARD = r"[2-6](?:[ -]?[0-9]){12,18}"
# Applied in order: keys and addresses, then ID numbers and cards before the looser phone patterns.
MASKS: tuple[Mask, ...] = (
    Mask(
        "[API_KEY]",
        r"sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
        r"|AIza[0-9A-Za-z_-]{35}",
        lead=rf"^|[^A-Za-z0-9_]|{_ESCAPES}",  # a word of its own, not the tail of `task-...`
    ),
    # A domain without a dot too (alice@localhost), but starting with a letter: `pkg@1.2.3` is a version.
    Mask("[EMAIL]", r"[A-Za-z0-9._%+-]+@[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*", lead=f"{_ESCAPES}*"),
    # Mainland China resident ID: 6-digit region, birth date 18xx-20xx, 3 digits, check digit or X.
    Mask("[ID_NUMBER]", _ID_NUMBER, apart="0-9"),
    # Payment cards: 13-19 digits from an issuer range (2-6), spaced or dashed anyhow, passing Luhn.
    Mask("[CARD]", _CARD, apart="0-9", check=_luhn),
    Mask("[IP]", rf"{_OCTET}(?:\.{_OCTET}){{3}}", apart="0-9"),
    # Not right after a lone backslash: `\fe80::...` in JSON is a form feed (`\f`) and `e80::...`.
    Mask("[IP]", _IPV6, apart="0-9A-Fa-f:", before=r"0-9A-Fa-f:\\"),
    Mask(
        "[PHONE]",
        "|".join(
            (
                # Mainland China mobile, optionally +86 / 0086 / 86 and spaced or dashed 3-4-4.
                _MOBILE,
                # Mainland China landline with area code: 010-12345678, (0755) 1234567.
                r"(?:0[0-9]{2,3}-|\(0[0-9]{2,3}\)\s?)[0-9]{7,8}",
                # International (+44 20 7946 0958) and North American ((415) 555-0100, 415.555.0100) numbers.
                r"\+[0-9]{1,3}[ -]?\(?[0-9]{1,4}\)?(?:[ .-]?[0-9]{2,4}){2,4}",
                r"(?:\([0-9]{3}\)\s?|[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}",
            )
        ),
        apart="0-9",
    ),
)
# A JSON number a mask would replace (a mobile, ID or card number written as a number), or such text in a string.
_BARE_NUMBER = (
    rf"[:\[,]\s*-?(?:(?:86)?1[3-9][0-9]{{9}}|{_ID_NUMBER.removesuffix('[0-9Xx]')}[0-9]|[2-6][0-9]{{12,18}})"
    r"(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\s*[,}\]]"
)
_ANY = "|".join(f"(?:{m.pattern})" for m in MASKS)


def _arrow(texts: pd.Series) -> pa.Array:
    """The texts as one contiguous Arrow string array (an Arrow-backed Series may hand over several chunks)."""
    array = pa.array(texts, pa.string())
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _hits(texts: pa.Array, pattern: str) -> np.ndarray:
    """Positions of the texts `pattern` finds something in (missing texts: none)."""
    return np.flatnonzero(pc.fill_null(pc.match_substring_regex(texts, pattern), False).to_numpy(False))


def _replaced(texts: pa.Array, mask: Mask, passes: int) -> pa.Array:
    """The texts with `mask` applied to those it finds something in, `passes` times (see the module's docstring).

    Finding (RE2's fast automaton) is several times cheaper than replacing, so only the texts found are rewritten.
    """
    rows = _hits(texts, mask.pattern)
    if not len(rows) or not passes:
        return texts
    found = texts.take(rows)
    if mask.check is not None:  # few texts hold a candidate: check and replace them in Python
        found = pa.array([mask.checked(text) for text in found.to_pylist()], pa.string())
        passes = 1
    else:
        found = pc.replace_substring_regex(found, mask.pattern, mask.replacement)
    chosen = np.zeros(len(texts), dtype=bool)
    chosen[rows] = True
    return _replaced(pc.replace_with_mask(texts, pa.array(chosen), found), mask, passes - 1)


def _masked(texts: pa.Array) -> pa.Array:
    for mask in MASKS:
        texts = _replaced(texts, mask, 1 if mask.apart is None else 2)
    return texts


def mask(texts: pd.Series) -> pd.Series:
    """texts with e-mails, phone, card and ID numbers, IP addresses and API keys replaced by [EMAIL], [PHONE],
    [CARD], [ID_NUMBER], [IP] and [API_KEY]; index, name, dtype and missing values kept."""
    if isinstance(texts.dtype, pd.CategoricalDtype):
        return by_category(texts, mask)
    array = _arrow(texts)
    hits = _hits(array, _ANY)
    if not len(hits):
        return texts
    masked = _masked(array.take(hits))
    if isinstance(texts.dtype, pd.StringDtype):  # Arrow-backed text: put the masked ones back without Python
        chosen = np.zeros(len(array), dtype=bool)
        chosen[hits] = True
        whole = pc.replace_with_mask(array, pa.array(chosen), masked)
        return pd.Series(pd.array(whole, dtype=texts.dtype), index=texts.index, name=texts.name)
    out = texts.copy()
    out.iloc[hits] = masked.to_pylist()
    return out


def _leaves(value: Any, out: list[str]) -> None:
    """Collect the texts of a parsed JSON value that may hold personal data: strings, keys and numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(key)
            _leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, out)
    elif isinstance(value, str):
        out.append(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))


def _rebuilt(value: Any, masked: Iterator[str]) -> Any:
    """The JSON value with its leaves taken in `_leaves` order from `masked`; a number masked becomes its token."""
    if isinstance(value, dict):
        return {next(masked): _rebuilt(item, masked) for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuilt(item, masked) for item in value]
    if isinstance(value, str):
        return next(masked)
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = next(masked)
        return value if text == str(value) else text
    return value


def _masked_json(text: str) -> str:
    """One JSON text masked value by value (a number that is masked becomes its token as a string)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return mask(pd.Series([text], dtype="str")).iloc[0]
    leaves: list[str] = []
    _leaves(value, leaves)
    return orjson.dumps(_rebuilt(value, iter(mask(pd.Series(leaves, dtype="str")).tolist()))).decode()


def _kept(text: str, keep: frozenset[str]) -> str | None:
    """The JSON object's keys in `keep` (None when none is left, or the text is not a JSON object)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    kept = {key: item for key, item in value.items() if key in keep} if isinstance(value, dict) else {}
    return orjson.dumps(kept).decode() if kept else None


def mask_metadata(metadata: pd.Series, keep: frozenset[str] | None = None) -> pd.Series:
    """Request metadata (JSON text) with personal data masked in every key and value, and, when `keep` is
    given, only those top-level keys kept (metadata left empty, or not a JSON object, becomes missing).

    Masks the JSON text in RE2 like any text (see the module's docstring); only the texts holding a
    number that would be masked are parsed (Python). Cutting to `keep` parses every row (about 0.5 s
    a million rows). A text that is not JSON (a log's own metadata string) is masked as text.
    """
    if isinstance(metadata.dtype, pd.CategoricalDtype):
        return by_category(metadata, lambda texts: mask_metadata(texts, keep))
    if keep is not None:
        present = np.flatnonzero(metadata.notna().to_numpy())
        metadata = metadata.copy()
        metadata.iloc[present] = [_kept(text, keep) for text in metadata.iloc[present]]
    texts = _arrow(metadata)
    hits = _hits(texts, _ANY)
    if not len(hits):
        return metadata
    bare = _hits(texts.take(hits), _BARE_NUMBER)
    out = mask(metadata)
    # Rows holding a number that masking turned into a bare token: parsed and masked value by value instead.
    out.iloc[hits[bare]] = [_masked_json(text) for text in metadata.iloc[hits[bare]]]
    return out
