"""Feedback: ratings normalised to one satisfaction score, and what they say per day, model and latency.

Ratings arrive as thumbs (+1 / -1) or stars (1-5) and become a score in [0, 1]:
thumbs up 1.0, thumbs down 0.0, stars (s - 1) / 4. A rating of 1 is ambiguous (thumbs up
or one star): it is read as a star when the same rater (user, else session, else the rated
message, else the rating alone) gives a 2-5 rating that day and never a -1, else as a
thumbs up. A rating scoring below 0.5 (thumbs down, 1 or 2 stars) is negative. Only ids,
labels and numbers leave this module: never message text or comments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from chatpulse.behaviour.scenarios import SCENARIO, SESSION_ROW, UNKNOWN_MODEL
from chatpulse.tables import TABLES, table_columns

SCORE = "score"
NEGATIVE_BELOW = 0.5
# Latency of the answer a rating is about: bucket upper bounds in ms and their labels.
LATENCY_EDGES_MS = (1_000.0, 2_000.0, 5_000.0, 10_000.0, 30_000.0)
LATENCY_BUCKETS = ("<1s", "1-2s", "2-5s", "5-10s", "10-30s", ">=30s", "unknown")
# Who gave a rating without a user_id: its session, else its message, else the rating itself
# (cleaning derives every feedback_id), so anonymous ratings never pool into one rater.
RATER_FALLBACKS = ("session_id", "message_id", "feedback_id")


def scores(feedback: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The score in [0, 1] and the scale ("thumbs" or "stars") of each rating (see the module docstring)."""
    rating = feedback["rating"].to_numpy(dtype="float64")
    rater = feedback["user_id"].astype(object)
    for fallback in RATER_FALLBACKS:
        rater = rater.fillna(feedback[fallback].astype(object))
    rater = rater.to_numpy(dtype=object)
    stars_seen = pd.Series((rating >= 2) & (rating <= 5)).groupby(rater).transform("any").to_numpy(bool)
    thumbs_seen = pd.Series(rating == -1).groupby(rater).transform("any").to_numpy(bool)
    stars = (rating >= 2) | ((rating == 1) & stars_seen & ~thumbs_seen)
    score = np.where(stars, (rating - 1) / 4, (rating + 1) / 2)
    return score, np.where(stars, "stars", "thumbs")


def _instants(timestamps: pd.Series) -> np.ndarray:
    """UTC instants as naive datetime64[ns]."""
    return pd.to_datetime(timestamps, utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]")


def named_ids_only(messages: pd.DataFrame, ratings: Sequence[pd.DataFrame]) -> None:
    """Keeps, in place, the message_id of only the messages one of `ratings` names (all that rate looks up), as a
    categorical, the others missing: a day's message ids are all distinct (0.14 GB at 4M requests), rated ones few."""
    wanted = pd.concat([frame["message_id"] for frame in ratings]).dropna()
    # Arrow's is_in, as rate's: pandas' isin on Arrow text makes a Python scalar of every wanted id (45,000 ids
    # of a 1M day: 0.5 s against 0.02).
    named = pc.is_in(pa.array(messages["message_id"], pa.string()), pa.array(wanted, pa.string()))
    named = np.flatnonzero(named.to_numpy(zero_copy_only=False))
    codes, ids = pd.factorize(messages["message_id"].iloc[named])
    kept = np.full(len(messages), -1, dtype=np.int32)
    kept[named] = codes
    messages["message_id"] = pd.Categorical.from_codes(kept, categories=pd.Index(np.asarray(ids, dtype=object)))


def rate(
    sessions: pd.DataFrame, feedback: pd.DataFrame, messages: pd.DataFrame, requests: pd.DataFrame
) -> pd.DataFrame:
    """One row per rating: SESSION_ROW (-1 when in no session of the day), score, scale and latency_ms.

    messages and requests carry SESSION_ROW (scenarios.session_rows). A rating belongs
    to its session_id, else to the session of its message_id. The rated answer is the
    latest request of the session started by the rated message's time, or by the rating's
    own time when it names no message; latency_ms is that request's latency, NaN when
    there is none. Matching on the start, not the end (timestamp + latency): logs floor
    message times to the ms and round latencies, so an answer is often stamped a fraction
    of a ms before its request "ends", and would be matched to the turn before.
    """
    score, scale = scores(feedback)
    wanted = pc.is_in(
        pa.array(messages["message_id"], pa.string()), pa.array(feedback["message_id"].dropna(), pa.string())
    )
    rated_messages = messages.loc[wanted.to_numpy(zero_copy_only=False), ["message_id", "timestamp", SESSION_ROW]]
    rated_messages = rated_messages.drop_duplicates("message_id")
    found = pd.Index(rated_messages["message_id"].to_numpy(dtype=object)).get_indexer(
        feedback["message_id"].to_numpy(dtype=object)
    )
    by_id = pd.Index(sessions["session_id"].to_numpy(dtype=object)).get_indexer(
        feedback["session_id"].to_numpy(dtype=object)
    )
    # Index -1 (no such message) picks the appended fallback: no session, no message time.
    by_message = np.append(rated_messages[SESSION_ROW].to_numpy(dtype="int64"), -1)[found]
    message_at = np.append(_instants(rated_messages["timestamp"]), np.datetime64("NaT", "ns"))[found]
    rows = np.where(feedback["session_id"].notna().to_numpy(), by_id, by_message)
    rated = pd.DataFrame(
        {
            SESSION_ROW: rows,
            SCORE: score,
            "scale": scale,
            "at": np.where(found >= 0, message_at, _instants(feedback["timestamp"])),
            "order": np.arange(len(feedback)),
        }
    )
    answers = requests.loc[
        np.isin(requests[SESSION_ROW].to_numpy(), rows[rows >= 0]), [SESSION_ROW, "timestamp", "latency_ms"]
    ]
    answers = pd.DataFrame(
        {
            SESSION_ROW: answers[SESSION_ROW].to_numpy(),
            "at": _instants(answers["timestamp"]),
            "latency_ms": answers["latency_ms"].to_numpy(dtype="float64"),
        }
    ).sort_values("at", kind="stable")
    matched = pd.merge_asof(
        rated[rows >= 0].sort_values("at", kind="stable"), answers, on="at", by=SESSION_ROW, direction="backward"
    )
    rated["latency_ms"] = matched.set_index("order")["latency_ms"].reindex(rated["order"]).to_numpy()
    return rated[[SESSION_ROW, SCORE, "scale", "latency_ms"]]


def _in_sessions(rated: pd.DataFrame) -> pd.DataFrame:
    return rated[rated[SESSION_ROW].to_numpy() >= 0]


def session_ratings(sessions: pd.DataFrame, rated: pd.DataFrame) -> pd.DataFrame:
    """Per session (index-aligned): ratings (count) and satisfaction (mean score, NaN when unrated)."""
    rated = _in_sessions(rated)
    rows = rated[SESSION_ROW].to_numpy()
    count = np.bincount(rows, minlength=len(sessions))
    total = np.bincount(rows, weights=rated[SCORE].to_numpy(dtype="float64"), minlength=len(sessions))
    satisfaction = np.full(len(sessions), np.nan)
    np.divide(total, count, out=satisfaction, where=count > 0)
    return pd.DataFrame({"ratings": count.astype("int64"), "satisfaction": satisfaction}, index=sessions.index)


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else np.nan


def feedback_daily(
    sessions: pd.DataFrame, rated: pd.DataFrame, day: dt.date, of_sessions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The day's one row: ratings (thumbs, stars), sessions, rated_sessions, coverage, satisfaction, negative_sessions.

    Every rating of the day (`rated`) counts in ratings and satisfaction; coverage counts the day's
    sessions with a rating (sessions carries ratings and satisfaction from session_ratings), and
    negative_sessions those with a negative one among `of_sessions` (default `rated`: the ratings of the
    day's sessions, those given the next day included).
    """
    of_sessions = rated if of_sessions is None else of_sessions
    rated_sessions = int((sessions["ratings"] > 0).sum())
    return pd.DataFrame(
        {
            "day": [day.isoformat()],
            "ratings": [len(rated)],
            "thumbs": [int((rated["scale"] == "thumbs").sum())],
            "stars": [int((rated["scale"] == "stars").sum())],
            "sessions": [len(sessions)],
            "rated_sessions": [rated_sessions],
            "feedback_coverage": [rated_sessions / len(sessions) if len(sessions) else np.nan],
            "satisfaction": [_mean(rated[SCORE])],
            "negative_sessions": [int((_negative_counts(sessions, of_sessions) > 0).sum())],
        }
    )


def _negative_counts(sessions: pd.DataFrame, rated: pd.DataFrame) -> np.ndarray:
    """Negative ratings (score below NEGATIVE_BELOW) per session."""
    rated = _in_sessions(rated)
    return np.bincount(rated[SESSION_ROW].to_numpy()[rated[SCORE].to_numpy() < NEGATIVE_BELOW], minlength=len(sessions))


def negative_sessions(sessions: pd.DataFrame, rated: pd.DataFrame) -> pd.DataFrame:
    """The day's negatively rated sessions: ids, scenario, model, ratings, satisfaction, latency, errors. No content."""
    negative = _negative_counts(sessions, rated)
    table = sessions.assign(negative_ratings=negative)[negative > 0]
    columns = [name for name in table_columns("negative_sessions") if name != "day"]
    return table[columns].sort_values(["satisfaction", "session_id"], kind="stable").reset_index(drop=True)


def satisfaction_by(rated: pd.DataFrame, sessions: pd.DataFrame, column: str) -> pd.DataFrame:
    """Ratings, rated sessions and satisfaction per value of a session column (e.g. model), ratings in sessions only."""
    rated = _in_sessions(rated)
    values = sessions[column].astype(object).fillna(UNKNOWN_MODEL).to_numpy(dtype=object)[rated[SESSION_ROW].to_numpy()]
    grouped = rated.groupby(values)
    return pd.DataFrame(
        {
            column: grouped.size().index.astype("str"),
            "ratings": grouped.size().to_numpy(dtype="int64"),
            "rated_sessions": grouped[SESSION_ROW].nunique().to_numpy(dtype="int64"),
            "satisfaction": grouped[SCORE].mean().to_numpy(dtype="float64"),
        }
    )


def satisfaction_by_latency(rated: pd.DataFrame) -> pd.DataFrame:
    """Ratings and satisfaction per latency bucket of the rated answer (every bucket, in order)."""
    position = np.searchsorted(np.array(LATENCY_EDGES_MS), rated["latency_ms"].to_numpy(dtype="float64"), side="right")
    position = np.where(rated["latency_ms"].isna().to_numpy(), len(LATENCY_BUCKETS) - 1, position)
    grouped = rated[SCORE].groupby(position)
    return pd.DataFrame(
        {
            "bucket": pd.Series(LATENCY_BUCKETS, dtype="str"),
            "bucket_order": np.arange(len(LATENCY_BUCKETS), dtype="int64"),
            "ratings": grouped.size().reindex(range(len(LATENCY_BUCKETS)), fill_value=0).to_numpy(dtype="int64"),
            "satisfaction": grouped.mean().reindex(range(len(LATENCY_BUCKETS))).to_numpy(dtype="float64"),
        }
    )


# Spotlight: metric -> (direction that is worse: +1 higher, -1 lower; volume column; minimum volume).
SPOTLIGHT_METRICS = {
    "latency_p95_ms": (1, "requests", 20),
    "error_rate": (1, "requests", 20),
    "satisfaction": (-1, "ratings", 5),
}
SPOTLIGHT_TOP = 3
# The pandas dtype of a warehouse column, by the Python type its SQL type holds.
_DTYPES = {str: "str", int: "int64", float: "float64"}


def spotlight(today: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The scenarios whose metrics moved most against the previous days (scenario_daily rows).

    Baselines over history: latency_p95_ms the mean of the daily values, error_rate
    errors / requests, satisfaction the rating-weighted mean. change = today - baseline,
    and the ranking is by the change in the bad direction, relative for latency (change /
    baseline) and absolute for the rates. A scenario needs the metric's minimum volume
    today and over the history; up to SPOTLIGHT_TOP worsened scenarios per metric.
    """
    rows = []
    history = history[history[SCENARIO].isin(today[SCENARIO])]
    grouped = history.groupby(SCENARIO)
    weighted = (history["satisfaction"] * history["ratings"]).groupby(history[SCENARIO]).sum()
    baselines = pd.DataFrame(
        {
            "latency_p95_ms": grouped["latency_p95_ms"].mean(),
            "error_rate": grouped["errors"].sum() / grouped["requests"].sum().where(lambda n: n > 0),
            "satisfaction": weighted / grouped["ratings"].sum().where(lambda n: n > 0),
            "requests": grouped["requests"].sum(),
            "ratings": grouped["ratings"].sum(),
            "days": grouped["day"].nunique(),
        }
    )
    current = today.set_index(SCENARIO)
    for metric, (worse, volume, minimum) in SPOTLIGHT_METRICS.items():
        base = baselines.reindex(current.index)
        eligible = (
            (current[volume] >= minimum) & (base[volume] >= minimum) & current[metric].notna() & base[metric].notna()
        )
        change = current[metric] - base[metric]
        moved = worse * (change / base[metric] if metric == "latency_p95_ms" else change)
        candidates = moved[eligible & (moved > 0)].sort_values(ascending=False, kind="stable").head(SPOTLIGHT_TOP)
        for rank, scenario in enumerate(candidates.index, start=1):
            rows.append(
                {
                    "metric": metric,
                    "rank": rank,
                    SCENARIO: scenario,
                    "value": current.at[scenario, metric],
                    "baseline": base.at[scenario, metric],
                    "change": change[scenario],
                    "score": candidates[scenario],
                    "baseline_days": int(base.at[scenario, "days"]),
                }
            )
    # The table's columns (day is the partition, set on write), typed as it declares them.
    dtypes = {
        column.name: _DTYPES[column.type.python_type]
        for column in TABLES["scenario_spotlight"].columns
        if column.name != "day"
    }
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)
