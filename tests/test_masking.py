"""Masking: personal data in free text and in request metadata (JSON) replaced by tokens before storage."""

from __future__ import annotations

import random

import orjson
import pandas as pd
import pytest

from chatpulse.ingest.masking import mask, mask_metadata


def _card(prefix: str, length: int) -> str:
    """A card number with a valid Luhn check digit, computed here from the definition (double every second digit
    from the right, sum the digits of the products)."""
    body = prefix + "7" * (length - len(prefix) - 1)
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)  # the check digit will sit to the right
        total += digit // 10 + digit % 10
    return body + str((10 - total % 10) % 10)


VISA, UNIONPAY, AMEX = _card("4", 16), _card("62", 19), _card("37", 15)
NOT_LUHN = VISA[:-1] + str((int(VISA[-1]) + 1) % 10)

MASKED = {
    "mail me at jane.doe+work@example.co.uk today": "mail me at [EMAIL] today",
    "我的手机是13812345678，谢谢": "我的手机是[PHONE]，谢谢",
    "call +86 138 1234 5678 or 0086-13912345678": "call [PHONE] or [PHONE]",
    "办公室电话 010-62345678 或 (0755) 2345678": "办公室电话 [PHONE] 或 [PHONE]",
    "US office (415) 555-0100, UK +44 20 7946 0958": "US office [PHONE], UK [PHONE]",
    "key sk-proj-abcDEF1234567890xyzXYZ and AKIAABCDEFGHIJKLMNOP": "key [API_KEY] and [API_KEY]",
    "身份证号 11010519491231002X 请核对": "身份证号 [ID_NUMBER] 请核对",
    "id 110105194912310021.": "id [ID_NUMBER].",
    # Values glued to words, and numbers sharing one separator.
    "tel13812345678": "tel[PHONE]",
    "user_13812345678 and user-13912345678": "user_[PHONE] and user-[PHONE]",
    "id_110101199003077578": "id_[ID_NUMBER]",
    "alice@localhost wrote": "[EMAIL] wrote",
    "13812345678,13912345678,13712345678": "[PHONE],[PHONE],[PHONE]",
    # Cards pass the Luhn check, spaced, dashed or not.
    f"visa {VISA} amex {AMEX}": "visa [CARD] amex [CARD]",
    f"银联卡 {' '.join(UNIONPAY[i : i + 4] for i in range(0, 19, 4))}": "银联卡 [CARD]",
    f"card {'-'.join(VISA[i : i + 4] for i in range(0, 16, 4))}.": "card [CARD].",
    # A card beside other numbers: the CVV or expiry after it, an amount or an address before it.
    f"card {' '.join(VISA[i : i + 4] for i in range(0, 16, 4))} 123": "card [CARD] 123",
    f"Visa {'-'.join(VISA[i : i + 4] for i in range(0, 16, 4))} 06 2028": "Visa [CARD] 06 2028",
    f"pay 5 {VISA}, from 192.168.1.20 {AMEX}": "pay 5 [CARD], from [IP] [CARD]",
    f"{NOT_LUHN} {VISA}": f"{NOT_LUHN} [CARD]",
    # IP addresses, v4 and v6 (whole or shortened), also glued.
    "from 192.168.1.20 and ip10.0.0.1.": "from [IP] and ip[IP].",
    "v6 2001:db8::8a2e:370:7334 or 2001:0db8:85a3:0000:0000:8a2e:0370:7334!": "v6 [IP] or [IP]!",
}
# Not personal data, left as they are: dates, times, versions, amounts, short numbers, near-keys, a number failing
# Luhn, epoch milliseconds, a MAC address, slices and scopes that look like short IPv6, a package version.
UNTOUCHED = [
    "on 2026-11-20 version 3.11.7 costs $1,234.56, order 12345",
    "sk-short is not a key; task-abcdefghijklmnopqrstuvwxyz is not one either",
    f"order {NOT_LUHN}, sent at 1732095600000 (2026-11-20T10:00:00.123+00:00), epoch 1700000000",
    "12:34:56 from 00:1A:2B:3C:4D:5E; x[1::2] and std::cout; pkg@1.2.3",
]
MASKED.update({text: text for text in UNTOUCHED})


@pytest.mark.parametrize(("text", "expected"), MASKED.items())
def test_mask(text: str, expected: str) -> None:
    assert mask(pd.Series([text], dtype="str")).tolist() == [expected]


def test_mask_keeps_index_dtype_and_missing_values() -> None:
    for dtype in ("str", object):
        texts = pd.Series(["a@b.io", None, "plain"], index=[5, 6, 7], dtype=dtype, name="content")
        masked = mask(texts)
        assert masked.index.tolist() == [5, 6, 7] and masked.dtype == texts.dtype and masked.name == "content"
        assert masked.iloc[0] == "[EMAIL]" and pd.isna(masked.iloc[1]) and masked.iloc[2] == "plain"


def _leaves(value: object, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(key)
            _leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, out)
    elif isinstance(value, str):
        out.append(value)


def test_metadata_is_masked_value_by_value_and_stays_json() -> None:
    metadata = [
        {"app": "helpdesk", "prompt": "hi, I am alice@x.com\ncall 13812345678\tor \\13912345678", "n": 13812345678},
        {"messages": [{"role": "user", "content": "my ip is 10.0.0.1 and my card " + VISA}], "ts": 1732095600000},
        {"f": 13812345678.0, "s": "phones:13812345678,13912345678", "ok": True, "none": None},
        {"ctl": "\u0001bob@y.org \u000213812345678 \u00012001:db8::8a2e:370:7334"},
    ]
    texts = pd.Series([orjson.dumps(m).decode() for m in metadata] + [None, "plain text 13812345678"], dtype="str")
    out = mask_metadata(texts)
    assert out.iloc[4] is None or pd.isna(out.iloc[4])
    assert out.iloc[5] == "plain text [PHONE]"
    parsed = [orjson.loads(text) for text in out.iloc[:4]]  # every one still JSON
    assert parsed[0] == {
        "app": "helpdesk",
        "prompt": "hi, I am [EMAIL]\ncall [PHONE]\tor \\[PHONE]",
        "n": "[PHONE]",  # a number that is a phone number becomes the token
    }
    assert parsed[1] == {
        "messages": [{"role": "user", "content": "my ip is [IP] and my card [CARD]"}],
        "ts": 1732095600000,
    }
    assert parsed[2] == {"f": "[PHONE].0", "s": "phones:[PHONE],[PHONE]", "ok": True, "none": None}
    assert parsed[3] == {"ctl": "\u0001[EMAIL] \u0002[PHONE] \u0001[IP]"}


def test_metadata_masking_never_breaks_json_nor_keeps_what_text_masking_removes() -> None:
    """Random JSON of personal data, escapes and punctuation: masking the JSON text must give valid JSON whose
    strings hold no personal value that masking each decoded string on its own removed."""
    rng = random.Random(16)
    atoms = [
        "alice@x.com", "bob@localhost", "13812345678", "+86 138 1234 5678", VISA, "10.0.0.1", "2001:db8::8a2e:370:7334",
        "110105194912310021", "sk-abcdefghijklmnopqrstuv", "(415) 555-0100", "\n", "\\", '"', "\t", "\u0001", "é",
        "中文", " ", ",", ":", "[", "}", "x", "12", "/", "u00e9",
    ]  # fmt: skip
    personal = atoms[:10]

    def text() -> str:
        return "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))

    def value(depth: int = 0) -> object:
        roll = rng.random()
        if depth < 2 and roll < 0.2:
            return {text()[:6]: value(depth + 1) for _ in range(rng.randint(1, 3))}
        if depth < 2 and roll < 0.3:
            return [value(depth + 1) for _ in range(rng.randint(1, 3))]
        if roll < 0.4:
            return rng.choice([13812345678, int(VISA), 1732095600000, 12, 13812345678.0, True, None])
        return text()

    records = [{"k": value(), "p": text()} for _ in range(3000)]
    out = mask_metadata(pd.Series([orjson.dumps(r).decode() for r in records], dtype="str"))
    got: list[list[str]] = []
    for masked in out:
        got.append([])
        _leaves(orjson.loads(masked), got[-1])
    wanted = []
    for record in records:
        wanted.append([])
        _leaves(record, wanted[-1])
    flat = mask(pd.Series([leaf for leaves in wanted for leaf in leaves], dtype="str")).tolist()
    expected, start = [], 0
    for leaves in wanted:
        expected.append(flat[start : start + len(leaves)])
        start += len(leaves)
    for record, mine, theirs in zip(records, got, expected, strict=True):
        for atom in personal:
            assert sum(atom in leaf for leaf in mine) <= sum(atom in leaf for leaf in theirs), (record, atom)


def test_metadata_keys_keep_only_those_keys() -> None:
    texts = pd.Series(
        ['{"app":"a","prompt":"secret text","client":"web"}', '{"prompt":"x"}', None, "not json", "[1, 2]"], dtype="str"
    )
    out = mask_metadata(texts, frozenset({"app", "client"}))
    assert out.iloc[0] == '{"app":"a","client":"web"}'
    assert out.iloc[1:].isna().all()  # nothing kept, nothing there, not a JSON object: no metadata
