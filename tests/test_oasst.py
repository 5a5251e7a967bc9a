"""oasst2 conversations in: threads become sessions, emojis become ratings (Open-Paws subset of OpenAssistant
oasst2, Apache-2.0; see ../shared/realdata/README.md). Expected counts are computed here from the file itself."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from chatpulse.ingest.oasst import convert
from chatpulse.warehouse import Warehouse

from fixtures import run_cli

FILE = "oasst2_openpaws_filtered.jsonl"
DAY = "2023-02-09"


def _threads(path: Path) -> list[str]:
    """Distinct (tree, leaf) pairs: one per root-to-leaf thread."""
    leaves = set()

    def walk(tree_id: str, node: dict) -> None:
        if not node.get("replies"):
            leaves.add((tree_id, node["message_id"]))
        for reply in node.get("replies") or []:
            walk(tree_id, reply)

    for line in path.read_text(encoding="utf-8").splitlines():
        tree = json.loads(line)
        walk(tree["message_tree_id"], tree["prompt"])
    return sorted(leaves)


def _votes(node: dict) -> Counter:
    """+1 / -1 votes on each assistant message of a tree, by original message id (each message once)."""
    votes = Counter()
    if node["role"] == "assistant":
        emojis = node.get("emojis") or {}
        votes[node["message_id"]] = emojis.get("+1", 0) + emojis.get("-1", 0)
    for reply in node.get("replies") or []:
        votes.update(_votes(reply))
    return votes


def _expected(path: Path) -> dict[str, Counter]:
    """Per UTC day: thread-messages and threads starting on it (each thread repeats its shared messages),
    and +1/-1 votes on assistant messages (each message once, however many threads share it)."""
    days: dict[str, Counter] = {
        "messages": Counter(),
        "sessions": Counter(),
        "feedback": Counter(),
        "negative": Counter(),
    }

    def paths(node: dict, prefix: list[dict]) -> list[list[dict]]:
        here = [*prefix, node]
        return [p for reply in node.get("replies") or [] for p in paths(reply, here)] or [here]

    def nodes(node: dict) -> list[dict]:
        return [node, *(n for reply in node.get("replies") or [] for n in nodes(reply))]

    trees = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        tree = json.loads(line)
        trees.setdefault(tree["message_tree_id"], tree)  # a repeated tree id counts once, first line wins
    for tree in trees.values():
        for thread in paths(tree["prompt"], []):
            seen = {date.fromisoformat(m["created_date"][:10]) for m in thread}
            # A session counts on the day it starts; after a day without it, it starts again (docs/metrics.md).
            for day in seen - {day + timedelta(days=1) for day in seen}:
                days["sessions"][day.isoformat()] += 1
            for message in thread:
                days["messages"][message["created_date"][:10]] += 1
        for message in nodes(tree["prompt"]):
            if message["role"] == "assistant":
                day = message["created_date"][:10]
                emojis = message.get("emojis") or {}
                days["feedback"][day] += emojis.get("+1", 0) + emojis.get("-1", 0)
                days["negative"][day] += emojis.get("-1", 0)
    return days


def test_convert_counts(realdata: Path, tmp_path: Path) -> None:
    expected = _expected(realdata / FILE)
    counts = convert(realdata / FILE, tmp_path)
    assert (counts["trees"], counts["repeated_trees"]) == (520, 31)
    assert counts["sessions"] == sum(1 for _ in _threads(realdata / FILE))
    assert counts["messages"] == sum(expected["messages"].values())
    # 1,194 votes (813 +1, 381 -1) on the assistant messages of the 520 distinct trees, each written once.
    assert counts["feedback"] == sum(expected["feedback"].values()) == 1194
    assert sum(expected["negative"].values()) == 381
    lines = (tmp_path / "sessions-oasst2.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len({json.loads(line)["session_id"] for line in lines}) == counts["sessions"]
    ratings = [json.loads(line) for line in (tmp_path / "feedback-oasst2.jsonl").read_text().splitlines()]
    written = Counter(rating["message_id"].rsplit("/", 1)[1] for rating in ratings)
    trees = {}
    for line in (realdata / FILE).read_text(encoding="utf-8").splitlines():
        tree = json.loads(line)
        trees.setdefault(tree["message_tree_id"], tree)
    votes = sum((_votes(tree["prompt"]) for tree in trees.values()), Counter())
    assert written == +votes  # every message's votes, once, in one thread
    assert len({(rating["session_id"], rating["message_id"].rsplit("/", 1)[1]) for rating in ratings}) == len(written)


@pytest.mark.subprocess
def test_a_day_of_oasst_through_the_pipeline(realdata: Path, tmp_path: Path) -> None:
    expected = _expected(realdata / FILE)
    landing = tmp_path / "landing"
    result = run_cli("--config", "/dev/null", "convert-oasst", str(realdata / FILE), "--out", str(landing))
    assert result.returncode == 0, result.stderr
    config = tmp_path / "oasst.yaml"
    config.write_text(f"data_home: {tmp_path / 'home'}\nlanding_dir: {landing}\nstart_date: 2023-01-01\n")
    result = run_cli("--config", str(config), "run", "--start", DAY)
    assert result.returncode == 0, result.stderr
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}")
    messages = warehouse.read("messages", DAY)
    sessions = warehouse.read("sessions", DAY)
    feedback = warehouse.read("feedback", DAY)
    assert (len(messages), len(sessions), len(feedback)) == (
        expected["messages"][DAY],
        expected["sessions"][DAY],
        expected["feedback"][DAY],
    )
    daily = warehouse.read("feedback_daily", DAY).iloc[0]
    assert daily["ratings"] == expected["feedback"][DAY] and daily["thumbs"] == daily["ratings"]
    votes_up = expected["feedback"][DAY] - expected["negative"][DAY]
    assert daily["satisfaction"] == votes_up / expected["feedback"][DAY]
    assert warehouse.read("scenario_daily", DAY)["sessions"].sum() == len(sessions)
    assert sessions["scenario"].notna().all()
    # 2023 is long past the 30-day retention: the text is gone, the rows, labels and ratings stay; the run says so.
    assert messages["content"].isna().all()
    assert f"{DAY} is older than content_retention_days (30): its message text" in result.stdout + result.stderr
