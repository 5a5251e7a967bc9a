"""What the sessions step leaves out of its frames to hold less (docs/benchmarks.md): every result the same.

The step keys events without joining their ids (sessions._factorized), keeps only the users' message text
(scenarios.user_texts_only) and only the rated messages' ids (feedback.named_ids_only).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from chatpulse.behaviour import feedback
from chatpulse.behaviour.scenario_rules import load_rules
from chatpulse.behaviour.scenarios import SESSION_ROW, label_sessions, read_model, session_rows, user_texts_only
from chatpulse.behaviour.sessions import _factorized, build_sessions
from chatpulse.config import SourceConfig
from chatpulse.ingest.clean import clean_partition
from chatpulse.ingest.extract import extract_day
from chatpulse.sample.generate import write_sample
from chatpulse.schema import Kind

DAY = dt.date(2026, 11, 20)


def test_parts_are_coded_as_their_concatenation_would_be() -> None:
    parts = [
        pd.Series(["s2", None, "s1", "s2"], dtype="str"),
        # Categories in another order than the values' first appearance, one value not in the first part.
        pd.Series(pd.Categorical(["s3", "s1", None, "s3"], categories=["s3", "s1", "unused"])),
        pd.Series(["s4", "s2"], dtype="str"),
    ]
    codes, distinct = _factorized(parts)
    expected_codes, expected = pd.factorize(pd.concat([part.astype(object) for part in parts], ignore_index=True))
    assert codes.tolist() == expected_codes.tolist() == [0, -1, 1, 0, 2, 1, -1, 2, 3, 0]
    assert distinct.tolist() == list(expected) == ["s2", "s1", "s3", "s4"]


def _sample_day(landing: Path, kind: Kind) -> pd.DataFrame:
    source = SourceConfig(name=kind.value, kind=kind, pattern=f"{kind.value}*")
    return clean_partition(extract_day(landing, [source], kind, DAY, "UTC").frame, kind, DAY.isoformat()).clean


def test_trimmed_messages_give_the_same_ratings_and_labels(tmp_path: Path) -> None:
    write_sample(tmp_path, [DAY], requests_per_day=3000)
    requests, messages, ratings = (_sample_day(tmp_path, kind) for kind in Kind)
    sessions = build_sessions(requests, messages)
    requests[SESSION_ROW], messages[SESSION_ROW] = session_rows(sessions, requests, messages)
    rules, model = load_rules(None), read_model(None)
    whole = messages.copy()
    expected_rated = feedback.rate(sessions, ratings, whole, requests)
    expected_labels = label_sessions(sessions, whole, rules, model)

    user_texts_only(messages)
    feedback.named_ids_only(messages, [ratings])

    is_user = (whole["role"] == "user").to_numpy(bool)
    assert (
        messages["content"][~is_user].isna().all() and (messages["content"][is_user] == whole["content"][is_user]).all()
    )
    rated_ids = set(ratings["message_id"].dropna()) & set(whole["message_id"])
    assert 0 < len(rated_ids) < len(whole)
    assert set(messages["message_id"].dropna()) == rated_ids and messages["message_id"].notna().sum() == len(rated_ids)
    pd.testing.assert_frame_equal(feedback.rate(sessions, ratings, messages, requests), expected_rated)
    pd.testing.assert_frame_equal(label_sessions(sessions, messages, rules, model), expected_labels)
