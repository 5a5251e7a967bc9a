"""One simulated day: chat sessions with their messages and ratings, plus session-less batch calls.

Sessions draw a user, language, app, scenario and model; their turns follow each other in
time, answered or failed, and grow the prompt with every exchange. On the incident day chat
requests in the incident window slow down and fail more. Everything comes from one Generator,
in a fixed order of draws, so a day repeats byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

import numpy as np

from chatpulse.sample.rows import Rows, ids, iso, optional_ids
from chatpulse.sample.texts import ANSWERS, COMMENT_POOL, FOLLOW_UP_POOL, PROMPTS
from chatpulse.sample.traffic import (
    ANSWER_MEDIAN,
    ANSWER_SCALE,
    APP_SCENARIO_P,
    BATCH_METADATA,
    CHAT,
    CHAT_METADATA,
    CHAT_MODEL_P,
    CHAT_MODELS,
    CHAT_SHARE,
    CLAUDE,
    CLIENT_P,
    CLIENTS,
    COMPLETION,
    EMBED,
    EMBEDDING_PROFILE,
    EMBEDDING_SHARE,
    EMBEDDINGS,
    ENDPOINTS,
    ERROR_TYPES,
    FEEDBACK_BUDGET_MS,
    FOLLOW_UP_TOKENS_MEDIAN,
    INCIDENT_END_S,
    INCIDENT_FAILURE_P,
    INCIDENT_SLOWDOWN,
    INCIDENT_START_S,
    MINI,
    MODELS,
    O3,
    OK,
    P_RATE_LIMIT,
    PROMPT_TOKEN_MEDIAN,
    PROVIDERS,
    REASONING_MEDIAN,
    SCENARIOS,
    SERVER_ERROR,
    SYSTEM_PROMPT_TOKENS,
    TOKENS_PER_S,
    TTFT_MEDIAN_MS,
    TTFT_SIGMA,
    TURNS_P,
    USERS,
    WORKDAY_PROFILE,
    Users,
    cost,
    draw_seconds,
    failure_latency,
    lognormal,
    statuses,
    utc_ms,
)
from chatpulse.schema import FEEDBACK_COLUMNS, MESSAGE_COLUMNS, REQUEST_COLUMNS


def _within(values: np.ndarray, starts: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every session."""
    total = np.cumsum(values)
    return total - np.repeat(total[starts] - values[starts], turns)


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


def _sorted(columns: dict[str, np.ndarray], by: str) -> dict[str, np.ndarray]:
    """Every column reordered by one of them; stable, so ties keep their order."""
    order = np.argsort(columns[by], kind="stable")
    return {name: values[order] for name, values in columns.items()}


@dataclass(frozen=True)
class Day:
    """A simulated day: its three tables (valid rows only) and what the counts report.

    sessions is the number of chat sessions; incident_requests and incident_errors are the chat
    requests in the incident window and those that failed there (both 0 off the incident day).
    """

    requests: Rows
    messages: Rows
    feedback: Rows
    sessions: int
    incident_requests: int
    incident_errors: int


def simulate(day: date, tz: str, n: int, users: Users, rng: np.random.Generator, incident: bool, seed: int) -> Day:
    """One day of ``n`` requests: chat sessions with messages and ratings, plus session-less batch calls.

    Local times follow ``tz``; ``incident`` puts the incident on this day; ``seed`` keys the ids.
    Draws from ``rng`` in a fixed order, so the same stream gives the same day.
    """
    day_end = utc_ms(day + timedelta(days=1), tz, np.zeros(1))[0]
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
    s_model = rng.choice(CHAT_MODELS, size=s_count, p=CHAT_MODEL_P)
    s_metadata = CHAT_METADATA[s_app * len(CLIENTS) + rng.choice(len(CLIENTS), size=s_count, p=CLIENT_P)]
    s_start = utc_ms(day, tz, draw_seconds(rng, s_count, WORKDAY_PROFILE))

    user, lang, scenario, model = s_user[session], s_lang[session], s_scenario[session], s_model[session]
    follow_up = (turn_no > 0) & (rng.random(n_chat) < 0.7)
    user_tokens = (
        np.where(
            follow_up,
            lognormal(rng, FOLLOW_UP_TOKENS_MEDIAN, 0.5, n_chat),
            lognormal(rng, PROMPT_TOKEN_MEDIAN[scenario], 0.6, n_chat),
        ).astype(np.int64)
        + 1
    )
    answer = (lognormal(rng, ANSWER_MEDIAN[model] * ANSWER_SCALE[scenario], 0.5, n_chat)).astype(np.int64) + 1
    reasoning = np.where(model == O3, lognormal(rng, REASONING_MEDIAN, 0.6, n_chat).astype(np.int64), 0)
    ttft = lognormal(rng, TTFT_MEDIAN_MS[model], TTFT_SIGMA[model], n_chat)
    ttft += reasoning / TOKENS_PER_S[model] * 1000.0
    decode = answer / TOKENS_PER_S[model] * 1000.0 * rng.lognormal(0.0, 0.25, n_chat)

    status, kind = statuses(rng, P_RATE_LIMIT * users.rate_limit_factor[user])
    failure_ms = failure_latency(rng, kind)
    think = np.where(turn_no > 0, lognormal(rng, 25_000.0, 0.8, n_chat), 0.0)
    send = rng.uniform(50.0, 400.0, n_chat)
    latency = np.where(kind == OK, ttft + decode, failure_ms)

    _, requested = _timeline(s_start, turns, starts, think, send, latency)
    s_start = _fit_into_day(s_start, (requested + latency)[starts + turns - 1], day_end)
    _, requested = _timeline(s_start, turns, starts, think, send, latency)

    in_incident = np.zeros(n_chat, dtype=bool)
    failed_in_incident = np.zeros(n_chat, dtype=bool)
    if incident:
        window = utc_ms(day, tz, np.array([INCIDENT_START_S, INCIDENT_END_S], dtype=float))
        in_incident = (requested >= window[0]) & (requested < window[1])
        slowdown = INCIDENT_SLOWDOWN * rng.lognormal(0.0, 0.15, n_chat)
        failed_in_incident = in_incident & (rng.random(n_chat) < INCIDENT_FAILURE_P)
        unavailable = rng.random(n_chat) < 0.4  # 503 rather than 500
        status = np.where(failed_in_incident, np.where(unavailable, 503, 500), status)
        kind = np.where(failed_in_incident, SERVER_ERROR, kind)
        ttft = np.where(in_incident, ttft * slowdown, ttft)
        latency = np.where(in_incident, latency * slowdown, latency)
        latency = np.where(failed_in_incident & unavailable, lognormal(rng, 300.0, 0.5, n_chat), latency)
        _, requested = _timeline(s_start, turns, starts, think, send, latency)
        s_start = _fit_into_day(s_start, (requested + latency)[starts + turns - 1], day_end)

    sent, requested = _timeline(s_start, turns, starts, think, send, latency)
    ok = kind == OK
    # The context grows with every answered turn; OpenAI caches 128-token blocks of long prefixes.
    exchanged = user_tokens + answer * ok
    prompt = SYSTEM_PROMPT_TOKENS[users.app[user]] + _within(exchanged, starts, turns) - answer * ok
    prefix = prompt - user_tokens
    cached = np.where((turn_no > 0) & (prefix >= 1024) & (rng.random(n_chat) < 0.8), prefix // 128 * 128, 0)
    # Anthropic caches only what the request marks: a long prefix not read from the cache is written to it.
    written = np.where((model == CLAUDE) & (cached == 0) & (prefix >= 1024), prefix, 0)
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
        "cache_write_tokens": written * ok,
        "reasoning_tokens": reasoning * ok,
        "cost_usd": cost(model, prompt, cached, written, answer + reasoning) * ok,
        "provider": PROVIDERS[model],
        "metadata": s_metadata[session],
    }
    batch = _batch(day, tz, n_embed, n_completion, users, rng)
    requests = _sorted({name: np.concatenate([chat[name], batch[name]]) for name in chat}, "timestamp")
    session_ids = partial(optional_ids, "sess_", day, seed)
    requests["request_id"] = np.arange(n)
    request_rows = Rows(
        {name: requests[name] for name in REQUEST_COLUMNS if name in requests},  # what an OpenAI log holds
        {"request_id": partial(ids, "req_", day, seed), "timestamp": iso, "session_id": session_ids},
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
    message_rows = Rows(
        {name: messages[name] for name in MESSAGE_COLUMNS},
        {"message_id": partial(ids, "msg_", day, seed), "timestamp": iso, "session_id": session_ids},
    )
    feedback = _feedback(messages, users, rng)
    feedback["feedback_id"] = np.arange(len(feedback["timestamp"]))
    feedback_rows = Rows(
        {name: feedback[name] for name in FEEDBACK_COLUMNS},
        {
            "feedback_id": partial(ids, "fb_", day, seed),
            "timestamp": iso,
            "session_id": session_ids,
            "message_id": partial(ids, "msg_", day, seed),
        },
    )
    return Day(
        requests=request_rows,
        messages=message_rows,
        feedback=feedback_rows,
        sessions=s_count,
        incident_requests=int(in_incident.sum()),
        incident_errors=int(failed_in_incident.sum()),
    )


def _batch(
    day: date, tz: str, n_embed: int, n_completion: int, users: Users, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Session-less API traffic: embeddings for a search index, ticket summaries on completion."""
    n = n_embed + n_completion
    embedding = np.arange(n) < n_embed
    model = np.where(embedding, EMBED, MINI)
    seconds = np.concatenate(
        [draw_seconds(rng, n_embed, EMBEDDING_PROFILE), draw_seconds(rng, n_completion, WORKDAY_PROFILE)]
    )
    status, kind = statuses(rng, np.full(n, P_RATE_LIMIT * 1.5))
    ok = kind == OK
    prompt = (
        np.where(embedding, np.minimum(lognormal(rng, 350.0, 0.7, n), 8191), lognormal(rng, 900.0, 0.5, n)).astype(
            np.int64
        )
        + 1
    )
    answer = np.where(embedding, 0, lognormal(rng, 180.0, 0.5, n).astype(np.int64) + 1)
    ttft = np.where(embedding, np.nan, lognormal(rng, 300.0, 0.3, n))
    latency = np.where(
        embedding,
        lognormal(rng, 90.0, 0.35, n) + prompt * 0.05,
        ttft + answer / TOKENS_PER_S[MINI] * 1000.0 * rng.lognormal(0.0, 0.25, n),
    )
    latency = np.where(ok, latency, failure_latency(rng, kind))
    return {
        "timestamp": utc_ms(day, tz, seconds),
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
        "cache_write_tokens": np.zeros(n, dtype=np.int64),
        "reasoning_tokens": np.zeros(n, dtype=np.int64),
        "cost_usd": cost(model, prompt, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), answer) * ok,
        "provider": PROVIDERS[model],
        "metadata": BATCH_METADATA[np.where(embedding, 0, 1)],
    }


def _feedback(messages: dict[str, np.ndarray], users: Users, rng: np.random.Generator) -> dict[str, np.ndarray]:
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
    delay = np.clip(lognormal(rng, 20_000.0, 0.9, n), 2_000.0, FEEDBACK_BUDGET_MS - 20_000.0)
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
