"""A source's `sql` section: which database a source reads, with which query, in which chunks.

The password is never written in the configuration: `password_env` names the variable that holds
it, or `url_env` the variable that holds the whole URL (as LiteLLM's own `DATABASE_URL` does). The
URL with its password is put together only to connect (`SqlQuery.connect_url`); whatever a person
or a table sees names the database as `SqlQuery.shown_url` gives it, the password hidden.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, Field, StrictInt, model_validator
from pydantic import dataclasses as checked

from chatpulse.yamlfile import YamlSection, expect, problem

# The bind parameters every query gets: the UTC instants that start (inclusive) and end (exclusive) the local day.
BOUNDS = ("day_start", "day_end")
DEFAULT_CHUNK_ROWS = 50_000
# A PostgreSQL URL without a driver means psycopg2 to SQLAlchemy; ChatPulse installs psycopg (3).
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


class SqlSettingError(ValueError):
    """A SQL source's URL cannot be put together; the message starts with the key (`password_env: ...`)."""


# Query parameters that carry a secret: libpq takes `?password=` and `?sslpassword=` as well as `user:pw@`.
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
HIDDEN = "***"


def url_secrets(url: sa.URL) -> list[str]:
    """The secrets a URL holds, each as written and percent-encoded (as a driver's error may quote it): its
    password and the values of its query parameters named like one (`password`, `sslpassword`, `token`)."""
    values = [url.password] if url.password else []
    for name, value in url.query.items():
        if _SECRET_PARAMETER.search(name):
            values += [value] if isinstance(value, str) else list(value)
    forms: set[str] = set()
    for value in map(str, values):
        forms |= {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    return sorted(forms - {""}, key=len, reverse=True)  # longest first: a secret inside another is hidden whole


def shown(url: sa.URL) -> str:
    """`url` as messages show it: the password and every secret query parameter as ***."""
    query = {name: HIDDEN if _SECRET_PARAMETER.search(name) else value for name, value in url.query.items()}
    text = url.set(query=query).render_as_string(hide_password=True)
    return text.replace("=" + urllib.parse.quote(HIDDEN, safe=""), "=" + HIDDEN)  # rendering percent-encodes it


def hidden(text: str, url: sa.URL) -> str:
    """`text` (an error a driver raised) with each secret of `url` it quotes replaced by ***."""
    for secret in url_secrets(url):
        text = text.replace(secret, HIDDEN)
    return text


def _url(text: str) -> str:
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError("not a SQLAlchemy URL") from None
    if url_secrets(url):
        raise ValueError("a password in the URL")
    return text


def _bound_query(text: str) -> str:
    names = set(sa.text(text).compile().params)
    missing = [f":{name}" for name in BOUNDS if name not in names]
    if missing:
        raise problem(f"the query needs the bind parameters {' and '.join(missing)} (the day's bounds)")
    unknown = sorted(names - set(BOUNDS))
    if unknown:
        raise problem(f"unknown bind parameter :{unknown[0]} (a query gets :day_start and :day_end)")
    return text


@checked.dataclass(frozen=True)
class SqlQuery(YamlSection):
    """Where a SQL source's rows come from.

    `url` (a SQLAlchemy URL without a password) or `url_env` (the variable holding the whole URL);
    `password_env`, the variable holding the password; `query`, SQL taking the day's bounds as
    :day_start and :day_end; `key`, the column that identifies a row (None: the kind's id column as
    the source maps it); `chunk_rows`, the rows fetched at a time.
    """

    query: Annotated[str, AfterValidator(_bound_query), expect("SQL text with :day_start and :day_end")]
    url: Annotated[
        str | None, AfterValidator(_url), expect("a SQLAlchemy URL without a password (see password_env)", secret=True)
    ] = Field(None, repr=False)
    url_env: Annotated[str | None, expect("a variable name")] = None
    password_env: Annotated[str | None, expect("a variable name")] = None
    key: Annotated[str | None, expect("a column name")] = None
    chunk_rows: Annotated[StrictInt, Field(ge=1), expect("a whole number of rows, at least 1")] = DEFAULT_CHUNK_ROWS

    @model_validator(mode="after")
    def _one_url(self) -> SqlQuery:
        if (self.url is None) == (self.url_env is None):
            raise problem("give either url or url_env (the variable holding the URL)", key="url")
        return self

    def connect_url(self, env: Mapping[str, str]) -> sa.URL:
        """The URL to connect with, password from `env`; a driverless PostgreSQL URL gets psycopg (3).

        Raises SqlSettingError (naming the key and variable, never a value) when a variable is not set
        or `url_env`'s value is no URL.
        """
        text = self.url
        if self.url_env is not None:
            text = env.get(self.url_env)
            if not text:
                raise SqlSettingError(f"url_env: the variable {self.url_env} is not set")
        try:
            url = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError):
            raise SqlSettingError(f"url_env: the variable {self.url_env} holds no SQLAlchemy URL") from None
        if self.password_env is not None:
            password = env.get(self.password_env)
            if password is None:
                raise SqlSettingError(f"password_env: the variable {self.password_env} is not set")
            url = url.set(password=password)
        return url.set(drivername=DRIVERS.get(url.drivername, url.drivername))

    def shown_url(self, env: Mapping[str, str]) -> str:
        """The database as messages name it: its URL with the password hidden (`$VARIABLE` when unset)."""
        try:
            return shown(self.connect_url(env))
        except SqlSettingError:
            return self.url if self.url is not None else f"${self.url_env}"
