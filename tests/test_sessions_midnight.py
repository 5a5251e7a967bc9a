"""Sessions across midnight (chatpulse/behaviour/midnight.py, assets/neighbours.py): a session counts once,
whole, on the local day it starts, whichever order the days are run in; field case 07 run as a user runs it."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml

from chatpulse.behaviour.midnight import day_sessions, neighbour_condition, neighbour_rows, with_neighbours
from chatpulse.behaviour.sessions import event_keys
from chatpulse.days import local_days
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse, Write

from fixtures import clean_messages, clean_requests, invoke_cli, write_jsonl

D = date(2026, 11, 20)


def _stamp(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}Z"


def _sessions_of(day: date, days: dict[date, tuple[pd.DataFrame, pd.DataFrame]], tz: str, gap: float) -> pd.DataFrame:
    """day_sessions of `day` from its rows and the rows neighbour_rows keeps of the days either side, as the
    pipeline builds them; `days` holds each day's requests and messages."""
    requests, messages = days.get(day, (clean_requests(), clean_messages()))
    events = event_keys(requests, messages)
    near = {"requests": [], "messages": []}
    for neighbour in (day - timedelta(days=1), day + timedelta(days=1)):
        if neighbour in days:
            for name, rows in zip(near, days[neighbour], strict=True):
                near[name].append(rows[neighbour_rows(events, rows, day, neighbour, tz, gap)])
    requests = with_neighbours(requests, pd.concat(near["requests"] or [clean_requests()], ignore_index=True))
    messages = with_neighbours(messages, pd.concat(near["messages"] or [clean_messages()], ignore_index=True))
    return day_sessions(requests, messages, day, tz, gap)


def test_a_session_over_midnight_counts_whole_on_the_day_it_starts() -> None:
    after = D + timedelta(days=1)
    days = {
        D: (
            clean_requests(
                {"timestamp": _stamp(D, "23:50:00"), "session_id": "s", "user_id": "a", "latency_ms": 2000.0},
                {"timestamp": _stamp(D, "23:55:00"), "user_id": "b", "latency_ms": 1000.0},
                {"timestamp": _stamp(D, "23:00:00"), "user_id": "c", "latency_ms": 0.0},
            ),
            clean_messages(),
        ),
        after: (
            clean_requests(
                {"timestamp": _stamp(after, "00:10:00"), "session_id": "s", "user_id": "a", "latency_ms": 2000.0},
                {"timestamp": _stamp(after, "00:05:00"), "user_id": "b", "latency_ms": 1000.0},
                {"timestamp": _stamp(after, "00:25:00"), "user_id": "b", "latency_ms": 1000.0},
                {"timestamp": _stamp(after, "05:00:00"), "user_id": "b", "latency_ms": 1000.0},  # a new session
                {"timestamp": _stamp(after, "00:31:00"), "user_id": "c", "latency_ms": 0.0},  # 91 min after c's
            ),
            clean_messages(),
        ),
    }
    first = _sessions_of(D, days, "UTC", 30).set_index("session_id")
    # By hand: s from 23:50:00 to 00:10:00 + 2 s; b's three requests 23:55 -> 00:25 + 1 s, each <= 30 min apart.
    assert first[["turns", "duration_s"]].to_dict("index") == {
        "s": {"turns": 2, "duration_s": 20 * 60 + 2.0},
        "b@2026-11-20T23:55:00+00:00": {"turns": 3, "duration_s": 30 * 60 + 1.0},
        "c@2026-11-20T23:00:00+00:00": {"turns": 1, "duration_s": 0.0},
    }
    second = _sessions_of(after, days, "UTC", 30)
    assert second["session_id"].tolist() == ["c@2026-11-21T00:31:00+00:00", "b@2026-11-21T05:00:00+00:00"]


def test_the_day_before_lends_only_what_can_reach_the_day() -> None:
    before = D - timedelta(days=1)
    events = event_keys(
        clean_requests(
            {"timestamp": _stamp(D, "00:10:00"), "user_id": "a"},  # a's first row, 10 min in
            {"timestamp": _stamp(D, "00:40:00"), "user_id": "b"},  # b's, 40 min in: no chain reaches it
            {"timestamp": _stamp(D, "12:00:00"), "session_id": "s"},
        ),
        clean_messages(),
    )
    rows = clean_messages(
        {"timestamp": _stamp(before, "23:45:00"), "user_id": "a"},  # kept: within 30 min of midnight
        {"timestamp": _stamp(before, "23:00:00"), "user_id": "a"},  # too early to chain into the day
        {"timestamp": _stamp(before, "23:55:00"), "user_id": "b"},
        {"timestamp": _stamp(before, "23:58:00"), "user_id": "z"},  # no row on the day
        {"timestamp": _stamp(before, "01:00:00"), "session_id": "s"},  # same session, any time
        {"timestamp": _stamp(before, "23:59:00"), "session_id": "t", "user_id": "a"},  # another explicit session
    )
    assert neighbour_rows(events, rows, D, before, "UTC", 30).tolist() == [True, False, False, False, True, False]
    after = D + timedelta(days=1)
    later = clean_messages(
        {"timestamp": _stamp(after, "20:00:00"), "user_id": "a"},  # a's last row on the day is 23:40 below
        {"timestamp": _stamp(after, "20:00:00"), "user_id": "b"},  # b's is 00:40: no chain out of the day
        {"timestamp": _stamp(after, "20:00:00"), "session_id": "s"},
    )
    late = event_keys(clean_requests({"timestamp": _stamp(D, "23:40:00"), "user_id": "a"}), clean_messages())
    both = pd.concat([events, late], ignore_index=True)
    assert neighbour_rows(both, later, D, after, "UTC", 30).tolist() == [True, False, True]


def test_with_neighbours_keeps_the_days_frame_and_types() -> None:
    day = clean_requests({"timestamp": _stamp(D, "10:00:00"), "status_code": 200})
    assert with_neighbours(day, clean_requests()) is day  # nothing to add: no copy of a big day
    stored = pd.DataFrame(  # as the warehouse reads back: a day column, plain types
        {"day": ["2026-11-21"], "timestamp": [pd.Timestamp("2026-11-21T00:00:01Z").as_unit("us")]}
    ).assign(status_code=500.0)
    both = with_neighbours(day, stored)
    assert list(both.columns) == list(day.columns) and (both.dtypes == day.dtypes).all()
    assert both["status_code"].tolist() == [200, 500]


# Random days of events, packed around midnights, with every session within its first day and the next.
TZ = "Asia/Shanghai"
GAP = 30.0


def _random_days(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Requests and messages over four local days (ids r0.., m0..): explicit sessions spanning at most 20 h,
    users without session ids whose rows come 1 to 60 minutes apart, in runs of at most 12 (6 h)."""
    rng = random.Random(seed)
    first = datetime(2026, 11, 19, tzinfo=ZoneInfo(TZ))
    midnights = [first + timedelta(days=n) for n in range(1, 4)]
    requests: list[dict] = []
    messages: list[dict] = []

    def add(at: datetime, user: str | None, session: str | None) -> None:
        at = min(max(at, first), first + timedelta(days=4, seconds=-1))
        if rng.random() < 0.6:
            latency = rng.choice([None, float(rng.randint(0, 90_000))])  # whole ms, as logs have them
            row = {"timestamp": at.isoformat(), "user_id": user, "session_id": session, "latency_ms": latency}
            requests.append(row)
        else:
            role = rng.choice(["user", "assistant"])
            messages.append({"timestamp": at.isoformat(), "user_id": user, "session_id": session, "role": role})

    for n in range(rng.randint(0, 6)):
        start = rng.choice(midnights) + timedelta(minutes=rng.uniform(-600, 300))
        for _ in range(rng.randint(1, 5)):
            add(start + timedelta(hours=rng.uniform(0, 20)), rng.choice(["u1", None]), f"s{n}")
    for user in ("u1", "u2", "u3"):
        for _ in range(rng.randint(0, 3)):
            at = rng.choice(midnights) + timedelta(minutes=rng.uniform(-240, 120))
            for _ in range(rng.randint(1, 12)):
                add(at, user, None)
                at += timedelta(minutes=rng.choice([rng.uniform(1, 30), rng.uniform(30, 60)]))
    reqs, msgs = clean_requests(*requests), clean_messages(*messages)
    reqs["request_id"] = [f"r{n}" for n in range(len(reqs))]
    msgs["message_id"] = [f"m{n}" for n in range(len(msgs))]
    return reqs, msgs


def _by_day(frame: pd.DataFrame) -> dict[date, pd.DataFrame]:
    days = local_days(frame["timestamp"], TZ)
    return {day.date(): rows.reset_index(drop=True) for day, rows in frame.groupby(days)}


def _brute_force(requests: pd.DataFrame, messages: pd.DataFrame) -> dict[date, set[tuple]]:
    """Every session over all the days at once, one event at a time, keyed by the local day of its start."""
    members: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, str]]] = defaultdict(list)
    idless: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, str]]] = defaultdict(list)
    for kind, frame in (("request", requests), ("message", messages)):
        for row in frame.itertuples():
            latency = getattr(row, "latency_ms", float("nan"))
            end = row.timestamp + pd.Timedelta(milliseconds=0 if pd.isna(latency) else latency)
            event = (row.timestamp, end, kind if kind == "request" else f"message:{row.role}")
            if pd.notna(row.session_id):
                members[row.session_id].append(event)
            elif pd.notna(row.user_id):
                idless[row.user_id].append(event)
    for user, events in idless.items():
        events.sort()
        run = [events[0]]
        for event in events[1:]:
            if event[0] - run[-1][0] > pd.Timedelta(minutes=GAP):
                members[f"{user}@{run[0][0].isoformat()}"] = run
                run = []
            run.append(event)
        members[f"{user}@{run[0][0].isoformat()}"] = run
    found: dict[date, set[tuple]] = defaultdict(set)
    for session, events in members.items():
        start, end = min(e[0] for e in events), max(e[1] for e in events)
        n_requests = sum(e[2] == "request" for e in events)
        n_messages = len(events) - n_requests
        turns = sum(e[2] == "message:user" for e in events) if n_messages else n_requests
        found[start.tz_convert(TZ).date()].add((session, start, end, turns, n_requests, n_messages))
    return found


def _as_set(sessions: pd.DataFrame) -> set[tuple]:
    columns = ["session_id", "start", "end", "turns", "requests", "messages"]
    return set(sessions[columns].itertuples(index=False, name=None))


@pytest.mark.parametrize("seed", range(40))
def test_each_day_built_with_its_neighbours_holds_the_sessions_starting_on_it_whole(seed: int) -> None:
    requests, messages = _random_days(seed)
    expected = _brute_force(requests, messages)
    reqs, msgs = _by_day(requests), _by_day(messages)
    days = {day: (reqs.get(day, clean_requests()), msgs.get(day, clean_messages())) for day in set(reqs) | set(msgs)}
    for day in sorted(days):
        assert _as_set(_sessions_of(day, days, TZ, GAP)) == expected.get(day, set()), day


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_warehouse_reads_the_neighbour_rows_the_rule_keeps(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'w.db'}"
    store = Warehouse(url)
    try:
        _compare_reads(store)
    finally:
        store.engine.dispose()


def _compare_reads(store: Warehouse) -> None:
    for seed in range(5):
        requests, messages = _random_days(seed)
        reqs, msgs = _by_day(requests), _by_day(messages)
        days = sorted(set(reqs) | set(msgs))
        for day in days:
            store.replace_day(
                day.isoformat(),
                Write("requests", reqs.get(day, clean_requests())),
                Write("messages", msgs.get(day, clean_messages())),
            )
        for day in days:
            events = event_keys(reqs.get(day, clean_requests()), msgs.get(day, clean_messages()))
            for neighbour in (day - timedelta(days=1), day + timedelta(days=1)):
                for name, frames, key in (("requests", reqs, "request_id"), ("messages", msgs, "message_id")):
                    rows = frames.get(neighbour, clean_requests() if name == "requests" else clean_messages())
                    kept = rows[neighbour_rows(events, rows, day, neighbour, TZ, GAP)]
                    read = store.read_where(name, neighbour_condition(TABLES[name], day, neighbour, TZ, GAP))
                    assert sorted(read[key]) == sorted(kept[key]), (seed, day, neighbour, name)


# Field case 07, through the CLI.
CASE = "07-sessions-across-midnight"
FIRST, SECOND = "2025-06-02", "2025-06-03"
SESSION_TABLES = ("sessions", "daily_metrics", "session_metrics", "scenario_daily", "feedback_daily")


def _expected_from_lines(case: Path) -> dict[str, list[tuple[str, int, float]]]:
    """The case's sessions counted again from its request lines: id or user, turns (requests) and duration,
    by the UTC day (the case sets no time zone) of their first request."""
    gap = timedelta(minutes=yaml.safe_load((case / "cfg.yaml").read_text())["session_gap_minutes"])
    lines = [json.loads(line) for line in (case / "requests.jsonl").read_text().splitlines() if line.strip()]
    groups: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for line in sorted(lines, key=lambda line: line["timestamp"]):
        at = datetime.fromisoformat(line["timestamp"])
        event = (at, at + timedelta(milliseconds=line["latency_ms"]))
        if line.get("session_id"):
            groups[line["session_id"]].append(event)
        else:
            user, runs = line["user_id"], [k for k in groups if k.startswith(line["user_id"] + "@")]
            if runs and at - groups[runs[-1]][-1][0] <= gap:
                groups[runs[-1]].append(event)
            else:
                groups[f"{user}@{at.isoformat().replace('Z', '+00:00')}"].append(event)
    by_day: dict[str, list[tuple[str, int, float]]] = {FIRST: [], SECOND: []}
    for key, events in groups.items():
        start, end = events[0][0], max(e[1] for e in events)
        by_day[start.date().isoformat()].append((key, len(events), (end - start).total_seconds()))
    return {day: sorted(sessions) for day, sessions in by_day.items()}


def _run(case: Path, home: Path, day: str, **env: str) -> None:
    result = invoke_cli(
        "--config", str(case / "cfg.yaml"), "run", "--start", day, CHATPULSE_HOME=str(home), **env,
        DAGSTER_HOME=str(home / "dagster"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def _report_sessions(home: Path, day: str) -> int:
    text = " ".join(re.sub(r"<[^>]+>", " ", (home / "reports" / f"{day}.html").read_text()).split())
    return int(re.search(r"\bSessions (\d+)", text).group(1))


def _tables(store: Warehouse, day: str) -> dict[str, pd.DataFrame]:
    return {name: store.read(name, day).drop(columns=["day"]) for name in SESSION_TABLES}


def _check(home: Path, expected: dict[str, list[tuple[str, int, float]]], ids: bool = True) -> Warehouse:
    """The session tables, the day's headline and session metrics, the scenarios and the report of each day
    agree with `expected` (session ids too unless user ids are stored as pseudonyms)."""
    store = Warehouse(f"sqlite:///{home / 'warehouse.db'}")
    for day, sessions in expected.items():
        table = store.read("sessions", day)
        found = sorted(table[["session_id", "turns", "duration_s"]].itertuples(index=False, name=None))
        assert found == sessions if ids else sorted(f[1:] for f in found) == sorted(s[1:] for s in sessions)
        assert store.read("daily_metrics", day)["sessions"].tolist() == [len(sessions)]
        stats = store.read("session_metrics", day).iloc[0]
        assert stats["sessions"] == len(sessions)
        assert stats["turn_gaps"] == sum(turns - 1 for _, turns, _ in sessions)
        assert store.read("scenario_daily", day)["sessions"].sum() == len(sessions)
        assert _report_sessions(home, day) == len(sessions)
    return store


@pytest.mark.pipeline
def test_case_07_sessions_across_midnight_whichever_order_the_days_run(
    field_case: Callable[[str], Path], tmp_path: Path
) -> None:
    case = field_case(CASE)
    expected = _expected_from_lines(case)
    assert {day: [(turns, seconds) for _, turns, seconds in s] for day, s in expected.items()} == {
        FIRST: [(2, 1202.0), (2, 601.0)],  # EXPECTED.md: sess-night and u-eps, whole on the first day
        SECOND: [],
    }
    home = tmp_path / "forward"
    for day in (FIRST, SECOND):  # the first day reads the second's rows from the landing file
        _run(case, home, day)
    store = _check(home, expected)
    first = _tables(store, FIRST)
    _run(case, home, SECOND)  # rerunning the later day leaves the earlier one alone
    _check(home, expected)
    for name, table in _tables(store, FIRST).items():
        pd.testing.assert_frame_equal(table, first[name], obj=name)

    # Backwards, with user ids stored as pseudonyms: the landing rows of the day before are linked to the
    # day's by their pseudonyms.
    with (case / "cfg.yaml").open("a") as cfg:
        cfg.write("pseudonymize_storage: true\n")
    home = tmp_path / "backward"
    for day in (SECOND, FIRST):
        _run(case, home, day, CHATPULSE_PSEUDONYM_KEY="a key long enough for the pseudonyms, and secret")
    store = _check(home, expected, ids=False)
    assert "u-eps" not in " ".join(store.read("sessions")["session_id"])


@pytest.mark.pipeline
@pytest.mark.parametrize("order", ["forward", "backward"])
def test_a_rating_given_the_next_morning_counts_with_its_session(tmp_path: Path, order: str) -> None:
    """A thumbs-down at 00:06 on a session of 23:56 reached no session: the day's sessions read only the day's
    ratings, and the next day's run has no such session. It counts with the session, on the session's day,
    whichever day runs first; the next day's header counts it among that day's ratings."""
    first, second = "2026-11-20", "2026-11-21"
    landing = tmp_path / "landing"
    write_jsonl(
        landing / "messages-1.jsonl",
        [
            {"message_id": "m1", "session_id": "late", "user_id": "u", "role": "user", "content": "hi",
             "timestamp": f"{first}T23:56:00Z"},
            {"message_id": "m2", "session_id": "late", "user_id": "u", "role": "assistant", "content": "hello",
             "timestamp": f"{first}T23:56:30Z"},
            {"message_id": "m3", "session_id": "noon", "user_id": "v", "role": "user", "content": "hey",
             "timestamp": f"{first}T12:00:00Z"},
        ],
    )  # fmt: skip
    write_jsonl(
        landing / "feedback-1.jsonl",
        [
            {"feedback_id": "f1", "session_id": "noon", "rating": 1, "timestamp": f"{first}T12:01:00Z"},
            {"feedback_id": "f2", "session_id": "late", "rating": -1, "timestamp": f"{second}T00:06:00Z"},
            {"feedback_id": "f3", "message_id": "m2", "rating": -1, "timestamp": f"{second}T00:07:00Z"},
        ],
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data_home: home\nlanding_dir: landing\nstart_date: {first}\n")
    for day in (first, second) if order == "forward" else (second, first):
        result = invoke_cli("--config", str(config), "run", "--start", day, DAGSTER_HOME=str(tmp_path / "dagster"))
        assert result.exit_code == 0, result.stderr
    store = Warehouse(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}")
    sessions = store.read("sessions", first).set_index("session_id")
    assert sessions.loc["late", "ratings"] == 2 and sessions.loc["late", "satisfaction"] == 0.0
    assert sessions.loc["noon", "ratings"] == 1
    assert store.read("negative_sessions", first)["session_id"].tolist() == ["late"]
    daily = {day: store.read("feedback_daily", day).iloc[0] for day in (first, second)}
    assert (daily[first]["ratings"], daily[first]["rated_sessions"], daily[first]["negative_sessions"]) == (1, 2, 1)
    assert daily[second]["ratings"] == 2 and store.read("sessions", second).empty  # its header counts them
    scenarios = store.read("scenario_daily", first)
    assert scenarios["rated_sessions"].sum() == 2
