"""Convert OpenAssistant oasst2 conversation trees into ChatPulse landing files.

oasst2 (Apache-2.0) stores one message tree per line: a prompt with nested `replies`.
Each root-to-leaf thread becomes a session (id `<tree>/<leaf message>`), written as one
line of `sessions-<name>.jsonl` (read with `layout: sessions`, the default for
`sessions*` files); messages keep their `created_date`, `prompter` becomes role `user`.
A message shared by several threads appears once in each, with a thread-scoped id
(`<session>/<message>`), since each thread is its own conversation. The `+1` and `-1`
emojis on assistant messages become thumbs ratings in `feedback-<name>.jsonl`, one per
emoji, timed at the rated message (oasst2 does not record when a vote was cast) and written
in the first thread containing the message only: a vote is cast once, and repeating it in
every thread sharing the message would multiply it. Emojis on prompts rate the question,
not the model, and are left out. A tree
whose id was already converted (the Open-Paws subset repeats 31 trees) is skipped, so
its sessions and ratings are not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROLES = {"prompter": "user", "assistant": "assistant"}
THUMBS = {"+1": 1, "-1": -1}


def threads(tree: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every root-to-leaf path of a message tree, iteratively (trees can be deep)."""
    stack = [[tree["prompt"]]]
    while stack:
        path = stack.pop()
        replies = path[-1].get("replies") or []
        if not replies:
            yield path
        stack.extend([*path, reply] for reply in reversed(replies))


def convert(source: Path, landing_dir: Path, name: str = "oasst2") -> dict[str, int]:
    """Write the sessions and feedback files for `source`; returns what it wrote and the repeated trees skipped."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    counts = {"trees": 0, "repeated_trees": 0, "sessions": 0, "messages": 0, "feedback": 0}
    seen: set[str] = set()
    rated: set[str] = set()  # original ids of the messages whose votes are written
    with (
        source.open("rb") as lines,
        (landing_dir / f"sessions-{name}.jsonl").open("wb") as sessions,
        (landing_dir / f"feedback-{name}.jsonl").open("wb") as feedback,
    ):
        for line in lines:
            if not line.strip():
                continue
            tree = orjson.loads(line)
            if tree["message_tree_id"] in seen:
                counts["repeated_trees"] += 1
                continue
            seen.add(tree["message_tree_id"])
            counts["trees"] += 1
            for path in threads(tree):
                session_id = f"{tree['message_tree_id']}/{path[-1]['message_id']}"
                turns = []
                for message in path:
                    message_id = f"{session_id}/{message['message_id']}"
                    turns.append(
                        {
                            "message_id": message_id,
                            "role": ROLES[message["role"]],
                            "content": message["text"],
                            "timestamp": message["created_date"],
                        }
                    )
                    if message["role"] != "assistant" or message["message_id"] in rated:
                        continue
                    rated.add(message["message_id"])
                    for emoji, rating in THUMBS.items():
                        for vote in range((message.get("emojis") or {}).get(emoji, 0)):
                            feedback.write(
                                orjson.dumps(
                                    {
                                        "feedback_id": f"{message_id}/{emoji}/{vote}",
                                        "session_id": session_id,
                                        "message_id": message_id,
                                        "timestamp": message["created_date"],
                                        "rating": rating,
                                    }
                                )
                                + b"\n"
                            )
                            counts["feedback"] += 1
                record = {"session_id": session_id, "user_id": path[0]["user_id"], "turns": turns}
                sessions.write(orjson.dumps(record) + b"\n")
                counts["sessions"] += 1
                counts["messages"] += len(turns)
    return counts
