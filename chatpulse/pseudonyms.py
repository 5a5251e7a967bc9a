"""Pseudonyms: a user id replaced by a keyed hash, the same for the same user wherever it is shown or stored.

`u_` and the first 16 hex digits of HMAC-SHA256(key, user id): readable as a user id, stable across
runs and days (so per-user counts still add up), and without the key neither reversible nor
guessable from a list of likely ids such as e-mail addresses. The key comes from an environment
variable (config: `pseudonym_key_env`), never from the configuration file.

The report routes every user id it renders through `UserDisplay`, and pseudonymised storage
(chatpulse.ingest.privacy) through `Pseudonyms.users`; a value that is already a pseudonym is
left as it is, so a day stored pseudonymised is not hashed a second time on its way to the report.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pandas as pd

from chatpulse.schema import by_category

PREFIX = "u_"
HEX_DIGITS = 16  # 64 bits: no two of a billion users share a pseudonym by chance
KEY_MIN_LENGTH = 16
_PSEUDONYM = re.compile(rf"{PREFIX}[0-9a-f]{{{HEX_DIGITS}}}")
# A session ChatPulse delimits by inactivity is named after its user and start (chatpulse.behaviour.sessions).
_DERIVED_SESSION = re.compile(r"(.+)(@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00)")


def is_pseudonym(value: str) -> bool:
    """Whether `value` has the shape of a pseudonym (`u_` and 16 lower-case hex digits)."""
    return _PSEUDONYM.fullmatch(value) is not None


class Pseudonyms:
    """The keyed hash of user ids; its repr never shows the key."""

    def __init__(self, key: str) -> None:
        """`key`: the secret (at least KEY_MIN_LENGTH characters; config checks it). Raises ValueError when shorter."""
        if len(key) < KEY_MIN_LENGTH:
            raise ValueError(f"a pseudonym key needs at least {KEY_MIN_LENGTH} characters")
        self._key = key.encode()

    def __repr__(self) -> str:
        return "Pseudonyms(key=<hidden>)"

    def user(self, user_id: str) -> str:
        """The pseudonym of one user id (`u_3f9a2c...`); a pseudonym already is returned unchanged."""
        if is_pseudonym(user_id):
            return user_id
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_DIGITS]

    def users(self, ids: pd.Series) -> pd.Series:
        """Every id of a column replaced by its pseudonym (text), missing ones kept missing; index and name kept.

        Hashes each distinct id once: a million rows of a few thousand users cost a few thousand hashes. A
        categorical (schema.CODED) stays one.
        """
        if isinstance(ids.dtype, pd.CategoricalDtype):
            return by_category(ids, self.users)
        codes, distinct = pd.factorize(ids)
        if not len(distinct):
            return ids
        hashed = [self.user(str(value)) for value in distinct]
        values = pd.Series(hashed + [None], dtype="str").to_numpy()[codes]  # code -1 (missing) takes the last
        return pd.Series(values, index=ids.index, name=ids.name, dtype="str")

    def session(self, session_id: str) -> str:
        """A session id as it may be shown: one ChatPulse derived from a user (`<user>@<start>`) gets the
        user's pseudonym (`u_3f9a...@<start>`); a session id the log gave is shown as it is."""
        derived = _DERIVED_SESSION.fullmatch(session_id)
        return self.user(derived[1]) + derived[2] if derived else session_id


class UserDisplay:
    """The one way the report and its e-mail render a user id (or a session id derived from one); alert payloads
    and the Prometheus output carry no user ids.

    Without pseudonyms ids show as they are; with them (`pseudonymize_users` or `pseudonymize_storage`)
    each shows as its pseudonym. Call it on a user id; `session` on a session id.
    """

    def __init__(self, pseudonyms: Pseudonyms | None = None) -> None:
        self.pseudonyms = pseudonyms

    def __call__(self, user_id: Any) -> str:
        """The user id as shown (text)."""
        text = str(user_id)
        return text if self.pseudonyms is None else self.pseudonyms.user(text)

    def session(self, session_id: Any) -> str:
        """The session id as shown (text)."""
        text = str(session_id)
        return text if self.pseudonyms is None else self.pseudonyms.session(text)
