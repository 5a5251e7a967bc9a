"""Scenario rules: default labels on realistic prompts, YAML loading, per-session labels, summary."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chatpulse.behaviour.feedback import rate, satisfaction_by
from chatpulse.behaviour.scenario_model import scenario_model
from chatpulse.behaviour.scenario_rules import DEFAULT_RULES, OTHER, Rule, ScenarioRuleError, load_rules
from chatpulse.behaviour.scenarios import (
    DEFAULT_LABELS,
    EXAMPLE_SIMILARITY,
    LANGUAGE,
    MODEL_TRUST,
    SCENARIO,
    SCENARIO_CONFIDENCE,
    SCENARIO_RULE,
    SESSION_ROW,
    UNKNOWN_MODEL,
    classify,
    classify_prompts,
    label_sessions,
    scenario_languages,
    scenario_summary,
    session_rows,
    session_usage,
)
from chatpulse.behaviour.sessions import build_sessions
from chatpulse.schema import FEEDBACK_COLUMNS, MESSAGE_COLUMNS, REQUEST_COLUMNS

from fixtures import event_frame, postgres_widths

DAY = dt.date(2026, 11, 20)

EXAMPLES = {
    "Write a Python function to merge two sorted lists": "coding",
    "帮我写一个快速排序的函数": "coding",
    "我的代码报错了：TypeError: 'NoneType' object is not subscriptable": "coding",
    "Translate this Python snippet to JavaScript": "coding",
    "把这段话翻译成英文": "translation",
    "Translate the following paragraph into French": "translation",
    "How do you say 'good morning' in Japanese?": "translation",
    "Solve for x: 3x + 5 = 20": "math_reasoning",
    "计算一下这个月的平均数是多少": "math_reasoning",
    "Here is a logic puzzle for you": "math_reasoning",
    "Pretend you are a pirate and tell me about your ship": "creative_roleplay",
    "写一首关于秋天的诗": "creative_roleplay",
    "Tell me a bedtime story about a dragon": "creative_roleplay",
    "Summarize this article in three bullet points": "extraction_summary",
    "从这段文字中提取所有人名": "extraction_summary",
    "帮我写一封邮件给客户，说明发货延迟": "business_communication",
    "Write an email to my manager asking for a day off": "business_communication",
    "Draft a blog post about remote work": "writing",
    "Please proofread my essay": "writing",
    "How do I get rid of mold in my bathroom?": "practical_guidance",
    "推荐几个适合新手的健身计划": "practical_guidance",
    "What is the capital of Australia?": "information_query",
    "请解释一下量子计算是什么": "information_query",
    "WHY IS THE SKY BLUE": "information_query",
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


def test_first_turn_outweighs_later_turns_and_sets_confidence():
    rules = [Rule("a", keywords=("x",), name="a1"), Rule("b", keywords=("y",)), Rule("a", keywords=("z",), name="a2")]
    # first turn 2 points, any later turn 1 point; confidence = winner / sum of label scores
    assert classify("y", rules, later=["x"]) == "b"
    assert classify("hello", rules, later=["thanks", "y"]) == "b"
    messages = event_frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "role": "user", "content": "y"},
            {"timestamp": "2026-11-20T10:01:00Z", "session_id": "s1", "role": "user", "content": "x z"},
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s2", "role": "user", "content": "x and y"},
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s3", "role": "user", "content": "z"},
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s4", "role": "user", "content": "nothing"},
        ],
    )
    requests = event_frame(REQUEST_COLUMNS, [])
    sessions = build_sessions(requests, messages)
    messages[SESSION_ROW] = session_rows(sessions, requests, messages)[1]
    labels = label_sessions(sessions, messages, rules).set_index(sessions["session_id"])
    assert labels[SCENARIO].tolist() == ["b", "a", "a", OTHER]
    assert labels[SCENARIO_RULE].tolist()[:3] == ["b", "a1", "a2"]
    assert pd.isna(labels[SCENARIO_RULE].iloc[3])
    # s1: b 2 vs a 1 -> 2/3; s2: a 2 and b 2, a first -> 1/2; s3: only a -> 1
    assert labels[SCENARIO_CONFIDENCE].tolist()[:3] == [2 / 3, 0.5, 1.0]
    assert pd.isna(labels[SCENARIO_CONFIDENCE].iloc[3])


def test_default_taxonomy_in_priority_order():
    assert DEFAULT_LABELS == (
        "coding",
        "translation",
        "math_reasoning",
        "creative_roleplay",
        "extraction_summary",
        "business_communication",
        "writing",
        "practical_guidance",
        "information_query",
        OTHER,
    )
    assert len({rule.name for rule in DEFAULT_RULES}) == len(DEFAULT_RULES)


def test_load_rules_from_yaml(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - label: billing\n"
        "    keywords: [invoice, 发票]\n"
        "  - label: greeting\n"
        "    name: hello\n"
        "    patterns: ['^\\s*(hi|hello)\\b']\n",
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert [(rule.label, rule.name, rule.keywords, rule.patterns) for rule in rules] == [
        ("billing", "billing", ("invoice", "发票"), ()),
        ("greeting", "hello", (), (r"^\s*(hi|hello)\b",)),
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
        ("rules: [{label: x, name: 3, keywords: [a]}]\n", "rules[0].name"),
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


def _conversations() -> tuple[pd.DataFrame, pd.DataFrame]:
    """s1 coding (user text), s2 translation, a gap session for u9 (writing), s4 request-only."""
    messages = event_frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": "s1", "role": "user", "content": "Fix my Python code"},
            {"timestamp": "2026-11-20T10:00:05Z", "session_id": "s1", "role": "assistant", "content": "Translate"},
            {"timestamp": "2026-11-20T11:00:00Z", "session_id": "s2", "role": "system", "content": "Write code"},
            {"timestamp": "2026-11-20T11:00:01Z", "session_id": "s2", "role": "user", "content": "把这句话翻译成中文"},
            {"timestamp": "2026-11-20T12:00:00Z", "user_id": "u9", "role": "user", "content": "写一篇文章"},
        ],
    )
    requests = event_frame(
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


def _keyed(requests: pd.DataFrame, messages: pd.DataFrame) -> pd.DataFrame:
    """Sessions of the frames, with SESSION_ROW set on both frames."""
    sessions = build_sessions(requests, messages)
    requests[SESSION_ROW], messages[SESSION_ROW] = session_rows(sessions, requests, messages)
    return sessions


def test_label_sessions_uses_user_messages_only():
    requests, messages = _conversations()
    sessions = _keyed(requests, messages)
    labels = label_sessions(sessions, messages, DEFAULT_RULES)
    assert labels.index.equals(sessions.index)
    assert dict(zip(sessions["session_id"], labels[SCENARIO], strict=True)) == {
        "s1": "coding",
        "s2": "translation",
        "u9@2026-11-20T12:00:00+00:00": "writing",
        "s4": OTHER,
    }


def test_label_sessions_agrees_with_classify():
    texts = list(EXAMPLES)
    messages = event_frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": f"s{number}", "role": "user", "content": text}
            for number, text in enumerate(texts)
        ],
    )
    sessions = _keyed(event_frame(REQUEST_COLUMNS, []), messages)
    labels = dict(zip(sessions["session_id"], label_sessions(sessions, messages, DEFAULT_RULES)[SCENARIO], strict=True))
    assert [labels[f"s{number}"] for number in range(len(texts))] == list(EXAMPLES.values())


def test_label_sessions_without_messages():
    requests, messages = _conversations()
    sessions = _keyed(requests, messages.iloc[:0].copy())
    no_messages = messages.iloc[:0].assign(**{SESSION_ROW: pd.Series(dtype="int64")})
    assert label_sessions(sessions, no_messages, DEFAULT_RULES)[SCENARIO].tolist() == [OTHER] * 4
    assert label_sessions(sessions.iloc[:0], no_messages, DEFAULT_RULES).empty


def _summary_day() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The conversations with models, latencies, errors, tokens, costs and two ratings on s1."""
    requests, messages = _conversations()
    requests["model"] = ["gpt-4o", "gpt-4o-mini", "gpt-4o", "o3", "gpt-4o", "gpt-4o"]
    requests["latency_ms"] = [100.0, 300.0, 1000.0, 50.0, 70.0, 5.0]
    requests["status_code"] = [200, 500, 200, 200, 200, 200]
    requests["error_type"] = pd.Series([None] * 6, dtype="str")
    requests["prompt_tokens"] = pd.array([10, 20, 30, 40, 50, 60], dtype="Int64")
    requests["completion_tokens"] = pd.array([1, 2, 3, 4, 5, 6], dtype="Int64")
    requests["total_tokens"] = requests["prompt_tokens"] + requests["completion_tokens"]
    requests["cost_usd"] = [0.5, 0.25, 1.0, 2.0, 4.0, 8.0]
    sessions = _keyed(requests, messages)
    sessions = pd.concat(
        [sessions, label_sessions(sessions, messages, DEFAULT_RULES), session_usage(sessions, requests)], axis=1
    )
    feedback = event_frame(
        FEEDBACK_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:02:00Z", "session_id": "s1", "user_id": "u1", "rating": 1},
            {"timestamp": "2026-11-20T10:03:00Z", "session_id": "s1", "user_id": "u1", "rating": -1},
        ],
    )
    return sessions, requests, rate(sessions, feedback, messages, requests)


def test_session_usage():
    sessions, _, _ = _summary_day()
    usage = sessions.set_index("session_id")[
        ["model", "errors", "latency_mean_ms", "latency_max_ms", "total_tokens", "cost_usd"]
    ]
    assert usage.loc["s1"].tolist() == ["gpt-4o", 1, 200.0, 300.0, 33, 0.75]  # tie gpt-4o / gpt-4o-mini: alphabetical
    assert usage.loc["s4"].tolist() == ["gpt-4o", 0, 70.0, 70.0, 55, 4.0]
    assert usage.loc["u9@2026-11-20T12:00:00+00:00"].tolist() == ["o3", 0, 50.0, 50.0, 44, 2.0]


def test_a_cost_nobody_logged_stays_unknown_not_zero():
    """Sessions and scenarios whose requests logged no cost keep NaN; a partly logged one sums what was logged."""
    sessions, requests, rated = _summary_day()
    requests["cost_usd"] = [np.nan, 0.25, np.nan, np.nan, np.nan, 8.0]  # s1 logs one of two; s2, s4 and u9 none
    usage = session_usage(sessions, requests).set_axis(sessions["session_id"])["cost_usd"]
    assert usage["s1"] == 0.25 and usage[["s2", "s4", "u9@2026-11-20T12:00:00+00:00"]].isna().all()
    sessions["cost_usd"] = usage.to_numpy()
    summary = scenario_summary(sessions, requests, rated, DAY).set_index("scenario")["cost_usd"]
    assert summary["coding"] == 0.25  # s1
    assert summary[["other", "translation", "writing", "math_reasoning"]].isna().all()  # s4, s2, u9, no session


def test_sessions_without_a_model_are_unknown_in_every_table():
    requests, messages = _conversations()
    requests["model"] = ["gpt-4o", "gpt-4o", None, "o3", None, "gpt-4o"]  # s2's one request names no model
    requests["status_code"] = 200
    requests["error_type"] = pd.Series([None] * 6, dtype="str")
    requests = requests.drop(index=0)  # ... and s1 keeps one request
    s5 = event_frame(MESSAGE_COLUMNS, [{"timestamp": "2026-11-20T15:00:00Z", "session_id": "s5", "role": "user"}])
    messages = pd.concat([messages, s5], ignore_index=True)  # s5 has a message and no request
    sessions = _keyed(requests, messages)
    sessions = pd.concat(
        [sessions, label_sessions(sessions, messages, DEFAULT_RULES), session_usage(sessions, requests)], axis=1
    )
    models = dict(zip(sessions["session_id"], sessions["model"], strict=True))
    assert models == {
        "s1": "gpt-4o",
        "s2": UNKNOWN_MODEL,
        "u9@2026-11-20T12:00:00+00:00": "o3",
        "s4": UNKNOWN_MODEL,
        "s5": UNKNOWN_MODEL,
    }
    feedback = event_frame(
        FEEDBACK_COLUMNS,
        [
            {"timestamp": "2026-11-20T11:05:00Z", "session_id": "s2", "user_id": "u1", "rating": -1},
            {"timestamp": "2026-11-20T15:05:00Z", "session_id": "s5", "user_id": "u1", "rating": 1},
        ],
    )
    rated = rate(sessions, feedback, messages, requests)
    by_model = scenario_summary(sessions, requests, rated, DAY, by_model=True)
    unknown = by_model[by_model["model"] == UNKNOWN_MODEL]
    assert unknown[["scenario", "sessions", "ratings"]].values.tolist() == [["other", 2, 1], ["translation", 1, 1]]
    assert satisfaction_by(rated, sessions, "model")[["model", "ratings"]].values.tolist() == [[UNKNOWN_MODEL, 2]]


def test_scenario_summary():
    sessions, requests, rated = _summary_day()
    summary = scenario_summary(sessions, requests, rated, DAY).set_index("scenario")
    assert summary.index.tolist() == list(DEFAULT_LABELS)
    coding = summary.loc["coding"]
    # s1 names no user: no user, not one
    assert coding[["sessions", "users", "requests", "turns", "errors", "prompt_tokens", "total_tokens"]].tolist() == [
        1,
        0,
        2,
        1,
        1,
        30,
        33,
    ]
    assert coding["share"] == 0.25 and coding["error_rate"] == 0.5
    assert coding["latency_p50_ms"] == 200.0 and coding["latency_p95_ms"] == pytest.approx(100 + 0.95 * 200)
    assert coding["duration_p50_s"] == pytest.approx(60.3)  # 10:00:00 to the request ending 10:01:00.3
    assert (coding["rated_sessions"], coding["ratings"], coding["satisfaction"], coding["feedback_coverage"]) == (
        1,
        2,
        0.5,
        1.0,
    )
    assert (
        summary.loc["other", "requests"] == 1 and summary.loc["other", "cost_usd"] == 4.0
    )  # s4; the id-less request is in none
    assert summary.loc["math_reasoning", "sessions"] == 0 and pd.isna(summary.loc["math_reasoning", "error_rate"])
    assert summary["sessions"].sum() == len(sessions) and summary["requests"].sum() == 5


def test_sessions_without_a_user_id_add_no_user():
    """A log with no user column (BurstGPT) has no users in the scenario tables either, and sessions without
    a user id beside named ones add none: the named users alone, as daily_metrics counts them."""
    sessions, requests, rated = _summary_day()
    sessions[SCENARIO] = "coding"
    sessions["user_id"] = pd.Series(["u1", None, "u1", None], dtype="str")
    summary = scenario_summary(sessions, requests, rated, DAY).set_index("scenario")
    assert summary.loc["coding", "users"] == sessions["user_id"].dropna().nunique() == 1
    by_model = scenario_summary(sessions, requests, rated, DAY, by_model=True)
    expected = sessions.groupby("model")["user_id"].nunique()
    assert by_model.set_index("model")["users"].to_dict() == expected.to_dict() == {"gpt-4o": 1, "o3": 1}
    sessions["user_id"] = pd.Series([None] * 4, dtype="str")
    assert scenario_summary(sessions, requests, rated, DAY)["users"].sum() == 0


def test_scenario_summary_by_model_and_custom_labels():
    sessions, requests, rated = _summary_day()
    by_model = scenario_summary(sessions, requests, rated, DAY, by_model=True)
    assert by_model[["scenario", "model", "sessions", "requests"]].values.tolist() == [
        ["coding", "gpt-4o", 1, 2],
        ["other", "gpt-4o", 1, 1],
        ["translation", "gpt-4o", 1, 1],
        ["writing", "o3", 1, 1],
    ]
    sessions[SCENARIO] = ["zeta", "billing", "zeta", "billing"]
    summary = scenario_summary(sessions, requests, rated, DAY)
    assert summary["scenario"].tolist() == [*DEFAULT_LABELS, "billing", "zeta"]
    empty = scenario_summary(sessions.iloc[:0], requests.iloc[:0], rated.iloc[:0], DAY)
    assert empty["scenario"].tolist() == list(DEFAULT_LABELS)
    assert empty[["sessions", "requests", "ratings"]].sum().tolist() == [0, 0, 0]


def _one_turn(texts: list[str | None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions s0, s1, ... of one user message each (None: a session whose message has no text)."""
    messages = event_frame(
        MESSAGE_COLUMNS,
        [
            {"timestamp": "2026-11-20T10:00:00Z", "session_id": f"s{number}", "role": "user", "content": text}
            for number, text in enumerate(texts)
        ],
    )
    return _keyed(event_frame(REQUEST_COLUMNS, []), messages), messages


def test_model_labels_prompts_the_rules_miss_and_says_why():
    texts = ["Bitte diesen Absatz ins Englische bringen.", "Écris un poème sur la mer.", None]
    sessions, messages = _one_turn(texts)
    labels = label_sessions(sessions, messages, DEFAULT_RULES, scenario_model())
    assert labels[SCENARIO].tolist() == ["translation", "creative_roleplay", OTHER]
    assert all(rule.startswith('model: "') for rule in labels[SCENARIO_RULE].iloc[:2])
    assert ((labels[SCENARIO_CONFIDENCE].iloc[:2] > 0) & (labels[SCENARIO_CONFIDENCE].iloc[:2] <= 1)).all()
    assert labels[LANGUAGE].tolist()[:2] == ["de", "fr"] and pd.isna(labels[LANGUAGE].iloc[2])


def test_precedence_of_examples_custom_rules_model_and_rules():
    model = scenario_model()
    rules = [  # the file's order is the priority among rules: billing first
        Rule("billing", keywords=("invoice",)),
        *DEFAULT_RULES,
        Rule("standup", examples=("yesterday i fixed the login bug, today i review pull requests",)),
    ]
    texts = [
        "Yesterday I fixed the login bug; today I review pull requests.",  # close to the example
        "Write an email to the client about the invoice",  # a label only a rule knows beats the model
        "Write a Python function that sorts a list",  # the model, sure of itself
        "bonjour tout le monde",  # no rule matches: the model's label however unsure
    ]
    labels = classify_prompts(texts, rules, model)
    assert labels.scenario.tolist()[:3] == ["standup", "billing", "coding"]
    assert labels.rule[0] == "example" and labels.confidence[0] >= EXAMPLE_SIMILARITY
    assert labels.rule[1] == "billing" and labels.rule[2].startswith("model: ")
    expected = model.labels[model.predict(texts[3:]).label[0]]
    assert labels.scenario[3] == expected and labels.rule[3].startswith("model: ")
    # a rule decides where the model is less than MODEL_TRUST sure
    unsure = "xq weather zv"
    probability = model.predict([unsure]).probability[0]
    assert probability < MODEL_TRUST
    assert classify(unsure, [Rule("found", keywords=("zv",))], model=model) == "found"


def test_an_over_model_rule_decides_over_a_sure_model_on_the_first_message_only(tmp_path: Path):
    model = scenario_model()
    text = "Write a poem about the sea"
    probability = model.predict([text]).probability[0]
    assert model.labels[model.predict([text]).label[0]] == "creative_roleplay" and probability > 0.9
    plain, over = Rule("translation", keywords=("sea",)), Rule("translation", keywords=("sea",), over_model=True)
    assert classify(text, [plain], model=model) == "creative_roleplay"  # the model, sure of itself
    assert classify(text, [over], model=model) == "translation"
    # a match in a later turn alone does not override
    assert classify("Write a poem", [over], later=["about the sea"], model=model) == "creative_roleplay"
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - label: translation\n    keywords: [sea]\n    over_model: true\n", encoding="utf-8"
    )
    assert load_rules(tmp_path / "rules.yaml")[0].over_model
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - label: translation\n    keywords: [sea]\n    over_model: sometimes\n", encoding="utf-8"
    )
    with pytest.raises(ScenarioRuleError, match=r"bad.yaml: rules\[0\]\.over_model: expected true or false"):
        load_rules(tmp_path / "bad.yaml")


def test_an_ascii_word_boundary_beside_other_letters_is_refused_with_what_to_write(tmp_path: Path) -> None:
    """RE2's \\b knows ASCII letters alone: '\\bşifre' matched no Turkish text, and nothing said so."""
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - label: account\n    patterns: ['x', '\\bşifre']\n", encoding="utf-8"
    )
    with pytest.raises(
        ScenarioRuleError, match=r"bad.yaml: rules\[0\]\.patterns\[1\]: \\b is RE2's word boundary"
    ) as raised:
        load_rules(tmp_path / "bad.yaml")
    suggested = re.search(r"write (\S+) before a word", str(raised.value)).group(1)
    (tmp_path / "good.yaml").write_text(
        f"rules:\n  - label: account\n    patterns: ['{suggested}şifre', '\\bpassw', 'fakturę']\n", encoding="utf-8"
    )
    rules = load_rules(tmp_path / "good.yaml")  # an ASCII letter beside \\b is fine, as is no \\b
    assert classify("benim şifremi unuttum", rules) == "account" and classify("reset my password", rules) == "account"
    assert classify("aşifre", rules) == OTHER


@pytest.mark.parametrize(
    "prompt",
    [
        "Dịch sang tiếng Việt: Good morning, how are you?",  # the model reads a greeting
        "Переклади українською: I love this city",
        "Przetłumacz na polski: thank you very much",
        "Vertaal naar het Nederlands: where is the station?",
        "Türkçeye çevir: I am hungry",
        "Terjemahkan ke bahasa Indonesia: good night",
        "इसका हिंदी में अनुवाद करें: good luck",
    ],
)
def test_a_request_to_translate_is_translation_in_languages_the_corpus_lacks(prompt: str):
    labels = classify_prompts([prompt], DEFAULT_RULES, scenario_model())
    assert (labels.scenario[0], labels.rule[0]) == ("translation", "translation")


def test_scenarios_by_language():
    sessions = pd.DataFrame(
        {
            LANGUAGE: ["zh", "en", "zh", None, "zh", "en"],
            SCENARIO: ["coding", "coding", "writing", OTHER, "coding", "translation"],
        }
    )
    table = scenario_languages(sessions, DAY)
    assert table.columns.tolist() == ["day", "language", "scenario", "sessions", "share"]
    assert table[["language", "scenario", "sessions"]].values.tolist() == [
        ["zh", "coding", 2],
        ["zh", "writing", 1],
        ["en", "coding", 1],
        ["en", "translation", 1],
        ["und", OTHER, 1],
    ]
    assert table["share"].tolist() == [2 / 3, 1 / 3, 0.5, 0.5, 1.0]
    assert scenario_languages(sessions.iloc[:0], DAY).empty


def test_rules_refuse_a_label_or_name_wider_than_the_warehouse_column(tmp_path: Path):
    """PostgreSQL refuses a value longer than a VARCHAR column (SQLite stores it): the rules file says so first."""
    (label_width,) = postgres_widths("scenario")
    (name_width,) = postgres_widths("scenario_rule")
    path = tmp_path / "my_rules.yaml"
    path.write_text(f"rules:\n  - label: {'b' * label_width}\n    name: {'n' * name_width}\n    keywords: [a]\n")
    assert [(len(rule.label), len(rule.name)) for rule in load_rules(path)] == [(label_width, name_width)]
    for entry, key, width in (
        (
            f"{{label: x, keywords: [a]}}, {{label: {'b' * (label_width + 1)}, keywords: [b]}}",
            "rules[1].label",
            label_width,
        ),
        (f"{{label: x, name: {'n' * (name_width + 1)}, keywords: [a]}}", "rules[0].name", name_width),
    ):
        path.write_text(f"rules: [{entry}]\n", encoding="utf-8")
        with pytest.raises(ValueError) as error:
            load_rules(path)
        message = str(error.value)
        assert message.startswith(f"{path}: {key}: ") and "\n" not in message
        assert f"{width + 1} characters, more than the {width} the warehouse column" in message


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("un café, por favor", "food"),
        ("Café!", "food"),
        ("dos cafés", OTHER),  # é is a Latin letter: the word goes on
        ("el cafébar", OTHER),
        ("cafécafé", OTHER),
        ("la ñu come", "food"),
        ("ñus", OTHER),
        ("die Straße.", "food"),
        ("straßenbahn", OTHER),
        ("smørrebrød i dag", "food"),
        ("smørrebrødet", OTHER),
        ("écrêpe", OTHER),  # a Latin letter before the keyword, too
        ("une crêpe", "food"),
        ("crêpe_2", OTHER),
        ("crêpe2", OTHER),
        ("crêpe-suzette", "food"),  # a hyphen ends a word
        ("перекусить crêpe", "food"),  # Cyrillic ends no Latin word
        ("пельмени", "food"),  # a Cyrillic stem matches inside a word, as it did
        ("я люблю пельмешки", "food"),
        ("我想吃饺子了", "food"),  # CJK anywhere
    ],
)
def test_keywords_stand_as_whole_words_at_any_latin_letter(text: str, label: str):
    rules = [Rule("food", keywords=("café", "ñu", "straße", "smørrebrød", "crêpe", "пельме", "饺子"))]
    assert classify(text, rules) == label


def test_a_model_file_that_is_not_a_model_says_what_it_is(tmp_path: Path):
    """Checked from its small entries; numpy's own words would speak of pickles or a missing file descriptor."""
    from chatpulse.behaviour.scenario_model import DEFAULT_MODEL_PATH, ModelFileError, fit, model_labels
    from chatpulse.behaviour.scenarios import check_scenario_files, read_model

    not_a_model = "not a scenario model file (an .npz written by `chatpulse scenarios train`)"
    (width,) = postgres_widths("scenario")
    with np.load(DEFAULT_MODEL_PATH) as shipped:
        layout = shipped["format"]
    (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 and then nothing a zip holds")
    np.save(tmp_path / "array.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    np.savez(tmp_path / "old.npz", format=layout[:1], labels=np.array(["a", "b"]))
    np.savez(tmp_path / "wide.npz", format=layout, labels=np.array(["a", "b" * (width + 1)]))
    for name, said in [
        ("absent.npz", f"no such file; `chatpulse scenarios train --out {tmp_path / 'absent.npz'}` writes one"),
        ("rules.yaml", not_a_model),
        ("empty.npz", not_a_model),
        ("broken.npz", not_a_model),
        ("array.npy", not_a_model),
        ("other.npz", not_a_model),
        (".", not_a_model),
        ("old.npz", "a scenario model of another format or version; rebuild it with `chatpulse scenarios train`"),
        (
            "wide.npz",
            f"a label of the model has {width + 1} characters, more than the {width} the warehouse column scenario"
            " holds; retrain it",
        ),
    ]:
        with pytest.raises(ModelFileError) as error:
            check_scenario_files(None, tmp_path / name)  # a run's check, from the small entries
        assert str(error.value) == f"{tmp_path / name}: {said}"
        if name != "wide.npz":  # loading says the same (wide.npz holds no weights to load)
            with pytest.raises(ModelFileError) as error:
                read_model(tmp_path / name)
            assert str(error.value) == f"{tmp_path / name}: {said}"
    fit(["a a", "a b", "c c", "c d"], ["a", "b" * (width + 1)] * 2).save(tmp_path / "wide_model.npz")
    with pytest.raises(ModelFileError, match=f"has {width + 1} characters"):
        read_model(tmp_path / "wide_model.npz")
    assert model_labels(DEFAULT_MODEL_PATH) == scenario_model().labels
    assert read_model(DEFAULT_MODEL_PATH).labels == read_model(None).labels == scenario_model().labels


def test_a_session_without_user_text_has_no_rule_confidence_or_language():
    """What the README's sessions table says: NULL in the warehouse (NaN here), not an empty string."""
    requests, messages = _conversations()
    sessions = _keyed(requests, messages)
    labels = label_sessions(sessions, messages, DEFAULT_RULES, scenario_model())
    without = (sessions["session_id"] == "s4").to_numpy()  # requests only
    assert labels.loc[without, SCENARIO].tolist() == [OTHER]
    assert labels.loc[without, [SCENARIO_RULE, SCENARIO_CONFIDENCE, LANGUAGE]].isna().all(axis=None)
    assert labels.loc[~without, [SCENARIO_RULE, SCENARIO_CONFIDENCE, LANGUAGE]].notna().all(axis=None)


def test_a_models_explanation_fits_the_scenario_rule_column():
    """A user's model names n-grams of its own training prompts: three long words outgrow the column."""
    from chatpulse.behaviour.scenario_model import fit

    (width,) = postgres_widths("scenario_rule")
    long = "Rechnungsprüfungsverfahren Kundenzufriedenheitsanalyse Versicherungsbedingungen"
    model = fit(
        [f"{long} bitte", f"{long} heute", long, "Wettervorhersage morgen", "Wettervorhersage heute Regen", "Regen"],
        ["billing"] * 3 + ["weather"] * 3,
    )
    prompts = [long, "Wettervorhersage"]
    full = ["model: " + features for features in model.predict(prompts).features.to_pylist()]
    assert len(full[0]) > width >= len(full[1])  # the case, and one that fits
    labels = classify_prompts(prompts, [], model)
    assert labels.rule.tolist() == [full[0][: width - 1] + "…", full[1]]
    assert [len(rule) for rule in labels.rule] == [width, len(full[1])]
