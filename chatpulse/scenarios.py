"""Keyword classification of sessions into usage scenarios.

A rule is a label with keywords (literal text) and patterns (RE2 regular expressions:
no lookarounds or backreferences), matched anywhere in the lowercased text; patterns
are also case-insensitive, so case never matters. A keyword that begins or ends with a Latin letter or digit must stand
as a whole word on that side ("api" does not match "capital"); CJK keywords match
inside text, which has no word boundaries. Rules are tried in order and the first
match wins, so the more specific scenarios come first; text no rule matches is OTHER.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from chatpulse.sessions import SESSION_KEY

OTHER = "other"
SCENARIO = "scenario"


_LATIN = re.compile(r"[a-z0-9_]", re.IGNORECASE)


def _compile(keywords: tuple[str, ...], patterns: tuple[str, ...]) -> str:
    """One RE2 expression, for lowercased text, matching any keyword or pattern.

    RE2 (through Arrow) runs every session's text in C++, dozens of times faster than
    Python's re. Its \\b is ASCII-only, which is what keywords need: a keyword that
    begins or ends with a Latin letter or digit stands as a whole word on that side,
    while CJK text, which has no word boundaries, matches anywhere.
    """
    by_bounds: dict[tuple[bool, bool], list[str]] = {}
    for keyword in keywords:
        bounds = (bool(_LATIN.match(keyword[0])), bool(_LATIN.match(keyword[-1])))
        by_bounds.setdefault(bounds, []).append(re.escape(keyword.lower()))
    alternatives = [
        (r"\b" if before else "") + f"(?:{'|'.join(words)})" + (r"\b" if after else "")
        for (before, after), words in by_bounds.items()
    ]
    return "|".join([*alternatives, *(f"(?i:{pattern})" for pattern in patterns)])


def _matches(texts: pa.Array, expression: str) -> np.ndarray:
    """Which lowercased texts the RE2 expression matches."""
    return pc.match_substring_regex(texts, expression).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Rule:
    """One scenario label and the keywords and patterns (RE2 syntax) that select it."""

    label: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    expression: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", _compile(self.keywords, self.patterns))


_LANGUAGES = "english|chinese|mandarin|japanese|korean|french|german|spanish|russian|arabic"
_ZH_LANGUAGES = "英文|中文|英语|汉语|日语|日文|韩语|法语|德语|西班牙语|俄语"

# fmt: off
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "coding",
        keywords=(
            "python", "javascript", "typescript", "java", "golang", "c++", "c#", "kotlin", "swift", "sql",
            "html", "css", "json", "yaml", "regex", "bash", "powershell", "dockerfile", "kubernetes", "git",
            "code", "coding", "programming", "debug", "debugging", "bug", "bugs", "compile", "compiler",
            "traceback", "stack trace", "segfault", "api", "sdk", "algorithm", "refactor", "unit test",
            "leetcode", "numpy", "pandas", "function", "functions", "class", "classes", "method", "methods",
            "variable", "variables", "```",
            "代码", "编程", "程序", "报错", "调试", "算法", "脚本", "编译", "正则", "数据库", "前端", "后端", "接口",
        ),
        patterns=(
            r"\b(?:type|value|key|index|attribute|syntax|name|import|runtime|assertion|zerodivision"
            r"|modulenotfound|filenotfound|nullpointer|illegalargument)(?:error|exception)\b",
            r"\w\.(?:py|js|ts|java|cpp|go|rs|sh|sql)\b",  # file names
            r"\b(?:pip|npm|yarn|apt-get|brew) install\b",
            r"\bdef \w+\(",
            r"写.{0,10}函数",
            r"函数.{0,6}(?:实现|报错|调用|返回)",
        ),
    ),
    Rule(
        "translation",
        keywords=(
            "translate", "translation", "translating", "translated", "translator",
            "how do you say", "how do i say", "how to say",
            "翻译", "译成", "译为", "翻成", "中译英", "英译中", "英文怎么说", "英语怎么说", "中文怎么说",
        ),
        patterns=(
            rf"\binto (?:{_LANGUAGES})\b",
            rf"\bin (?:{_LANGUAGES}) ?[?？]",
            rf"(?:改成|换成|转成)(?:{_ZH_LANGUAGES})",
            rf"用(?:{_ZH_LANGUAGES})(?:怎么|如何)(?:说|讲|表达|写)",
        ),
    ),
    Rule(
        "business_communication",
        keywords=(
            "email", "emails", "e-mail", "e-mails", "cover letter", "memo", "meeting", "meetings",
            "agenda", "proposal", "proposals", "negotiation", "invoice", "quotation", "follow-up",
            "follow up", "stakeholder", "stakeholders", "client", "clients", "customer", "customers",
            "colleague", "colleagues", "manager", "managers", "boss", "supplier", "suppliers", "vendor",
            "vendors", "reply to", "respond to", "slack message", "press release",
            "newsletter", "business letter",
            "邮件", "客户", "同事", "领导", "老板", "上司", "会议", "纪要", "商务", "报价", "合同", "谈判",
            "周报", "月报", "汇报", "通知", "邀请函", "求职信", "述职",
        ),
    ),
    Rule(
        "writing",
        keywords=(
            "write", "writes", "wrote", "writing", "draft", "drafts", "rewrite", "essay", "essays",
            "article", "articles", "blog", "story", "stories", "poem", "poems", "lyrics", "novel",
            "script", "outline", "slogan", "caption", "captions", "speech", "paraphrase", "proofread",
            "polish", "edit", "summarize", "summarise", "summary",
            "写", "作文", "文章", "论文", "润色", "改写", "扩写", "缩写", "续写", "故事", "诗", "小说", "文案",
            "大纲", "演讲稿", "标题", "总结", "摘要", "仿写",
        ),
    ),
    Rule(
        "information_query",
        keywords=(
            "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "explain", "define",
            "definition", "meaning", "tell me about", "difference between", "compare", "is it true",
            "?", "？",
            "什么", "为什么", "怎么", "怎样", "如何", "哪", "谁", "吗", "呢", "是否", "多少", "几",
            "解释", "介绍", "区别", "定义", "含义", "意思", "请问", "告诉我",
        ),
    ),
)
# fmt: on

DEFAULT_LABELS: tuple[str, ...] = (*(rule.label for rule in DEFAULT_RULES), OTHER)

_RULE_KEYS = {"label", "keywords", "patterns"}


def _string_list(value: object, where: str, path: Path) -> tuple[str, ...]:
    """The value as a tuple of non-empty strings, or ValueError naming the file and key."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{path}: {where} must be a list of non-empty strings")
    return tuple(value)


def load_rules(path: Path | None) -> list[Rule]:
    """Rules from a YAML file {rules: [{label, keywords: [...], patterns: [...]}]}, DEFAULT_RULES for None.

    Unknown keys are rejected so a misspelt "keyword" fails loudly instead of matching nothing.
    """
    if path is None:
        return list(DEFAULT_RULES)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list) or not document["rules"]:
        raise ValueError(f"{path}: rules must be a non-empty list")
    rules = []
    for number, entry in enumerate(document["rules"]):
        where = f"rules[{number}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {where} must be a mapping")
        if unknown := set(entry) - _RULE_KEYS:
            raise ValueError(f"{path}: {where} has unknown keys {sorted(unknown)}")
        label = entry.get("label")
        if not isinstance(label, str) or not label:
            raise ValueError(f"{path}: {where}.label must be a non-empty string")
        keywords = _string_list(entry.get("keywords"), f"{where}.keywords", path)
        patterns = _string_list(entry.get("patterns"), f"{where}.patterns", path)
        if not keywords and not patterns:
            raise ValueError(f"{path}: {where} needs keywords or patterns")
        for index, pattern in enumerate(patterns):
            try:
                _matches(pa.array([""], pa.string()), _compile((), (pattern,)))
            except pa.ArrowInvalid as error:
                raise ValueError(f"{path}: {where}.patterns[{index}] is not a valid RE2 regex: {error}") from error
        rules.append(Rule(label, keywords, patterns))
    return rules


def _label(texts: pa.Array, rules: Sequence[Rule]) -> np.ndarray:
    """The first matching rule's label for each lowercased text, OTHER when none."""
    labels = np.full(len(texts), OTHER, dtype=object)
    unlabelled = np.arange(len(texts))
    for rule in rules:
        if not len(unlabelled):
            break
        matched = _matches(texts.take(unlabelled), rule.expression)
        labels[unlabelled[matched]] = rule.label
        unlabelled = unlabelled[~matched]
    return labels


def classify(text: str, rules: Sequence[Rule]) -> str:
    """Label of the first rule matching text, OTHER when none does."""
    return str(_label(pa.array([text.lower()], pa.string()), rules)[0])


def label_sessions(sessions: pd.DataFrame, messages: pd.DataFrame, rules: Sequence[Rule]) -> pd.Series:
    """Scenario of each session (index-aligned with sessions, named SCENARIO).

    messages must carry SESSION_KEY (from sessions.session_keys). A session's text is
    its user messages in time order joined by newlines; without any it is OTHER.
    """
    user_messages = messages[(messages["role"] == "user") & messages[SESSION_KEY].notna()]
    user_messages = user_messages.sort_values("timestamp", kind="stable")
    lines = user_messages["content"].fillna("").astype(str) + "\n"
    texts = lines.groupby(user_messages[SESSION_KEY].to_numpy()).sum().str[:-1]
    text = sessions["session_id"].map(texts).astype("str").fillna("")
    lowered = pc.utf8_lower(pa.array(text.to_numpy(dtype=object), pa.string()))
    return pd.Series(_label(lowered, rules), index=sessions.index, name=SCENARIO, dtype="str")


def scenario_summary(sessions: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Sessions and requests per scenario for day: columns day, scenario, sessions, requests.

    sessions carries SCENARIO (label_sessions) and its requests count (build_sessions),
    so a request counts under its session's scenario and requests in no session are
    not counted. There is a row for every DEFAULT_LABELS label (zero when unused, so
    the table's shape is stable across days), then any other label, alphabetically.
    """
    extra = sorted(set(sessions[SCENARIO]) - set(DEFAULT_LABELS))
    labels = [*DEFAULT_LABELS, *extra]
    grouped = sessions.groupby(SCENARIO)["requests"].agg(["size", "sum"]).reindex(labels, fill_value=0)
    return pd.DataFrame(
        {
            "day": day.isoformat(),
            "scenario": pd.Series(labels, dtype="str"),
            "sessions": grouped["size"].to_numpy(dtype="int64"),
            "requests": grouped["sum"].to_numpy(dtype="int64"),
        }
    )
