"""Realistic sample landing data: days of LLM API traffic with their chats and ratings.

The demo, the tests and the benchmark need data that behaves like production: a daily
rhythm, models with their own latency, multi-turn sessions in Chinese and English, a
handful of broken lines and one incident worth finding. Everything is drawn with numpy
in bulk so that a million requests a day stays quick, and from a seed so that a run
repeats byte for byte. Timestamps are written in UTC ("+00:00"), as API gateways log
them; the rhythm and the incident follow the local clock of ``tz``.

The pieces: traffic (constants, distributions, users), texts (texts.yaml), rows (tables
rendered block by block), simulate (one day); this module plants the broken lines and
writes the files.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from chatpulse.sample.bill import Charges, add_charges, write_costs
from chatpulse.sample.rows import Rows
from chatpulse.sample.simulate import simulate
from chatpulse.sample.traffic import Users, day_size
from chatpulse.schema import Kind

GZIP_LEVEL = 1  # a million-row day must write quickly; the files' size matters less
CHUNK_ROWS = 100_000  # bounds the memory of one serialised block


@dataclass
class _Dirt:
    """Broken lines to weave into a file: inserted before a row, or replacing it."""

    inserts: dict[int, list[str]] = field(default_factory=dict)
    replaces: dict[int, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def insert(self, row: int, line: str, category: str) -> None:
        self.inserts.setdefault(row, []).append(line)
        self.counts[category] += 1


def _line(rows: Rows, row: int) -> str:
    """A row exactly as the bulk writer serialises it."""
    return rows.frame([row]).to_json(orient="records", lines=True, force_ascii=False).rstrip("\n")


def _json(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _variant(rows: Rows, row: int, id_column: str, serial: int) -> dict[str, object]:
    """A copy of a row under a fresh id, numbered after the table's own rows."""
    record = json.loads(_line(rows, row))
    record[id_column] = str(rows.render[id_column](np.array([len(rows) + serial]))[0])
    return record


def _dirty_requests(rows: Rows, rng: np.random.Generator) -> _Dirt:
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


def _dirty_messages(rows: Rows, rng: np.random.Generator) -> _Dirt:
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


def _write(path: Path, rows: Rows, dirt: _Dirt) -> int:
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
    busy_incident: bool = False,
) -> dict[str, int]:
    """Writes requests-, messages- and feedback-DAY.jsonl.gz for each day, and the provider's bill of those
    days as an OpenAI Costs API page, bills/openai-costs-FIRST-LAST.json (sample.bill: the logged cost plus one
    known unlogged charge a day); returns what it wrote.

    An explicit requests_per_day is the exact number of valid requests per day; left out,
    weekdays get about 3000 and weekends fewer; with ``busy_incident`` the incident day gets a
    weekday's traffic even at a weekend (the demo: a weekend's 5-minute windows hold too few
    requests for the alert rules' ``min_requests``, so its alerts would depend on the weekday).
    The incident falls on ``incident_day``, by default the second-to-last day (the only day when
    there is one). Each day has its own random stream, so a day comes out the same whichever
    other days are generated with it.

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
    users = Users.draw(seed)
    counts: Counter[str] = Counter()
    charges: Charges = {}
    for day in days:
        rng = np.random.default_rng([seed, day.toordinal()])
        n = day_size(rng, day, requests_per_day, busy_incident and day == incident_day)
        sim = simulate(day, tz, n, users, rng, day == incident_day, seed)
        add_charges(charges, sim.requests)
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
    if days:  # in a folder of its own: no log source reads it, and `chatpulse check` need not mention it
        (landing_dir / "bills").mkdir(exist_ok=True)
        write_costs(landing_dir / "bills" / f"openai-costs-{min(days)}-{max(days)}.json", charges)
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
