"""The sample generator: exact counts, the planted dirt, the incident, realism and determinism."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from chatpulse.config import DEFAULT_SOURCES
from chatpulse.metrics.costs import model_costs
from chatpulse.metrics.daily import daily_metrics
from chatpulse.metrics.pricing import estimate_cost, load_prices, prices_on
from chatpulse.sample.generate import write_sample
from chatpulse.schema import FEEDBACK_COLUMNS, MESSAGE_COLUMNS, REQUEST_COLUMNS, Kind

from fixtures import clean_every_day

DAYS = [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19)]  # Tuesday to Thursday
INCIDENT_DAY = DAYS[-2]
PER_DAY = 3000


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def parsed(text_lines: list[str]) -> tuple[list[dict], int]:
    """The records that parse, and how many lines did not."""
    records, broken = [], 0
    for line in text_lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken += 1
    return records, broken


def frame(landing: Path, kind: str, day: date) -> pd.DataFrame:
    records, _ = parsed(lines(landing / f"{kind}-{day.isoformat()}.jsonl.gz"))
    result = pd.DataFrame(records)
    result["ts"] = pd.to_datetime(result["timestamp"], utc=True, format="ISO8601")
    return result


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    landing = tmp_path_factory.mktemp("landing")
    return landing, write_sample(landing, DAYS, requests_per_day=PER_DAY)


def test_counts_are_exact(sample: tuple[Path, dict[str, int]]) -> None:
    landing, counts = sample
    assert counts["days"] == 3
    assert counts["requests"] == 3 * PER_DAY
    assert counts["request_lines"] == 3 * (PER_DAY + 5)  # + duplicate, truncated line, three invalid rows
    assert counts["message_lines"] == counts["messages"] + 3 * 3
    assert counts["feedback_lines"] == counts["feedback"]
    for key, per_day in {
        "request_duplicates": 1,
        "request_malformed": 1,
        "request_invalid": 3,
        "request_repairable": 1,
        "message_duplicates": 1,
        "message_malformed": 1,
        "message_invalid": 1,
        "duplicates": 2,
        "malformed": 2,
        "invalid": 4,
    }.items():
        assert counts[key] == 3 * per_day, key
    written = {
        kind: sum(len(lines(landing / f"{kind}-{day}.jsonl.gz")) for day in DAYS)
        for kind in ("requests", "messages", "feedback")
    }
    assert written == {
        "requests": counts["request_lines"],
        "messages": counts["message_lines"],
        "feedback": counts["feedback_lines"],
    }
    # Sessions: ~2.9 turns each; messages: a user turn per chat request plus the answered replies.
    assert 3 * PER_DAY * 0.65 / 3.3 < counts["sessions"] < 3 * PER_DAY * 0.65 / 2.5
    assert 2 * 3 * PER_DAY * 0.65 * 0.9 < counts["messages"] < 2 * 3 * PER_DAY * 0.65
    assert 0.03 * counts["messages"] / 2 < counts["feedback"] < 0.15 * counts["messages"] / 2


def test_requests_carry_the_planted_dirt(sample: tuple[Path, dict[str, int]]) -> None:
    landing, _ = sample
    text = lines(landing / f"requests-{DAYS[0]}.jsonl.gz")
    records, broken = parsed(text)
    assert broken == 1
    assert len(text) - len(set(text)) == 1  # one exact duplicate line
    ids = pd.Series([r["request_id"] for r in records])
    assert ids.duplicated().sum() == 1
    latencies = [r["latency_ms"] for r in records]
    assert latencies.count("fast") == 1
    assert sum(1 for value in latencies if isinstance(value, float) and value < 0) == 1
    assert sum(1 for r in records if "timestamp" not in r) == 1
    untotalled = [r for r in records if "total_tokens" not in r]
    assert len(untotalled) == 1 and untotalled[0]["prompt_tokens"] + untotalled[0]["completion_tokens"] > 0
    # The sample logs no error code, finish reason or service tier.
    written = set(REQUEST_COLUMNS) - {"error_code", "finish_reason", "service_tier"}
    assert all(set(r) <= written for r in records)
    # Complete rows: all but the untotalled one, plus the duplicate and the two bad latencies.
    assert sum(1 for r in records if set(r) == written) == PER_DAY - 1 + 1 + 2


def test_messages_carry_the_planted_dirt(sample: tuple[Path, dict[str, int]]) -> None:
    landing, _ = sample
    text = lines(landing / f"messages-{DAYS[0]}.jsonl.gz")
    records, broken = parsed(text)
    assert broken == 1
    assert len(text) - len(set(text)) == 1
    assert [r["role"] for r in records].count("bot") == 1
    assert all(set(r) == set(MESSAGE_COLUMNS) for r in records)
    feedback, broken = parsed(lines(landing / f"feedback-{DAYS[0]}.jsonl.gz"))
    assert broken == 0 and all(set(r) == set(FEEDBACK_COLUMNS) for r in feedback)


def test_incident_slows_and_fails_chat_between_14_and_15(sample: tuple[Path, dict[str, int]]) -> None:
    landing, counts = sample
    assert counts["incident_requests"] > 50
    assert 0.2 < counts["incident_errors"] / counts["incident_requests"] < 0.4
    for day in DAYS:
        chat = frame(landing, "requests", day).dropna(subset=["ts"])
        chat = chat[chat["endpoint"] == "chat"]
        latency = pd.to_numeric(chat["latency_ms"], errors="coerce")
        minutes = chat["ts"].dt.hour * 60 + chat["ts"].dt.minute
        window = (minutes >= 14 * 60 + 10) & (minutes < 14 * 60 + 50)
        failed = chat["status_code"] >= 400
        slowdown = latency[window].median() / latency[~window].median()
        if day == INCIDENT_DAY:
            assert slowdown > 3
            assert failed[window].mean() > 0.2
            assert set(chat.loc[window & failed, "error_type"]) >= {"server_error"}
            assert {500, 503} <= set(chat.loc[window, "status_code"])
        else:
            assert 0.6 < slowdown < 1.6
            assert failed[window].mean() < 0.1
        assert failed[~window].mean() < 0.06


def test_requests_look_like_production(sample: tuple[Path, dict[str, int]]) -> None:
    landing, _ = sample
    requests = frame(landing, "requests", DAYS[0]).drop_duplicates("request_id")
    clean = requests[pd.to_numeric(requests["latency_ms"], errors="coerce") > 0].dropna(subset=["ts"])
    assert clean["timestamp"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$").all()
    assert (clean["ts"].dt.date == DAYS[0]).all()
    hourly = clean.groupby(clean["ts"].dt.hour).size()
    assert hourly[[10, 15]].min() > 8 * hourly[[4, 5]].max()  # busy working hours, quiet night
    assert hourly[12] < hourly[[10, 15]].min()  # lunch dip
    assert 35 <= clean["user_id"].nunique() <= 40  # some of the 40 users skip a day
    ok = clean[clean["status_code"] == 200].dropna(subset=["total_tokens"])
    assert (ok["total_tokens"] == ok["prompt_tokens"] + ok["completion_tokens"]).all()
    assert (ok["cached_tokens"] <= ok["prompt_tokens"]).all() and (ok["cached_tokens"] > 0).any()
    assert (ok["reasoning_tokens"] > 0).groupby(ok["model"]).all().to_dict() == {
        "gpt-4o": False,
        "gpt-4o-mini": False,
        "o3-mini": True,
        "text-embedding-3-small": False,
        "claude-sonnet-4-20250514": False,
        "gemini-2.5-flash": False,
        "deepseek-chat": False,
        "qwen-max": False,
    }
    assert (ok["cost_usd"] > 0).all()
    median = ok.groupby("model")["latency_ms"].median()
    assert median["text-embedding-3-small"] < 500 < median["gpt-4o-mini"] < median["gpt-4o"] < median["o3-mini"]
    by_endpoint = clean.groupby("endpoint")
    assert by_endpoint["session_id"].apply(lambda s: s.isna().all()).to_dict() == {
        "chat": False,
        "completion": True,
        "embeddings": True,
    }
    assert clean.loc[clean["endpoint"] == "embeddings", "ttft_ms"].isna().all()
    assert clean["status_code"].value_counts()[200] / len(clean) > 0.95
    assert {429, 500} <= set(clean["status_code"])
    assert set(clean.loc[clean["status_code"] == 429, "error_type"]) == {"rate_limit"}
    assert clean.loc[clean["status_code"] == 200, "error_type"].isna().all()
    assert {m["app"] for m in clean["metadata"]} >= {"helpdesk", "dev-assistant", "docs-search"}


def test_chats_are_multi_turn_bilingual_and_rated(sample: tuple[Path, dict[str, int]]) -> None:
    landing, _ = sample
    messages = frame(landing, "messages", DAYS[0]).drop_duplicates("message_id")
    messages = messages[messages["role"].isin(["user", "assistant"])].sort_values("ts", kind="stable")
    assert (messages.groupby("session_id")["user_id"].nunique() == 1).all()
    turns = messages[messages["role"] == "user"].groupby("session_id").size()
    assert turns.min() == 1 and turns.max() == 8 and 2.5 < turns.mean() < 3.3
    first = messages.groupby("session_id")["role"].first()
    assert (first == "user").all()
    chinese = messages["content"].str.contains(r"[\u4e00-\u9fff]")
    assert 0.2 < chinese.mean() < 0.8
    prompts = messages.loc[messages["role"] == "user", "content"]
    for word in ("email", "Python", "Translate", "翻译", "会议", "difference"):
        assert prompts.str.contains(word).any(), word
    requests = frame(landing, "requests", DAYS[0]).drop_duplicates("request_id").dropna(subset=["ts"])
    valid = requests[pd.to_numeric(requests["latency_ms"], errors="coerce") > 0]
    assert (valid["endpoint"] == "chat").sum() == (messages["role"] == "user").sum()
    feedback = frame(landing, "feedback", DAYS[0])
    replies = messages.set_index("message_id")
    assert (replies.loc[feedback["message_id"], "role"] == "assistant").all()
    assert (replies.loc[feedback["message_id"], "session_id"].to_numpy() == feedback["session_id"]).all()
    assert (feedback["ts"].to_numpy() > replies.loc[feedback["message_id"], "ts"].to_numpy()).all()
    assert set(feedback["rating"]) <= {-1, 1, 2, 3, 4, 5} and {-1, 5} <= set(feedback["rating"])
    assert feedback["comment"].isna().any() and feedback["comment"].notna().any()


def test_same_seed_gives_the_same_bytes_and_days_stand_alone(
    sample: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    landing, counts = sample
    again = tmp_path / "again"
    assert write_sample(again, DAYS, requests_per_day=PER_DAY) == counts
    for path in (path for path in landing.rglob("*") if path.is_file()):  # the bill in bills/ included
        name = path.relative_to(landing)
        assert (again / name).read_bytes() == path.read_bytes(), name
    name = f"requests-{DAYS[0]}.jsonl.gz"
    alone = tmp_path / "alone"
    write_sample(alone, [DAYS[0]], requests_per_day=PER_DAY, incident_day=INCIDENT_DAY)
    assert (alone / name).read_bytes() == (landing / name).read_bytes()
    other = tmp_path / "other"
    write_sample(other, [DAYS[0]], requests_per_day=PER_DAY, seed=8)
    assert set(lines(other / name)).isdisjoint(lines(landing / name))


def test_local_days_follow_the_time_zone(tmp_path: Path) -> None:
    day = date(2026, 10, 25)  # Berlin leaves summer time: a 25-hour day
    counts = write_sample(tmp_path, [day], tz="Europe/Berlin", requests_per_day=500)
    assert counts["incident_requests"] > 0
    for kind in ("requests", "messages", "feedback"):
        local = frame(tmp_path, kind, day)["ts"].dropna().dt.tz_convert("Europe/Berlin")
        assert (local.dt.date == day).all(), kind


def test_default_size_follows_the_week(tmp_path: Path) -> None:
    friday = date(2026, 11, 20)
    counts = [write_sample(tmp_path / str(d), [d])["requests"] for d in (friday, friday + timedelta(days=1))]
    assert 2700 < counts[0] < 3300
    assert 1000 < counts[1] < 1400


def test_rejects_a_day_too_small_for_its_dirt(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 100"):
        write_sample(tmp_path, [DAYS[0]], requests_per_day=99)


# The providers' published list prices, USD per million tokens: input, cache read, cache write, output.
# openai.com/api/pricing; docs.anthropic.com/en/docs/about-claude/pricing (a 5-minute cache write is 1.25 x
# input); ai.google.dev/gemini-api/docs/pricing; api-docs.deepseek.com/quick_start/pricing (standard hours);
# alibabacloud.com/help/en/model-studio/models (international).
LIST_PRICES = {
    "gpt-4o": (2.50, 1.25, 2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.15, 0.60),
    "o3-mini": (1.10, 0.55, 1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.02, 0.02, 0.0),
    "claude-sonnet-4-20250514": (3.00, 0.30, 3.75, 15.00),
    "gemini-2.5-flash": (0.30, 0.03, 0.30, 2.50),
    "deepseek-chat": (0.27, 0.07, 0.27, 1.10),
    "qwen-max": (1.60, 1.60, 1.60, 6.40),
}


def test_the_sample_spans_five_providers_and_every_model_is_priced_out_of_the_box(
    sample: tuple[Path, dict[str, int]],
) -> None:
    landing, _ = sample
    day = DAYS[0]
    clean = clean_every_day(landing, DEFAULT_SOURCES, Kind.REQUESTS)[day.isoformat()].clean
    assert set(clean["provider"]) == {"openai", "anthropic", "google", "deepseek", "alibaba"}
    assert set(clean["model"]) == set(LIST_PRICES)
    rates = prices_on(load_prices(), day)
    costs = model_costs(clean, day, "UTC", rates)
    assert costs["unpriced_requests"].sum() == 0 and costs["price_source"].notna().all()
    assert (
        daily_metrics(clean, pd.DataFrame(columns=["start", "duration_s", "turns"]), day, "UTC", rates).iloc[0][
            "unpriced_requests"
        ]
        == 0
    )
    # One Claude request that wrote to the cache, and one that read from it, recomputed by hand.
    usd = estimate_cost(clean, rates)
    claude = clean["model"] == "claude-sonnet-4-20250514"
    for kind in ("cache_write_tokens", "cached_tokens"):
        n = int(((clean[kind] > 0) & claude).to_numpy().argmax())
        row = clean.iloc[n]
        assert row[kind] > 0 and row["model"] == "claude-sonnet-4-20250514"
        given, read, written, output = LIST_PRICES[row["model"]]
        uncached = row["prompt_tokens"] - row["cached_tokens"] - row["cache_write_tokens"]
        by_hand = (uncached * given + row["cached_tokens"] * read + row["cache_write_tokens"] * written) / 1e6 + row[
            "completion_tokens"
        ] * output / 1e6
        assert usd[n] == pytest.approx(by_hand)
        assert row["cost_usd"] == pytest.approx(by_hand, abs=1e-8)  # the gateway logged the same list price
    # Every model's estimate is the list price of its own tokens (DeepSeek's off-peak hours excepted).
    for model, (given, read, written, output) in LIST_PRICES.items():
        rows = clean[(clean["model"] == model) & ~clean["unmetered"].astype(bool) & (clean["status_code"] < 400)]
        if model == "deepseek-chat":
            hour = rows["timestamp"].dt.hour * 60 + rows["timestamp"].dt.minute
            rows = rows[(hour >= 30) & (hour < 16 * 60 + 30)]  # standard hours, UTC 00:30-16:30
        uncached = rows["prompt_tokens"] - rows["cached_tokens"] - rows["cache_write_tokens"]
        by_hand = (uncached * given + rows["cached_tokens"] * read + rows["cache_write_tokens"] * written) + rows[
            "completion_tokens"
        ] * output
        assert usd[rows.index.map(clean.index.get_loc)].sum() == pytest.approx(by_hand.sum() / 1e6), model
