"""Label columns held as categoricals (schema.CODED): every result the same as on plain text.

Each case is one where pandas treats a categorical unlike text: a factorize's uniques, a cast to another
frame's categories, a value set that is no category, a concat of different categories.
"""

from __future__ import annotations

import json

import pandas as pd

from chatpulse.behaviour.midnight import with_neighbours
from chatpulse.behaviour.scenarios import SESSION_ROW, UNKNOWN_MODEL, session_rows, session_usage
from chatpulse.behaviour.sessions import build_sessions
from chatpulse.ingest.masking import mask, mask_metadata
from chatpulse.pseudonyms import Pseudonyms
from chatpulse.schema import CODED, coded, stacked

from fixtures import clean_messages, clean_requests

# Users first seen in an order that is not their sorted one: a categorical's categories are sorted.
USERS = ["u_zed", "u_amy", "u_max", "u_bob"]


def _decoded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({name: "str" for name in frame if isinstance(frame[name].dtype, pd.CategoricalDtype)})


def _requests() -> pd.DataFrame:
    rows = [
        {"request_id": f"r{n}", "timestamp": f"2026-11-20T{10 + n % 4}:{n:02d}:00Z", "user_id": user, "model": model}
        for n, (user, model) in enumerate((u, m) for m in ("gpt-4o", "claude") for u in USERS)
    ]
    return clean_requests(*rows)


def test_sessions_of_coded_events_name_the_same_users() -> None:
    requests = _requests()
    messages = clean_messages(
        {"message_id": "m1", "timestamp": "2026-11-20T10:00:30Z", "user_id": "u_bob", "role": "user", "content": "hi"}
    )
    plain = build_sessions(requests, messages)
    ours = build_sessions(coded(requests.copy()), coded(messages.copy()))
    pd.testing.assert_frame_equal(_decoded(ours), plain)
    # Each gap session's user is the one whose events it holds (its id starts with that user).
    assert (plain["session_id"].str.split("@").str[0] == plain["user_id"]).all()


def test_a_session_whose_requests_name_no_model_is_the_unknown_models() -> None:
    # A value that is none of a categorical's categories cannot fill its gaps: the day's run failed on it.
    requests = clean_requests(
        {"request_id": "a", "timestamp": "2026-11-20T10:00:00Z", "user_id": "u1", "model": "gpt-4o"},
        {"request_id": "b", "timestamp": "2026-11-20T10:01:00Z", "user_id": "u2"},
    )
    plain = build_sessions(requests, clean_messages())
    for frame in (requests, coded(requests.copy())):
        frame[SESSION_ROW] = session_rows(plain, frame, clean_messages())[0]
        usage = session_usage(plain, frame)
        by_user = dict(zip(plain["user_id"], usage["model"], strict=True))
        assert by_user == {"u1": "gpt-4o", "u2": UNKNOWN_MODEL}


def test_neighbours_keep_the_labels_the_day_lacks() -> None:
    day = coded(_requests().iloc[:4].reset_index(drop=True))
    neighbours = clean_requests({"request_id": "n1", "timestamp": "2026-11-19T23:59:00Z", "model": "gemini-2.5"})
    joined = with_neighbours(day, neighbours)
    assert joined["model"].tolist() == ["gpt-4o"] * 4 + ["gemini-2.5"]
    assert isinstance(joined["model"].dtype, pd.CategoricalDtype)


def test_stacked_frames_hold_every_value_in_order() -> None:
    first = coded(pd.DataFrame({"model": ["b", "a"], "n": [1, 2]}))
    second = pd.DataFrame({"model": ["c", None], "n": [3, 4]})  # not coded yet
    missing = coded(pd.DataFrame({"model": pd.Series([None], dtype="str"), "n": [5]}))  # no category at all
    frame = stacked([first, second, missing])
    assert frame["model"].tolist()[:3] == ["b", "a", "c"] and frame["model"].isna().tolist()[3:] == [True, True]
    assert list(frame["model"].cat.categories) == ["a", "b", "c"]
    assert frame["n"].tolist() == [1, 2, 3, 4, 5]


def test_masking_and_pseudonyms_of_a_coded_column_are_those_of_its_text() -> None:
    metadata = pd.Series(
        [json.dumps({"team": "a", "mail": "x@example.com"}), None, json.dumps({"team": "b"}), "free text 555-0100"] * 3,
        dtype="str",
    )
    for keep in (None, frozenset({"team"})):
        ours = mask_metadata(metadata.astype("category"), keep)
        assert isinstance(ours.dtype, pd.CategoricalDtype)
        pd.testing.assert_series_equal(ours.astype("str"), mask_metadata(metadata, keep), check_names=False)
    texts = pd.Series(["mail bob@example.com", "a", None, "mail amy@example.com"], dtype="str")
    masked = mask(texts.astype("category"))
    assert masked.tolist()[:2] == ["mail [EMAIL]", "a"] and masked.iloc[3] == "mail [EMAIL]"
    assert len(masked.cat.categories) == 2  # the two masked e-mails are one value now
    users = pd.Series([*USERS, None, "u_zed"], dtype="str")
    pseudonyms = Pseudonyms("a key long enough for the test 0123")
    ours = pseudonyms.users(users.astype("category"))
    pd.testing.assert_series_equal(ours.astype("str"), pseudonyms.users(users))


def test_only_label_columns_are_coded() -> None:
    frame = coded(_requests())
    assert {name for name in frame if isinstance(frame[name].dtype, pd.CategoricalDtype)} == CODED & set(frame)
    assert frame["request_id"].dtype == "str" and frame["session_id"].dtype == "str"
