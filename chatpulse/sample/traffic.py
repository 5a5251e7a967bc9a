"""The shape of the sample traffic: its constants, distributions, users and daily rhythm.

Arrays indexed by model, endpoint, status kind, app or scenario hold the numbers the
simulation draws from; the helpers below draw in bulk from a numpy Generator, so the
same stream gives the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

DEFAULT_REQUESTS_PER_DAY = 3000
MIN_REQUESTS_PER_DAY = 100  # enough rows to derive the dirty lines from
USERS = 40

# Shares of a day's requests; the rest goes to the legacy completion endpoint.
CHAT_SHARE, EMBEDDING_SHARE = 0.65, 0.25

# A company's mix of providers behind one gateway (its log in OpenAI's token convention): OpenAI, Anthropic,
# Google, DeepSeek and Qwen (Alibaba Cloud), under the names their APIs answer with.
MODELS = np.array(
    [
        "gpt-4o",
        "gpt-4o-mini",
        "o3-mini",
        "text-embedding-3-small",
        "claude-sonnet-4-20250514",
        "gemini-2.5-flash",
        "deepseek-chat",
        "qwen-max",
    ],
    dtype=object,
)
PROVIDERS = np.array(
    ["openai", "openai", "openai", "openai", "anthropic", "google", "deepseek", "alibaba"], dtype=object
)
GPT4O, MINI, O3, EMBED, CLAUDE, GEMINI, DEEPSEEK, QWEN = range(8)
CHAT_MODELS = np.array([GPT4O, MINI, O3, CLAUDE, GEMINI, DEEPSEEK, QWEN])
CHAT_MODEL_P = np.array([0.22, 0.30, 0.10, 0.15, 0.10, 0.07, 0.06])
# Indexed by model: median time to first token (ms), its spread, decode speed (tokens/s)
# and the median visible answer length. o3-mini also thinks before its first token.
TTFT_MEDIAN_MS = np.array([420.0, 280.0, 450.0, np.nan, 600.0, 350.0, 900.0, 500.0])
TTFT_SIGMA = np.array([0.35, 0.30, 0.45, np.nan, 0.35, 0.35, 0.45, 0.35])
TOKENS_PER_S = np.array([85.0, 130.0, 160.0, np.nan, 70.0, 180.0, 40.0, 60.0])
ANSWER_MEDIAN = np.array([320.0, 260.0, 300.0, 0.0, 350.0, 300.0, 320.0, 300.0])
REASONING_MEDIAN = 600.0
# The providers' list prices, USD per million tokens: input, cache read, cache write, output (what the
# gateway logs as each request's cost). Anthropic bills a 5-minute cache write at 1.25 x input; the
# others bill none. DeepSeek's off-peak discount is left out, as gateways' cost maps leave it out.
PRICE_IN = np.array([2.50, 0.15, 1.10, 0.02, 3.00, 0.30, 0.27, 1.60])
PRICE_CACHED = np.array([1.25, 0.075, 0.55, 0.0, 0.30, 0.03, 0.07, 1.60])
PRICE_WRITE = np.array([2.50, 0.15, 1.10, 0.02, 3.75, 0.30, 0.27, 1.60])
PRICE_OUT = np.array([10.00, 0.60, 4.40, 0.0, 15.00, 2.50, 1.10, 6.40])

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
# Who spends: each app is an OpenAI project owned by a team (the demo's `dimensions` and its bill).
PROJECTS = {app: "proj_" + app.replace("-", "_") for app in APPS}
TEAMS = {
    "helpdesk": "support",
    "sales-copilot": "sales",
    "dev-assistant": "engineering",
    "docs-search": "engineering",
    "translator": "localization",
}
# Shared dict objects: a million rows reference a handful of small dicts.
CHAT_METADATA = np.array(
    [
        {"app": app, "client": client, "project": PROJECTS[app], "team": TEAMS[app]}
        for app in APPS
        for client in CLIENTS
    ],
    dtype=object,
)
BATCH_METADATA = np.array(
    [
        {"app": app, "job": job, "project": PROJECTS[app], "team": TEAMS[app]}
        for app, job in (("docs-search", "index-docs"), ("helpdesk", "ticket-summary"))
    ],
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


@dataclass(frozen=True)
class Users:
    """Who uses the service: stable across days so per-user trends exist.

    Every array has one entry per user (USERS of them), except batch_owners: user indices.
    """

    ids: np.ndarray
    weight: np.ndarray  # share of sessions
    p_chinese: np.ndarray
    stars: np.ndarray  # rates with 1-5 stars rather than thumbs
    app: np.ndarray
    rate_limit_factor: np.ndarray
    batch_owners: np.ndarray  # users whose API keys run the batch jobs

    @classmethod
    def draw(cls, seed: int) -> Users:
        """The users of a seed: drawn from their own stream, so every day sees the same ones."""
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


def utc_ms(day: date, tz: str, local_seconds: np.ndarray) -> np.ndarray:
    """Epoch milliseconds (float) of wall-clock seconds after local midnight in ``tz``.

    Ambiguous times take the later (standard-time) reading; DST gaps shift forward.
    """
    naive = np.datetime64(day.isoformat(), "ns") + (local_seconds * 1e9).astype("timedelta64[ns]")
    local = pd.DatetimeIndex(naive).tz_localize(
        tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    return local.as_unit("ns").asi8 / 1e6


def draw_seconds(rng: np.random.Generator, count: int, profile: np.ndarray) -> np.ndarray:
    """``count`` seconds after local midnight, following a 1440-minute weight profile."""
    return rng.choice(1440, size=count, p=profile) * 60.0 + rng.random(count) * 60.0


def lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: np.ndarray | float, count: int
) -> np.ndarray:
    """``count`` log-normal draws given their median (not mean) and log-scale spread."""
    return median * np.exp(sigma * rng.standard_normal(count))


def statuses(rng: np.random.Generator, rate_limit_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HTTP status codes and status kinds (OK, RATE_LIMIT, ...), one per rate-limit probability."""
    u = rng.random(len(rate_limit_p))
    kind = np.select(
        [u < rate_limit_p, u < rate_limit_p + P_SERVER_ERROR, u < rate_limit_p + P_SERVER_ERROR + P_TIMEOUT],
        [RATE_LIMIT, SERVER_ERROR, TIMEOUT],
        OK,
    )
    status = np.choose(kind, [200, 429, 500, 504])
    return status, kind


def failure_latency(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """How long a failed call takes (ms): a quick 429, a slow 500, a 60 s gateway timeout; 0 if OK."""
    n = len(kind)
    return np.choose(
        kind,
        [
            np.zeros(n),
            lognormal(rng, 35.0, 0.4, n),
            lognormal(rng, 900.0, 0.6, n),
            60_000.0 + lognormal(rng, 300.0, 0.5, n),
        ],
    )


def cost(
    model: np.ndarray, prompt: np.ndarray, cached: np.ndarray, written: np.ndarray, completion: np.ndarray
) -> np.ndarray:
    """USD per request from token counts (canonical: cache reads and writes are parts of the prompt) and
    model indices, at the list prices above, rounded to 8 decimals."""
    usd = (
        (prompt - cached - written) * PRICE_IN[model]
        + cached * PRICE_CACHED[model]
        + written * PRICE_WRITE[model]
        + completion * PRICE_OUT[model]
    )
    return np.round(usd / 1e6, 8)


class SampleSizeError(ValueError):
    """A sample size the generator cannot honour; the message says the smallest it can."""


def day_size(rng: np.random.Generator, day: date, requests_per_day: int | None, weekday: bool = False) -> int:
    """Valid requests of a day: an explicit size is exact; the default varies a little and drops at weekends,
    unless ``weekday`` asks for a weekday's traffic whatever the day.

    Raises SampleSizeError when an explicit size is below MIN_REQUESTS_PER_DAY.
    """
    if requests_per_day is not None:
        if requests_per_day < MIN_REQUESTS_PER_DAY:
            raise SampleSizeError(f"requests_per_day must be at least {MIN_REQUESTS_PER_DAY}, got {requests_per_day}")
        return requests_per_day
    weekend = 0.4 if day.weekday() >= 5 and not weekday else 1.0
    return round(DEFAULT_REQUESTS_PER_DAY * weekend * rng.uniform(0.92, 1.08))
