"""A file's bytes as UTF-8 whatever byte order mark it starts with: the landing folder's files and a user's
labelled prompts are read alike (a Windows editor saves UTF-8 with a mark, or UTF-16)."""

from __future__ import annotations

import codecs

# UTF-32 first: its little-endian mark starts with UTF-16's.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def as_utf8(data: bytes) -> bytes:
    """A file's bytes as UTF-8 without a byte order mark.

    A UTF-16 or UTF-32 unit that is half a surrogate pair becomes bytes that are not UTF-8,
    so its row is quarantined like any other invalid text. Raises UnicodeDecodeError when a
    UTF-16 or UTF-32 file is cut mid-character.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    for bom, codec in WIDE_BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="surrogatepass").encode("utf-8", errors="surrogatepass")
    return data
