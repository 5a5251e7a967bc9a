"""Scenario rules: default labels on realistic prompts, YAML loading, per-session labels, summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.scenarios import (
    DEFAULT_LABELS,
    DEFAULT_RULES,
    OTHER,
    SCENARIO,
    Rule,
    classify,
    label_sessions,
    load_rules,
    scenario_summary,
)
from chatpulse.schema import MESSAGE_COLUMNS, REQUEST_COLUMNS
from chatpulse.sessions import SESSION_KEY, build_sessions, session_keys

DAY = dt.date(2026, 11, 20)

EXAMPLES = {
    "Write a Python function to merge two sorted lists": "coding",
    "帮我写一个快速排序的函数": "coding",
    "我的代码报错了：TypeError: 'NoneType' object is not subscriptable": "coding",
    "Translate this Python snippet to JavaScript": "coding",
    "把这段话翻译成英文": "translation",
    "Translate the following paragraph into French": "translation",
    "How do you say 'good morning' in Japanese?": "translation",
    "帮我写一封邮件给客户，说明发货延迟": "business_communication",
    "Write an email to my manager asking for a day off": "business_communication",
    "Draft a blog post about remote work": "writing",
    "写一首关于秋天的诗": "writing",
    "Please proofread my essay": "writing",
    "What is the capital of Australia?": "information_query",
    "请解释一下量子计算是什么": "information_query",
    "WHY IS THE SKY BLUE": "information_query",
    "What is the capital of France? Answer in English.": "information_query",
    "What caused the reign of terror?": "information_query",
    "hello": OTHER,
    "谢谢": OTHER,
}


@pytest.mark.parametrize(("text", "label"), EXAMPLES.items())
def test_default_rules_on_real_prompts(text, label):
    assert classify(text, DEFAULT_RULES) == label


def test_latin_keywords_match_whole_words_only():
    assert classify("Tell me the capital", [Rule("coding", keywords=("api",))]) == OTHER
    assert classify("call the API now", [Rule("coding", keywords=("api",))]) == "coding"
    assert classify("调用接口api", [Rule("coding", keywords=("api",))]) == "coding"  # CJK is not a word char here
    assert classify("改写这段", [Rule("writing", keywords=("写",))]) == "writing"


def test_keywords_and_patterns_ignore_case():
    rules = [Rule("kw", keywords=("GitHub",)), Rule("re", patterns=(r"[A-Z]{3}-\d+",))]
    assert [classify(text, rules) for text in ("open GITHUB", "ticket abc-12", "nothing")] == ["kw", "re", OTHER]


def test_first_matching_rule_wins():
    rules = [Rule("a", keywords=("x",)), Rule("b", keywords=("x", "y"))]
    assert [classify(text, rules) for text in ("x y", "y", "z")] == ["a", "b", OTHER]


def test_default_labels_in_priority_order():
    assert [rule.label for rule in DEFAULT_RULES] == [
        "coding",
        "translation",
        "business_communication",
        "writing",
        "information_query",
    ]
    assert DEFAULT_LABELS[-1] == OTHER
    assert load_rules(None) == list(DEFAULT_RULES)


def test_load_rules_from_yaml(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - label: billing\n"
        "    keywords: [invoice, 发票]\n"
        "  - label: greeting\n"
        "    patterns: ['^\\s*(hi|hello)\\b']\n",
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert [(rule.label, rule.keywords, rule.patterns) for rule in rules] == [
        ("billing", ("invoice", "发票"), ()),
        ("greeting", (), (r"^\s*(hi|hello)\b",)),
    ]
    assert [classify(text, rules) for text in ("Where is my INVOICE", "开发票", "Hello there", "say hello")] == [
        "billing",
        "billing",
        "greeting",
        OTHER,
    ]


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("labels: []\n", "rules"),
        ("rules: []\n", "rules"),
        ("rules: [{keywords: [a]}]\n", "rules[0].label"),
        ("rules: [{label: x, keywords: a}]\n", "rules[0].keywords"),
        ("rules: [{label: x, keywords: [a, 3]}]\n", "rules[0].keywords"),
        ("rules: [{label: x, keywords: [a]}, {label: y, patterns: ['(']}]\n", "rules[1].patterns[0]"),
        ("rules: [{label: x, patterns: [a, '(?<=a)b']}]\n", "rules[0].patterns[1]"),
        ("rules: [{label: x, keyword: [a]}]\n", "rules[0]"),
        ("rules: [{label: x}]\n", "rules[0]"),
        ("rules: [x]\n", "rules[0]"),
        ("rules: [\n", "YAML"),
    ],
)
def test_invalid_rules_file_names_file_and_key(tmp_path: Path, content: str, key: str):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_rules(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)


def _frame(columns: dict[str, str], rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(columns)).astype({"session_id": "str", "user_id": "str"})
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).dt.as_unit("ns")
    return out


def _conversations() -> tuple[pd.DataFrame, pd.DataFrame]:
    """s1 coding (user text), s2 translation, a gap session for u9 (writing), s4 request-only."""
    messages = _frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "role": "user", "content": "Fix my Python code"},
            {"timestamp": "2026-11-20T10:00:05Z", "session_id": "s1", "role": "assistant", "content": "Translate"},
            {"timestamp": "2026-11-20T11:00:00Z", "session_id": "s2", "role": "system", "content": "Write code"},
            {"timestamp": "2026-11-20T11:00:01Z", "session_id": "s2", "role": "user", "content": "把这句话翻译成中文"},
            {"timestamp": "2026-11-20T12:00:00Z", "user_id": "u9", "role": "user", "content": "写一篇文章"},
        ],
    )
    requests = _frame(
        REQUEST_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:01Z", "session_id": "s1"},
            {"timestamp": "2026-11-20T10:01:00Z", "session_id": "s1"},
            {"timestamp": "2026-11-20T11:00:02Z", "session_id": "s2"},
            {"timestamp": "2026-11-20T12:00:01Z", "user_id": "u9"},
            {"timestamp": "2026-11-20T13:00:00Z", "session_id": "s4"},
            {"timestamp": "2026-11-20T14:00:00Z"},  # in no session
        ],
    )
    return requests, messages


def test_label_sessions_uses_user_messages_only():
    requests, messages = _conversations()
    sessions = build_sessions(requests, messages)
    messages[SESSION_KEY] = session_keys(requests, messages)[1]
    labels = label_sessions(sessions, messages, DEFAULT_RULES)
    assert labels.index.equals(sessions.index)
    assert labels.name == SCENARIO
    assert dict(zip(sessions["session_id"], labels, strict=True)) == {
        "s1": "coding",
        "s2": "translation",
        "u9@2026-11-20T12:00:00+00:00": "writing",
        "s4": OTHER,
    }


def test_label_sessions_joins_user_messages_first_message_first():
    messages = _frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:05:00Z", "session_id": "s1", "role": "user", "content": "second"},
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "role": "user", "content": "first"},
        ],
    )
    messages[SESSION_KEY] = messages["session_id"].astype(object)
    sessions = build_sessions(_frame(REQUEST_COLUMNS, []), messages)
    rules = [Rule("ordered", patterns=(r"\Afirst\nsecond\z",))]
    assert label_sessions(sessions, messages, rules).tolist() == ["ordered"]


def test_label_sessions_agrees_with_classify():
    texts = list(EXAMPLES)
    messages = _frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": f"s{number}", "role": "user", "content": text}
            for number, text in enumerate(texts)
        ],
    )
    messages[SESSION_KEY] = messages["session_id"].astype(object)
    sessions = build_sessions(_frame(REQUEST_COLUMNS, []), messages)
    labels = dict(zip(sessions["session_id"], label_sessions(sessions, messages, DEFAULT_RULES), strict=True))
    assert [labels[f"s{number}"] for number in range(len(texts))] == list(EXAMPLES.values())


def test_label_sessions_without_messages():
    requests, messages = _conversations()
    sessions = build_sessions(requests, messages.iloc[:0])
    no_messages = messages.iloc[:0].assign(**{SESSION_KEY: pd.Series(dtype=object)})
    assert label_sessions(sessions, no_messages, DEFAULT_RULES).tolist() == [OTHER] * 4
    assert label_sessions(sessions.iloc[:0], no_messages, DEFAULT_RULES).empty


def test_scenario_summary():
    requests, messages = _conversations()
    sessions = build_sessions(requests, messages)
    _, message_keys = session_keys(requests, messages)
    sessions[SCENARIO] = label_sessions(sessions, messages.assign(**{SESSION_KEY: message_keys}), DEFAULT_RULES)
    summary = scenario_summary(sessions, DAY)
    assert list(summary.columns) == ["day", "scenario", "sessions", "requests"]
    assert summary.values.tolist() == [
        ["2026-11-20", "coding", 1, 2],
        ["2026-11-20", "translation", 1, 1],
        ["2026-11-20", "business_communication", 0, 0],
        ["2026-11-20", "writing", 1, 1],
        ["2026-11-20", "information_query", 0, 0],
        ["2026-11-20", OTHER, 1, 1],
    ]


def test_scenario_summary_appends_custom_labels_and_handles_empty():
    sessions = pd.DataFrame({"session_id": ["a", "b"], SCENARIO: ["zeta", "billing"], "requests": [2, 1]})
    summary = scenario_summary(sessions, DAY)
    assert summary["scenario"].tolist() == [*DEFAULT_LABELS, "billing", "zeta"]
    assert summary["sessions"].tolist()[-2:] == [1, 1]
    assert summary["requests"].tolist() == [0] * len(DEFAULT_LABELS) + [1, 2]

    empty = scenario_summary(sessions.iloc[:0], DAY)
    assert empty["scenario"].tolist() == list(DEFAULT_LABELS)
    assert empty[["sessions", "requests"]].sum().tolist() == [0, 0]
