"""Realistic sample landing data: days of LLM API traffic with their chats and ratings.

The demo, the tests and the benchmark need data that behaves like production: a daily
rhythm, models with their own latency, multi-turn sessions in Chinese and English, a
handful of broken lines and one incident worth finding. Everything is drawn with numpy
in bulk so that a million requests a day stays quick, and from a seed so that a run
repeats byte for byte. Timestamps are written in UTC ("+00:00"), as API gateways log
them; the rhythm and the incident follow the local clock of ``tz``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from chatpulse.schema import FEEDBACK_COLUMNS, MESSAGE_COLUMNS, REQUEST_COLUMNS, Kind

DEFAULT_REQUESTS_PER_DAY = 3000
MIN_REQUESTS_PER_DAY = 100  # enough rows to derive the dirty lines from
USERS = 40
GZIP_LEVEL = 1  # a million-row day must write quickly; the files' size matters less
CHUNK_ROWS = 100_000  # bounds the memory of one serialised block

# Shares of a day's requests; the rest goes to the legacy completion endpoint.
CHAT_SHARE, EMBEDDING_SHARE = 0.65, 0.25

MODELS = np.array(["gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small"], dtype=object)
GPT4O, MINI, O3, EMBED = range(4)
CHAT_MODEL_P = np.array([0.35, 0.45, 0.20])
# Indexed by model: median time to first token (ms), its spread, decode speed (tokens/s)
# and the median visible answer length. o3-mini also thinks before its first token.
TTFT_MEDIAN_MS = np.array([420.0, 280.0, 450.0, np.nan])
TTFT_SIGMA = np.array([0.35, 0.30, 0.45, np.nan])
TOKENS_PER_S = np.array([85.0, 130.0, 160.0, np.nan])
ANSWER_MEDIAN = np.array([320.0, 260.0, 300.0, 0.0])
REASONING_MEDIAN = 600.0
# USD per million tokens: input, cached input, output.
PRICE_IN = np.array([2.50, 0.15, 1.10, 0.02])
PRICE_CACHED = np.array([1.25, 0.075, 0.55, 0.0])
PRICE_OUT = np.array([10.00, 0.60, 4.40, 0.0])

ENDPOINTS = np.array(["chat", "completion", "embeddings"], dtype=object)
CHAT, COMPLETION, EMBEDDINGS = range(3)

# Status draws: the base failure rates; heavy users hit the rate limit more often.
P_RATE_LIMIT, P_SERVER_ERROR, P_TIMEOUT = 0.012, 0.004, 0.0015
HEAVY_USERS, HEAVY_RATE_LIMIT_FACTOR = 3, 4.0
ERROR_TYPES = np.array([None, "rate_limit", "server_error", "timeout"], dtype=object)
OK, RATE_LIMIT, SERVER_ERROR, TIMEOUT = range(4)

# The incident: chat requests between these local times are ~5x slower and ~30% fail.
INCIDENT_START_S, INCIDENT_END_S = 14 * 3600 + 10 * 60, 14 * 3600 + 50 * 60
INCIDENT_SLOWDOWN, INCIDENT_FAILURE_P = 5.0, 0.30

APPS = ("helpdesk", "sales-copilot", "dev-assistant", "docs-search", "translator")
APP_P = np.array([0.30, 0.20, 0.25, 0.10, 0.15])
SYSTEM_PROMPT_TOKENS = np.array([450, 300, 600, 250, 150])
CLIENTS = ("web", "desktop", "mobile")
CLIENT_P = np.array([0.60, 0.25, 0.15])
# Shared dict objects: a million rows reference a handful of small dicts.
CHAT_METADATA = np.array([{"app": app, "client": client} for app in APPS for client in CLIENTS], dtype=object)
BATCH_METADATA = np.array(
    [{"app": "docs-search", "job": "index-docs"}, {"app": "helpdesk", "job": "ticket-summary"}],
    dtype=object,
)

SCENARIOS = ("information", "business", "writing", "coding", "translation", "other")
# Rows: apps; columns: scenarios. What each app's users mostly ask for.
APP_SCENARIO_P = np.array(
    [
        [0.40, 0.20, 0.10, 0.05, 0.10, 0.15],
        [0.15, 0.45, 0.20, 0.02, 0.08, 0.10],
        [0.20, 0.05, 0.05, 0.55, 0.05, 0.10],
        [0.55, 0.10, 0.10, 0.10, 0.05, 0.10],
        [0.05, 0.10, 0.10, 0.02, 0.65, 0.08],
    ]
)
PROMPT_TOKEN_MEDIAN = np.array([30.0, 90.0, 60.0, 160.0, 140.0, 12.0])
ANSWER_SCALE = np.array([1.0, 1.1, 1.6, 1.5, 0.8, 0.4])
FOLLOW_UP_TOKENS_MEDIAN = 15.0
TURNS_P = np.array([0.30, 0.22, 0.16, 0.11, 0.08, 0.06, 0.04, 0.03])  # 1 to 8 turns
FEEDBACK_BUDGET_MS = 300_000  # a session ends this long before midnight, so ratings stay in the day

EN, ZH = 0, 1
# (scenario, language) -> templates with the fillers for each of their slots.
PROMPT_TEMPLATES: dict[tuple[str, int], list[tuple[str, list[list[str]]]]] = {
    ("information", EN): [
        (
            "What is the difference between {}?",
            [
                [
                    "TCP and UDP",
                    "a Roth IRA and a traditional IRA",
                    "GDPR and CCPA",
                    "supervised and unsupervised learning",
                ]
            ],
        ),
        (
            "Can you explain {} in simple terms?",
            [
                [
                    "how mortgage rates are set",
                    "what a p-value means",
                    "how vaccines train the immune system",
                    "zero-trust networking",
                ]
            ],
        ),
        (
            "What are the current rules for {}?",
            [
                [
                    "remote work tax deductions",
                    "EU AI Act obligations for startups",
                    "password rotation",
                    "carry-on luggage in Europe",
                ]
            ],
        ),
    ],
    ("information", ZH): [
        ("{}有什么区别？", [["TCP 和 UDP", "社保和商业保险", "增值税普通发票和专用发票", "监督学习和无监督学习"]]),
        (
            "用通俗的话解释一下{}。",
            [["什么是通货膨胀", "区块链的原理", "复利是怎么计算的", "大语言模型为什么会产生幻觉"]],
        ),
        (
            "请问{}？",
            [
                [
                    "北京到上海的高铁大概要多久",
                    "个人所得税专项附加扣除有哪些",
                    "公司年假一般怎么计算",
                    "五险一金的缴纳比例是多少",
                ]
            ],
        ),
    ],
    ("business", EN): [
        (
            "Draft a polite email to {} explaining that {}.",
            [
                ["a client", "my manager", "our vendor"],
                [
                    "the delivery will slip by one week",
                    "we need to move Friday's meeting",
                    "last month's invoice has an error",
                ],
            ],
        ),
        (
            "Turn these notes into meeting minutes with action items: {}",
            [
                [
                    "Q3 budget review, marketing 12% over, Tom to follow up",
                    "launch moved to May 6; QA needs two more testers; Lisa owns the checklist",
                    "churn up in APAC, propose a customer call plan by Monday",
                ]
            ],
        ),
        (
            'Reply professionally to this customer complaint: "{}"',
            [
                [
                    "My order arrived damaged and nobody answers the phone.",
                    "I was charged twice this month.",
                    "The app keeps logging me out.",
                ]
            ],
        ),
    ],
    ("business", ZH): [
        (
            "帮我给{}写一封邮件，说明{}。",
            [["客户", "领导", "供应商"], ["交付要推迟一周", "周五的会议需要改期", "上个月的发票金额有误"]],
        ),
        (
            "把下面的会议记录整理成纪要并列出待办事项：{}",
            [
                [
                    "讨论了第三季度预算，市场部超支12%，小王负责跟进",
                    "新版本上线推迟到5月6日，测试人手不足，李娜负责检查清单",
                    "华东区客户流失增加，周一前制定回访计划",
                ]
            ],
        ),
        (
            "帮我回复客户的投诉，语气专业一些：“{}”",
            [["收到的货物有破损，客服电话一直打不通。", "这个月被重复扣费了。", "App 总是自动退出登录。"]],
        ),
    ],
    ("writing", EN): [
        (
            "Write a {} about {}.",
            [
                ["short blog post", "LinkedIn post", "product description", "short poem"],
                ["our new time-tracking app", "working from home", "autumn in Kyoto"],
            ],
        ),
        (
            'Proofread and improve this paragraph: "{}"',
            [
                [
                    "Our team have been working hard to delivered the best results for you.",
                    "In conclusion the datas shows that sales was increasing.",
                    "We are exciting to announce our new partner ship.",
                ]
            ],
        ),
    ],
    ("writing", ZH): [
        (
            "写一篇关于{}的{}。",
            [["远程办公", "秋天的杭州", "我们的新款智能手表"], ["小红书文案", "公众号文章开头", "产品介绍", "短诗"]],
        ),
        (
            "帮我润色这段话：“{}”",
            [
                [
                    "我们团队一直在努力的工作为了给客户提供最好的服务。",
                    "总的来说这个数据显示了销售额是在增长的。",
                    "本次活动取得了圆满的成功，得到了大家的一致好评和认可。",
                ]
            ],
        ),
    ],
    ("coding", EN): [
        (
            "Write a Python function that {}.",
            [
                [
                    "parses an ISO 8601 date and returns the weekday",
                    "removes duplicates from a list but keeps the order",
                    "reads a CSV file and sums the 'amount' column",
                    "retries an HTTP request with exponential backoff",
                ]
            ],
        ),
        (
            "Why do I get {} here?\n```python\n{}\n```",
            [
                ["KeyError: 'id'", "TypeError: 'NoneType' object is not subscriptable"],
                ["row = data['items'][0]\nprint(row['id'])", "user = find_user(name)\nprint(user['email'])"],
            ],
        ),
        (
            "Convert this SQL to pandas: {}",
            [
                [
                    "SELECT region, SUM(sales) FROM orders GROUP BY region",
                    "SELECT * FROM users WHERE signup_date >= '2024-01-01' ORDER BY signup_date",
                ]
            ],
        ),
    ],
    ("coding", ZH): [
        (
            "用 Python 写一个函数，{}。",
            [
                [
                    "解析 ISO 8601 日期并返回星期几",
                    "去掉列表里的重复元素并保持顺序",
                    "读取 CSV 文件并对 amount 列求和",
                    "对 HTTP 请求做指数退避重试",
                ]
            ],
        ),
        (
            "这段代码为什么报错 {}？\n```python\n{}\n```",
            [
                ["KeyError: 'id'", "TypeError: 'NoneType' object is not subscriptable"],
                ["row = data['items'][0]\nprint(row['id'])", "user = find_user(name)\nprint(user['email'])"],
            ],
        ),
        (
            "这个 SQL 怎么改成 pandas 写法：{}",
            [
                [
                    "SELECT region, SUM(sales) FROM orders GROUP BY region",
                    "SELECT * FROM users WHERE signup_date >= '2024-01-01' ORDER BY signup_date",
                ]
            ],
        ),
    ],
    ("translation", EN): [
        (
            'Translate into Chinese: "{}"',
            [
                [
                    "Please find the revised contract attached.",
                    "The meeting has been moved to 3 pm tomorrow.",
                    "Thank you for your patience while we investigate.",
                    "Our quarterly revenue grew by eight percent.",
                ]
            ],
        ),
        (
            'Translate this into {}: "{}"',
            [
                ["French", "Japanese", "Spanish"],
                ["Where is the nearest train station?", "We look forward to working with you."],
            ],
        ),
    ],
    ("translation", ZH): [
        (
            "翻译成英文：{}",
            [
                [
                    "附件是修改后的合同，请查收。",
                    "会议改到明天下午三点。",
                    "我们正在排查问题，感谢您的耐心等待。",
                    "本季度营收增长了百分之八。",
                ]
            ],
        ),
        ("把这句话翻译成{}：{}", [["日语", "法语", "韩语"], ["最近的地铁站在哪里？", "期待与您的合作。"]]),
    ],
    ("other", EN): [
        (
            "{}",
            [
                [
                    "hi",
                    "Tell me a joke about cats.",
                    "What should I cook tonight?",
                    "Are you conscious?",
                    "asdf",
                    "Recommend a movie for a rainy Sunday.",
                    "Who will win the World Cup?",
                    "thanks",
                ]
            ],
        ),
    ],
    ("other", ZH): [
        (
            "{}",
            [
                [
                    "你好",
                    "讲个笑话",
                    "今晚吃什么好？",
                    "你是谁？",
                    "哈哈哈",
                    "推荐一部适合周末看的电影",
                    "今天心情不太好",
                    "谢谢",
                ]
            ],
        ),
    ],
}
FOLLOW_UPS: dict[int, tuple[str, ...]] = {
    EN: (
        "Can you make it shorter?",
        "Thanks! Can you give me an example?",
        "Please explain the second point.",
        "Make it more formal.",
        "That doesn't look right, can you check again?",
        "Great, now put it in a table.",
    ),
    ZH: (
        "能再简短一点吗？",
        "谢谢！能举个例子吗？",
        "第二点能详细说说吗？",
        "语气再正式一些。",
        "好像不对，请再检查一下。",
        "很好，用表格整理一下。",
    ),
}
REPLIES: dict[tuple[str, int], tuple[str, ...]] = {
    ("information", EN): (
        "In short: they differ in how they trade speed for reliability. Key points:\n"
        "1. Purpose\n2. Cost\n3. Typical use cases\nWant a deeper comparison?",
        "Here is a simple explanation with an everyday example, followed by the details.",
    ),
    ("information", ZH): (
        "简单来说，两者的主要区别在于用途和成本：\n1. 适用场景不同\n2. 费用不同\n3. 风险不同\n需要更详细的对比吗？",
        "用一个生活中的例子来说明：……具体细节如下。",
    ),
    ("business", EN): (
        "Subject: Update on our schedule\n\nDear team,\n\nThank you for your patience. Unfortunately ... Best regards,",
        "Meeting minutes\n- Decisions: ...\n- Action items: owner, due date",
    ),
    ("business", ZH): (
        "主题：关于进度调整的说明\n\n您好：\n感谢您一直以来的支持。由于……\n此致\n敬礼",
        "会议纪要\n一、讨论事项：……\n二、待办事项：负责人、截止时间",
    ),
    ("writing", EN): (
        "Here is a draft:\n\nWorking smarter, not longer. ...",
        'Revised version: "Our team has worked hard to deliver the best results for you."',
    ),
    ("writing", ZH): (
        "为你写了一版初稿：\n\n在秋天的杭州，……",
        "润色后：“我们团队一直努力工作，致力于为客户提供最好的服务。”",
    ),
    ("coding", EN): (
        "```python\ndef dedupe(items):\n    return list(dict.fromkeys(items))\n```\nThis keeps the first "
        "occurrence of each item.",
        "The error means the key is missing; use `row.get('id')` or check the input first.",
    ),
    ("coding", ZH): (
        "```python\ndef dedupe(items):\n    return list(dict.fromkeys(items))\n```\n"
        "这样可以保留每个元素第一次出现的顺序。",
        "报错是因为字典里没有这个键，可以先用 `row.get('id')` 检查一下。",
    ),
    ("translation", EN): ("附件是修改后的合同，请查收。", "Voici la traduction : « Où est la gare la plus proche ? »"),
    ("translation", ZH): ("Please find the revised contract attached.", "翻訳：最寄りの駅はどこですか？"),
    ("other", EN): (
        "Hi! How can I help you today?",
        "Why did the cat sit on the computer? To keep an eye on the mouse.",
    ),
    ("other", ZH): ("你好！有什么可以帮你的吗？", "为什么程序员总分不清万圣节和圣诞节？因为 Oct 31 = Dec 25。"),
}
COMMENTS: dict[tuple[bool, int], tuple[str, ...]] = {
    (True, EN): ("Very helpful, thanks!", "Exactly what I needed.", "Clear and concise."),
    (True, ZH): ("很有帮助，谢谢！", "正是我需要的。", "回答很清晰。"),
    (False, EN): ("Too slow.", "The answer was wrong.", "Didn't follow my instructions.", "Way too long."),
    (False, ZH): ("太慢了。", "回答不准确。", "没有按我的要求来。", "太啰嗦了。"),
}


@dataclass(frozen=True)
class _Pool:
    """Texts of several groups in one flat array, so rows pick theirs by index in bulk."""

    texts: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, groups: list[tuple[str, ...]]) -> _Pool:
        sizes = np.array([len(group) for group in groups])
        texts = np.array([text for group in groups for text in group], dtype=object)
        return cls(texts, np.cumsum(sizes) - sizes, sizes)

    def pick(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        return self.texts[self.offsets[group] + (rng.random(len(group)) * self.sizes[group]).astype(np.int64)]


def _expand(templates: list[tuple[str, list[list[str]]]]) -> tuple[str, ...]:
    return tuple(t.format(*fill) for t, fillers in templates for fill in itertools.product(*fillers))


# Groups are numbered scenario * 2 + language.
PROMPTS = _Pool.of([_expand(PROMPT_TEMPLATES[s, lang]) for s in SCENARIOS for lang in (EN, ZH)])
ANSWERS = _Pool.of([REPLIES[s, lang] for s in SCENARIOS for lang in (EN, ZH)])
FOLLOW_UP_POOL = _Pool.of([FOLLOW_UPS[EN], FOLLOW_UPS[ZH]])
# Groups are positive * 2 + language.
COMMENT_POOL = _Pool.of([COMMENTS[positive, lang] for positive in (False, True) for lang in (EN, ZH)])


@dataclass(frozen=True)
class _Users:
    """Who uses the service: stable across days so per-user trends exist."""

    ids: np.ndarray
    weight: np.ndarray  # share of sessions
    p_chinese: np.ndarray
    stars: np.ndarray  # rates with 1-5 stars rather than thumbs
    app: np.ndarray
    rate_limit_factor: np.ndarray
    batch_owners: np.ndarray  # users whose API keys run the batch jobs

    @classmethod
    def draw(cls, seed: int) -> _Users:
        rng = np.random.default_rng([seed, 0])
        weight = rng.lognormal(0.0, 1.0, USERS)
        heavy = weight >= np.sort(weight)[-HEAVY_USERS]
        return cls(
            ids=np.array([f"user_{i:03d}" for i in range(1, USERS + 1)], dtype=object),
            weight=weight / weight.sum(),
            p_chinese=rng.choice([0.95, 0.05, 0.5], size=USERS, p=[0.40, 0.35, 0.25]),
            stars=rng.random(USERS) < 0.5,
            app=rng.choice(len(APPS), size=USERS, p=APP_P),
            rate_limit_factor=np.where(heavy, HEAVY_RATE_LIMIT_FACTOR, 1.0),
            batch_owners=rng.choice(USERS, size=4, replace=False),
        )


def _bump(hours: np.ndarray, peak: float, width: float, height: float) -> np.ndarray:
    return height * np.exp(-((hours - peak) ** 2) / (2 * width**2))


_HOURS = (np.arange(1440) + 0.5) / 60
# Minute-of-day weights: quiet nights, peaks at 10:00 and 15:00, a lunch dip and a small evening.
WORKDAY_PROFILE = np.clip(
    0.03
    + _bump(_HOURS, 10.0, 1.4, 1.0)
    + _bump(_HOURS, 15.0, 1.6, 0.9)
    + _bump(_HOURS, 20.5, 1.3, 0.2)
    - _bump(_HOURS, 12.5, 0.5, 0.35),
    0.01,
    None,
)
WORKDAY_PROFILE /= WORKDAY_PROFILE.sum()
# The embedding batch adds a nightly indexing job between 01:00 and 03:00.
NIGHTLY_JOB = ((_HOURS >= 1) & (_HOURS < 3)) / 120.0
EMBEDDING_PROFILE = 0.9 * WORKDAY_PROFILE + 0.1 * NIGHTLY_JOB

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _ids(prefix: str, day: date, seed: int, seq: np.ndarray) -> np.ndarray:
    """Random-looking ids that cannot collide: a bijective mix of (day, sequence number).

    The seed and the prefix only flip bits, so each (seed, kind) gets its own id space.
    """
    x = (np.uint64(day.toordinal()) << np.uint64(40)) | seq.astype(np.uint64)
    x ^= np.uint64((seed * 0x9E3779B97F4A7C15 + zlib.crc32(prefix.encode()) * 0xC2B2AE3D27D4EB4F) % 2**64)
    with np.errstate(over="ignore"):  # splitmix64's finaliser wraps by design
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    digits = np.empty((len(x), 16), dtype=np.uint8)
    for position in range(16):
        digits[:, 15 - position] = _HEX[(x >> np.uint64(4 * position)) & np.uint64(15)]
    return np.strings.add(prefix, digits.view("S16").ravel().astype("U16"))


def _optional_ids(prefix: str, day: date, seed: int, seq: np.ndarray) -> np.ndarray:
    """Ids where the sequence number is set; None where it is -1."""
    ids = _ids(prefix, day, seed, np.maximum(seq, 0)).astype(object)
    ids[seq < 0] = None
    return ids


def _iso(epoch_ms: np.ndarray) -> np.ndarray:
    stamps = np.floor(epoch_ms).astype(np.int64).astype("datetime64[ms]")
    return np.strings.add(np.datetime_as_string(stamps, unit="ms"), "+00:00")


def _utc_ms(day: date, tz: str, local_seconds: np.ndarray) -> np.ndarray:
    """Epoch milliseconds of wall-clock seconds after local midnight (DST gaps shift forward)."""
    naive = np.datetime64(day.isoformat(), "ns") + (local_seconds * 1e9).astype("timedelta64[ns]")
    local = pd.DatetimeIndex(naive).tz_localize(
        tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    return local.as_unit("ns").asi8 / 1e6


def _draw_seconds(rng: np.random.Generator, count: int, profile: np.ndarray) -> np.ndarray:
    return rng.choice(1440, size=count, p=profile) * 60.0 + rng.random(count) * 60.0


def _lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: np.ndarray | float, count: int
) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(count))


def _within(values: np.ndarray, starts: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every session."""
    total = np.cumsum(values)
    return total - np.repeat(total[starts] - values[starts], turns)


def _statuses(rng: np.random.Generator, rate_limit_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = rng.random(len(rate_limit_p))
    kind = np.select(
        [u < rate_limit_p, u < rate_limit_p + P_SERVER_ERROR, u < rate_limit_p + P_SERVER_ERROR + P_TIMEOUT],
        [RATE_LIMIT, SERVER_ERROR, TIMEOUT],
        OK,
    )
    status = np.choose(kind, [200, 429, 500, 504])
    return status, kind


def _failure_latency(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """How long a failed call takes: a quick 429, a slow 500, a 60 s gateway timeout."""
    n = len(kind)
    return np.choose(
        kind,
        [
            np.zeros(n),
            _lognormal(rng, 35.0, 0.4, n),
            _lognormal(rng, 900.0, 0.6, n),
            60_000.0 + _lognormal(rng, 300.0, 0.5, n),
        ],
    )


def _cost(model: np.ndarray, prompt: np.ndarray, cached: np.ndarray, completion: np.ndarray) -> np.ndarray:
    usd = (prompt - cached) * PRICE_IN[model] + cached * PRICE_CACHED[model] + completion * PRICE_OUT[model]
    return np.round(usd / 1e6, 8)


def _timeline(
    start: np.ndarray, turns: np.ndarray, starts: np.ndarray, think: np.ndarray, send: np.ndarray, latency: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per turn: when the user message is sent and when the request reaches the API (ms)."""
    answered = np.repeat(start, turns) + _within(think + send + latency, starts, turns)
    requested = answered - latency
    return requested - send, requested


def _fit_into_day(start: np.ndarray, last_answer: np.ndarray, day_end: float) -> np.ndarray:
    """Moves sessions that would run past midnight earlier, keeping their ratings in the day."""
    return start - np.maximum(0.0, last_answer + FEEDBACK_BUDGET_MS - day_end)


def _day_size(rng: np.random.Generator, day: date, requests_per_day: int | None) -> int:
    """An explicit size is exact; the default varies a little and drops at weekends."""
    if requests_per_day is not None:
        if requests_per_day < MIN_REQUESTS_PER_DAY:
            raise ValueError(f"requests_per_day must be at least {MIN_REQUESTS_PER_DAY}, got {requests_per_day}")
        return requests_per_day
    weekend = 0.4 if day.weekday() >= 5 else 1.0
    return round(DEFAULT_REQUESTS_PER_DAY * weekend * rng.uniform(0.92, 1.08))


@dataclass(frozen=True)
class _Rows:
    """A table held as numbers and shared strings, serialised block by block.

    Unique text (ids, timestamps) would dominate memory at a million rows, so those columns
    hold their source (a sequence number, epoch milliseconds) and a renderer makes the text
    only for the block being written.
    """

    columns: dict[str, np.ndarray]
    render: dict[str, Callable[[np.ndarray], np.ndarray]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def frame(self, rows: slice | list[int]) -> pd.DataFrame:
        data: dict[str, object] = {}
        for name, values in self.columns.items():
            part = self.render[name](values[rows]) if name in self.render else values[rows]
            # Object columns serialise faster than pandas' own string dtype.
            data[name] = pd.Series(part, dtype=object) if part.dtype.kind in "OU" else part
        return pd.DataFrame(data)


def _sorted(columns: dict[str, np.ndarray], by: str) -> dict[str, np.ndarray]:
    order = np.argsort(columns[by], kind="stable")
    return {name: values[order] for name, values in columns.items()}


@dataclass(frozen=True)
class _Day:
    requests: _Rows
    messages: _Rows
    feedback: _Rows
    sessions: int
    incident_requests: int
    incident_errors: int


def _simulate(day: date, tz: str, n: int, users: _Users, rng: np.random.Generator, incident: bool, seed: int) -> _Day:
    """One day of traffic: chat sessions with messages and ratings, plus session-less batch calls."""
    day_end = _utc_ms(day + timedelta(days=1), tz, np.zeros(1))[0]
    n_chat = round(n * CHAT_SHARE)
    n_embed = round(n * EMBEDDING_SHARE)
    n_completion = n - n_chat - n_embed

    # Sessions and their turns, trimmed so the chat requests add up exactly.
    turns = rng.choice(np.arange(1, 9), size=n_chat, p=TURNS_P)  # at least one turn each: enough
    last = int(np.searchsorted(np.cumsum(turns), n_chat))
    turns = turns[: last + 1]
    turns[-1] -= int(turns.sum()) - n_chat
    s_count = len(turns)
    starts = np.cumsum(turns) - turns
    session = np.repeat(np.arange(s_count), turns)
    turn_no = np.arange(n_chat) - starts[session]

    s_user = rng.choice(USERS, size=s_count, p=users.weight)
    s_lang = (rng.random(s_count) < users.p_chinese[s_user]).astype(np.int64)
    s_app = users.app[s_user]
    s_scenario = (rng.random(s_count)[:, None] > np.cumsum(APP_SCENARIO_P[s_app], axis=1)).sum(axis=1)
    s_scenario = np.minimum(s_scenario, len(SCENARIOS) - 1)
    s_model = rng.choice(3, size=s_count, p=CHAT_MODEL_P)
    s_metadata = CHAT_METADATA[s_app * len(CLIENTS) + rng.choice(len(CLIENTS), size=s_count, p=CLIENT_P)]
    s_start = _utc_ms(day, tz, _draw_seconds(rng, s_count, WORKDAY_PROFILE))

    user, lang, scenario, model = s_user[session], s_lang[session], s_scenario[session], s_model[session]
    follow_up = (turn_no > 0) & (rng.random(n_chat) < 0.7)
    user_tokens = (
        np.where(
            follow_up,
            _lognormal(rng, FOLLOW_UP_TOKENS_MEDIAN, 0.5, n_chat),
            _lognormal(rng, PROMPT_TOKEN_MEDIAN[scenario], 0.6, n_chat),
        ).astype(np.int64)
        + 1
    )
    answer = (_lognormal(rng, ANSWER_MEDIAN[model] * ANSWER_SCALE[scenario], 0.5, n_chat)).astype(np.int64) + 1
    reasoning = np.where(model == O3, _lognormal(rng, REASONING_MEDIAN, 0.6, n_chat).astype(np.int64), 0)
    ttft = _lognormal(rng, TTFT_MEDIAN_MS[model], TTFT_SIGMA[model], n_chat)
    ttft += reasoning / TOKENS_PER_S[model] * 1000.0
    decode = answer / TOKENS_PER_S[model] * 1000.0 * rng.lognormal(0.0, 0.25, n_chat)

    status, kind = _statuses(rng, P_RATE_LIMIT * users.rate_limit_factor[user])
    failure_latency = _failure_latency(rng, kind)
    think = np.where(turn_no > 0, _lognormal(rng, 25_000.0, 0.8, n_chat), 0.0)
    send = rng.uniform(50.0, 400.0, n_chat)
    latency = np.where(kind == OK, ttft + decode, failure_latency)

    _, requested = _timeline(s_start, turns, starts, think, send, latency)
    s_start = _fit_into_day(s_start, (requested + latency)[starts + turns - 1], day_end)
    _, requested = _timeline(s_start, turns, starts, think, send, latency)

    in_incident = np.zeros(n_chat, dtype=bool)
    failed_in_incident = np.zeros(n_chat, dtype=bool)
    if incident:
        window = _utc_ms(day, tz, np.array([INCIDENT_START_S, INCIDENT_END_S], dtype=float))
        in_incident = (requested >= window[0]) & (requested < window[1])
        slowdown = INCIDENT_SLOWDOWN * rng.lognormal(0.0, 0.15, n_chat)
        failed_in_incident = in_incident & (rng.random(n_chat) < INCIDENT_FAILURE_P)
        unavailable = rng.random(n_chat) < 0.4  # 503 rather than 500
        status = np.where(failed_in_incident, np.where(unavailable, 503, 500), status)
        kind = np.where(failed_in_incident, SERVER_ERROR, kind)
        ttft = np.where(in_incident, ttft * slowdown, ttft)
        latency = np.where(in_incident, latency * slowdown, latency)
        latency = np.where(failed_in_incident & unavailable, _lognormal(rng, 300.0, 0.5, n_chat), latency)
        _, requested = _timeline(s_start, turns, starts, think, send, latency)
        s_start = _fit_into_day(s_start, (requested + latency)[starts + turns - 1], day_end)

    sent, requested = _timeline(s_start, turns, starts, think, send, latency)
    ok = kind == OK
    # The context grows with every answered turn; OpenAI caches 128-token blocks of long prefixes.
    exchanged = user_tokens + answer * ok
    prompt = SYSTEM_PROMPT_TOKENS[users.app[user]] + _within(exchanged, starts, turns) - answer * ok
    prefix = prompt - user_tokens
    cached = np.where((turn_no > 0) & (prefix >= 1024) & (rng.random(n_chat) < 0.8), prefix // 128 * 128, 0)
    chat = {
        "timestamp": requested,
        "user_id": users.ids[user],
        "session_id": session,
        "model": MODELS[model],
        "endpoint": np.repeat(ENDPOINTS[CHAT], n_chat),
        "status_code": status,
        "error_type": ERROR_TYPES[kind],
        "latency_ms": np.round(latency, 1),
        "ttft_ms": np.where(ok, np.round(ttft, 1), np.nan),
        "prompt_tokens": prompt * ok,
        "completion_tokens": (answer + reasoning) * ok,
        "total_tokens": (prompt + answer + reasoning) * ok,
        "cached_tokens": cached * ok,
        "reasoning_tokens": reasoning * ok,
        "cost_usd": _cost(model, prompt, cached, answer + reasoning) * ok,
        "metadata": s_metadata[session],
    }
    batch = _batch(day, tz, n_embed, n_completion, users, rng)
    requests = _sorted({name: np.concatenate([chat[name], batch[name]]) for name in chat}, "timestamp")
    session_ids = partial(_optional_ids, "sess_", day, seed)
    requests["request_id"] = np.arange(n)
    request_rows = _Rows(
        {name: requests[name] for name in REQUEST_COLUMNS},
        {"request_id": partial(_ids, "req_", day, seed), "timestamp": _iso, "session_id": session_ids},
    )

    # Messages: every chat turn has the user's message, every answered turn the reply.
    group = scenario * 2 + lang
    content = np.where(follow_up, FOLLOW_UP_POOL.pick(rng, lang), PROMPTS.pick(rng, group))
    messages = _sorted(
        {
            "session_id": np.concatenate([session, session[ok]]),
            "user": np.concatenate([user, user[ok]]),
            "timestamp": np.concatenate([sent, (requested + latency)[ok]]),
            "role": np.repeat(np.array(["user", "assistant"], dtype=object), [n_chat, int(ok.sum())]),
            "content": np.concatenate([content, ANSWERS.pick(rng, group[ok])]),
            "latency": np.concatenate([latency, latency[ok]]),
            "model": np.concatenate([model, model[ok]]),
            "lang": np.concatenate([lang, lang[ok]]),
        },
        "timestamp",
    )
    messages["message_id"] = np.arange(len(messages["role"]))
    messages["user_id"] = users.ids[messages["user"]]
    message_rows = _Rows(
        {name: messages[name] for name in MESSAGE_COLUMNS},
        {"message_id": partial(_ids, "msg_", day, seed), "timestamp": _iso, "session_id": session_ids},
    )
    feedback = _feedback(messages, users, rng)
    feedback["feedback_id"] = np.arange(len(feedback["timestamp"]))
    feedback_rows = _Rows(
        {name: feedback[name] for name in FEEDBACK_COLUMNS},
        {
            "feedback_id": partial(_ids, "fb_", day, seed),
            "timestamp": _iso,
            "session_id": session_ids,
            "message_id": partial(_ids, "msg_", day, seed),
        },
    )
    return _Day(
        requests=request_rows,
        messages=message_rows,
        feedback=feedback_rows,
        sessions=s_count,
        incident_requests=int(in_incident.sum()),
        incident_errors=int(failed_in_incident.sum()),
    )


def _batch(
    day: date, tz: str, n_embed: int, n_completion: int, users: _Users, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Session-less API traffic: embeddings for a search index, ticket summaries on completion."""
    n = n_embed + n_completion
    embedding = np.arange(n) < n_embed
    model = np.where(embedding, EMBED, MINI)
    seconds = np.concatenate(
        [_draw_seconds(rng, n_embed, EMBEDDING_PROFILE), _draw_seconds(rng, n_completion, WORKDAY_PROFILE)]
    )
    status, kind = _statuses(rng, np.full(n, P_RATE_LIMIT * 1.5))
    ok = kind == OK
    prompt = (
        np.where(embedding, np.minimum(_lognormal(rng, 350.0, 0.7, n), 8191), _lognormal(rng, 900.0, 0.5, n)).astype(
            np.int64
        )
        + 1
    )
    answer = np.where(embedding, 0, _lognormal(rng, 180.0, 0.5, n).astype(np.int64) + 1)
    ttft = np.where(embedding, np.nan, _lognormal(rng, 300.0, 0.3, n))
    latency = np.where(
        embedding,
        _lognormal(rng, 90.0, 0.35, n) + prompt * 0.05,
        ttft + answer / TOKENS_PER_S[MINI] * 1000.0 * rng.lognormal(0.0, 0.25, n),
    )
    latency = np.where(ok, latency, _failure_latency(rng, kind))
    return {
        "timestamp": _utc_ms(day, tz, seconds),
        "user_id": users.ids[users.batch_owners[rng.integers(0, len(users.batch_owners), n)]],
        "session_id": np.full(n, -1),
        "model": MODELS[model],
        "endpoint": ENDPOINTS[np.where(embedding, EMBEDDINGS, COMPLETION)],
        "status_code": status,
        "error_type": ERROR_TYPES[kind],
        "latency_ms": np.round(latency, 1),
        "ttft_ms": np.where(ok, np.round(ttft, 1), np.nan),
        "prompt_tokens": prompt * ok,
        "completion_tokens": answer * ok,
        "total_tokens": (prompt + answer) * ok,
        "cached_tokens": np.zeros(n, dtype=np.int64),
        "reasoning_tokens": np.zeros(n, dtype=np.int64),
        "cost_usd": _cost(model, prompt, np.zeros(n, dtype=np.int64), answer) * ok,
        "metadata": BATCH_METADATA[np.where(embedding, 0, 1)],
    }


def _feedback(messages: dict[str, np.ndarray], users: _Users, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A few replies get rated; slow ones (2.5x their model's median) more often, and worse."""
    reply = np.flatnonzero(messages["role"] == "assistant")
    n = len(reply)
    latency, model = messages["latency"][reply], messages["model"][reply]
    typical = np.zeros(len(MODELS))
    for m in np.unique(model):
        typical[m] = np.median(latency[model == m])
    slow = latency > 2.5 * typical[model]
    rated = rng.random(n) < np.where(slow, 0.20, 0.06)
    positive = rng.random(n) < np.where(slow, 0.30, 0.85)
    stars = np.where(
        positive, rng.choice([4, 5], size=n, p=[0.4, 0.6]), rng.choice([1, 2, 3], size=n, p=[0.40, 0.35, 0.25])
    )
    user = messages["user"][reply]
    rating = np.where(users.stars[user], stars, np.where(positive, 1, -1))
    comment = np.where(
        rng.random(n) < np.where(positive, 0.25, 0.6),
        COMMENT_POOL.pick(rng, positive * 2 + messages["lang"][reply]),
        None,
    )
    delay = np.clip(_lognormal(rng, 20_000.0, 0.9, n), 2_000.0, FEEDBACK_BUDGET_MS - 20_000.0)
    return _sorted(
        {
            "session_id": messages["session_id"][reply][rated],
            "message_id": reply[rated],
            "user_id": users.ids[user][rated],
            "timestamp": (messages["timestamp"][reply] + delay)[rated],
            "rating": rating[rated],
            "comment": comment[rated],
        },
        "timestamp",
    )


@dataclass
class _Dirt:
    """Broken lines to weave into a file: inserted before a row, or replacing it."""

    inserts: dict[int, list[str]] = field(default_factory=dict)
    replaces: dict[int, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def insert(self, row: int, line: str, category: str) -> None:
        self.inserts.setdefault(row, []).append(line)
        self.counts[category] += 1


def _line(rows: _Rows, row: int) -> str:
    """A row exactly as the bulk writer serialises it."""
    return rows.frame([row]).to_json(orient="records", lines=True, force_ascii=False).rstrip("\n")


def _json(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _variant(rows: _Rows, row: int, id_column: str, serial: int) -> dict[str, object]:
    """A copy of a row under a fresh id, numbered after the table's own rows."""
    record = json.loads(_line(rows, row))
    record[id_column] = str(rows.render[id_column](np.array([len(rows) + serial]))[0])
    return record


def _dirty_requests(rows: _Rows, rng: np.random.Generator) -> _Dirt:
    """A retried log line, a truncated write, three untrustworthy rows and one repairable row.

    Each broken row copies a successful request next to it, so only the defect gives it away.
    """
    dirt = _Dirt()
    ok_rows = np.flatnonzero(rows.columns["status_code"] == 200)
    duplicate, truncated, fast, negative, undated, untotalled = (int(r) for r in rng.choice(ok_rows, 6, replace=False))
    dirt.insert(min(duplicate + 37, len(rows)), _line(rows, duplicate), "duplicates")
    broken = _json(_variant(rows, truncated, "request_id", 0))
    dirt.insert(truncated + 1, broken[: len(broken) // 2], "malformed")
    record = _variant(rows, fast, "request_id", 1)
    record["latency_ms"] = "fast"
    dirt.insert(fast + 1, _json(record), "invalid")
    record = _variant(rows, negative, "request_id", 2)
    record["latency_ms"] = -float(record["latency_ms"])
    dirt.insert(negative + 1, _json(record), "invalid")
    record = _variant(rows, undated, "request_id", 3)
    del record["timestamp"]
    dirt.insert(undated + 1, _json(record), "invalid")
    record = json.loads(_line(rows, untotalled))
    del record["total_tokens"]  # prompt + completion restores it
    dirt.replaces[untotalled] = _json(record)
    dirt.counts["repairable"] += 1
    return dirt


def _dirty_messages(rows: _Rows, rng: np.random.Generator) -> _Dirt:
    """A retried line, a truncated write and a message with a role no chat has."""
    dirt = _Dirt()
    duplicate, truncated, bad_role = (int(r) for r in rng.choice(len(rows), 3, replace=False))
    dirt.insert(min(duplicate + 11, len(rows)), _line(rows, duplicate), "duplicates")
    broken = _json(_variant(rows, truncated, "message_id", 0))
    dirt.insert(truncated + 1, broken[: len(broken) // 2], "malformed")
    record = _variant(rows, bad_role, "message_id", 1)
    record["role"] = "bot"
    dirt.insert(bad_role + 1, _json(record), "invalid")
    return dirt


def _write(path: Path, rows: _Rows, dirt: _Dirt) -> int:
    """Writes gzip JSON lines in blocks with the dirty lines woven in; returns the line count.

    The gzip header carries no name or time, so the same seed gives the same bytes.
    """
    n = len(rows)
    cuts = sorted(
        {c for c in range(0, n, CHUNK_ROWS)}
        | set(dirt.inserts)
        | set(dirt.replaces)
        | {r + 1 for r in dirt.replaces}
        | {n}
    )
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as out,
    ):
        for cut, next_cut in zip(cuts, cuts[1:] + [n], strict=True):
            for line in dirt.inserts.get(cut, []):
                out.write(f"{line}\n".encode())
            if cut == n:
                break
            if cut in dirt.replaces:
                out.write(f"{dirt.replaces[cut]}\n".encode())
            else:
                block = rows.frame(slice(cut, next_cut)).to_json(orient="records", lines=True, force_ascii=False)
                out.write(block.encode())
    return n + sum(len(lines) for lines in dirt.inserts.values())


def write_sample(
    landing_dir: Path,
    days: list[date],
    *,
    tz: str = "UTC",
    requests_per_day: int | None = None,
    seed: int = 7,
    incident_day: date | None = None,
) -> dict[str, int]:
    """Writes requests-, messages- and feedback-DAY.jsonl.gz for each day; returns what it wrote.

    An explicit requests_per_day is the exact number of valid requests per day; left out,
    weekdays get about 3000 and weekends fewer. The incident falls on the second-to-last
    day (the only day when there is one). Each day has its own random stream, so a day
    comes out the same whichever other days are generated with it.

    The counts, summed over the days: requests, messages, feedback and sessions are valid
    records (the repairable request included); *_lines are the lines in the files;
    duplicates, malformed and invalid lines (also per kind, e.g. request_invalid) are the
    ones a cleaner must drop, repairable the requests it can fix; errors are valid requests
    with status >= 400; incident_requests and incident_errors are the chat requests in the
    incident window and those that failed there.
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    if incident_day is None and days:
        incident_day = days[-2] if len(days) >= 2 else days[0]
    users = _Users.draw(seed)
    counts: Counter[str] = Counter()
    for day in days:
        rng = np.random.default_rng([seed, day.toordinal()])
        n = _day_size(rng, day, requests_per_day)
        sim = _simulate(day, tz, n, users, rng, day == incident_day, seed)
        request_dirt = _dirty_requests(sim.requests, rng)
        message_dirt = _dirty_messages(sim.messages, rng)
        stem = day.isoformat()
        counts["request_lines"] += _write(landing_dir / f"{Kind.REQUESTS}-{stem}.jsonl.gz", sim.requests, request_dirt)
        counts["message_lines"] += _write(landing_dir / f"{Kind.MESSAGES}-{stem}.jsonl.gz", sim.messages, message_dirt)
        counts["feedback_lines"] += _write(landing_dir / f"{Kind.FEEDBACK}-{stem}.jsonl.gz", sim.feedback, _Dirt())
        counts["days"] += 1
        counts["requests"] += len(sim.requests)
        counts["messages"] += len(sim.messages)
        counts["feedback"] += len(sim.feedback)
        counts["sessions"] += sim.sessions
        counts["errors"] += int((sim.requests.columns["status_code"] >= 400).sum())
        counts["incident_requests"] += sim.incident_requests
        counts["incident_errors"] += sim.incident_errors
        for kind, dirt in (("request", request_dirt), ("message", message_dirt)):
            for category, count in dirt.counts.items():
                counts[f"{kind}_{category}"] += count
                counts[category] += count
    keys = (
        "days",
        "requests",
        "messages",
        "feedback",
        "sessions",
        "request_lines",
        "message_lines",
        "feedback_lines",
        "duplicates",
        "malformed",
        "invalid",
        "repairable",
        "request_duplicates",
        "request_malformed",
        "request_invalid",
        "request_repairable",
        "message_duplicates",
        "message_malformed",
        "message_invalid",
        "errors",
        "incident_requests",
        "incident_errors",
    )
    return {key: counts[key] for key in keys}
