"""Settings: where data lives, which time zone a day is in, and how sources map.

Everything comes from one optional YAML file plus a few environment variables,
so a user adapts ChatPulse to their logs with configuration, not code. The file is
validated by pydantic models (`ConfigFile` and the sections below it); an error names
the file, the key path and what was expected, never a bare traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import field, fields, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import dataclasses as checked

from chatpulse.layout import Layout, Records
from chatpulse.mapping import Column, Derived, check_column
from chatpulse.presets import with_preset
from chatpulse.pricefile import PriceError, read_prices
from chatpulse.pseudonyms import KEY_MIN_LENGTH, Pseudonyms
from chatpulse.schema import COLUMNS, ID_COLUMN, Kind
from chatpulse.spendconfig import Budget, Dimension, ProviderBill, Share, TopValues, check_references
from chatpulse.sqlconfig import SqlQuery, SqlSettingError
from chatpulse.tokens import Convention
from chatpulse.yamlfile import (
    TEXT_NOT_NUMBER,
    Day,
    NonNegative,
    Positive,
    YamlSection,
    expect,
    problem,
    read_yaml,
    validate,
)

CONFIG_ENV = "CHATPULSE_CONFIG"
HOME_ENV = "CHATPULSE_HOME"
DATABASE_ENV = "CHATPULSE_DATABASE_URL"
PASSWORD_ENV = "CHATPULSE_SMTP_PASSWORD"
PSEUDONYM_KEY_ENV = "CHATPULSE_PSEUDONYM_KEY"
DEFAULT_CONFIG_FILE = "chatpulse.yaml"
DEFAULT_HOME = ".chatpulse"

LATENCY_UNITS = {"ms": 1.0, "s": 1000.0}
# A row with a longer text value (or CSV field) is quarantined: long enough for any prompt or reply,
# short enough that one runaway field cannot fill the warehouse.
DEFAULT_MAX_FIELD_BYTES = 16 << 20


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a folder such as "America"
        raise problem(f"unknown time zone {name!r}") from exc
    return name


def _http(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("not http(s)")
    return url


def _addresses(recipients: tuple[str, ...]) -> tuple[str, ...]:
    if not recipients or not all("@" in address for address in recipients):
        raise ValueError("not an address")
    return recipients


TimeZone = Annotated[str, AfterValidator(_zone), expect("an IANA time zone name such as UTC or Asia/Shanghai")]
RelativePath = Annotated[Path, expect("a path")]  # to the config file's folder, unless absolute
FieldBytes = Annotated[StrictInt, Field(ge=1), expect("a whole number of bytes, at least 1")]
Seconds = Annotated[Positive, expect("seconds")]


@checked.dataclass(frozen=True)
class FailureRule(YamlSection):
    """Marks a request failed when a column equals a value (for logs without a status)."""

    column: Annotated[str, expect("a canonical column name")]
    equals: Any
    status_code: Annotated[StrictInt, expect("an integer")] = 500
    error_type: str = "failed"


TimeFormat = Literal["iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "seconds_since"]
TimeFallback = Literal["iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "file_time"]


@checked.dataclass(frozen=True)
class Timestamp(YamlSection):
    """How a source writes its timestamps; a bare format name is short for `{format: name}`."""

    format: TimeFormat = "iso"
    origin: Annotated[datetime | None, TEXT_NOT_NUMBER, expect("an ISO date or time")] = None
    timezone: TimeZone = "UTC"  # of timestamps written without an offset
    # Tried in order where `format` cannot read a value: other formats (a log that writes times both
    # ways), and file_time: a record without any time gets its file's modification time.
    fallback: Annotated[tuple[TimeFallback, ...], expect("a list of time formats or file_time")] = ()

    @model_validator(mode="before")
    @classmethod
    def _format_name(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and isinstance(raw.get("fallback"), str):
            raw = {**raw, "fallback": [raw["fallback"]]}
        return {"format": raw} if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _origin_given(self) -> Timestamp:
        if self.format == "seconds_since" and self.origin is None:
            raise problem("required when format is seconds_since", key="origin")
        return self


@checked.dataclass(frozen=True)
class SourceConfig(YamlSection):
    """How one family of landing files, or one database query (`sql`), maps onto a record kind (its default name)."""

    kind: Kind
    name: str
    preset: str | None = None  # filled in before validation (chatpulse.presets)
    pattern: Annotated[str | None, expect("a glob relative to the landing folder")] = None
    # A source column, a path into the record or a derived value (chatpulse.mapping).
    columns: Annotated[dict[str, Column], expect("a mapping of canonical name to source column")] = Field(
        default_factory=dict
    )
    timestamp: Annotated[Timestamp, expect("a format name or a mapping with 'format'")] = Timestamp()
    latency_unit: Literal["ms", "s"] = "ms"
    # How the source's token counts are meant (chatpulse.tokens); stored in the canonical convention.
    token_convention: Convention = "openai"
    failure: Annotated[FailureRule | None, expect("a mapping with 'column' and 'equals'")] = None
    defaults: Annotated[dict[str, Any], expect("a mapping of canonical name to value")] = Field(default_factory=dict)
    layout: Layout = "rows"
    records: Annotated[Records | None, expect("a mapping with path, where, decode or group_by")] = None
    # Canonical columns, or paths of the mapping, that the files need not hold: no warning when none does.
    optional: Annotated[tuple[str, ...], expect("a list of canonical columns or paths")] = ()
    # Record fields never stored: not kept in `metadata`, not read under their own name (message content).
    drop: Annotated[tuple[str, ...], expect("a list of field names")] = ()
    # None: the file's top-level max_field_bytes, else DEFAULT_MAX_FIELD_BYTES (see field_limit).
    max_field_bytes: FieldBytes | None = None
    sql: Annotated[SqlQuery | None, expect("a mapping with url (or url_env) and query")] = None

    @model_validator(mode="after")
    def _files_or_sql(self) -> SourceConfig:
        if self.sql is None and self.pattern is None:
            raise problem("expected a glob relative to the landing folder (or an sql section)", key="pattern")
        if self.sql is not None and self.pattern is not None:
            raise problem("a source reads files (pattern) or a database (sql), not both", key="pattern")
        if self.sql is not None and self.layout != "rows":
            raise problem("a SQL source reads one record per row", key="layout")
        if self.sql is not None and self.records is not None:
            raise problem("a SQL source reads one record per row", key="records")
        if self.records is not None and self.layout == "sessions":
            raise problem("a sessions file holds its records in turns", key="records")
        return self

    @model_validator(mode="before")
    @classmethod
    def _named_after_kind(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            raw = with_preset(raw)
        if isinstance(raw, Mapping) and "name" not in raw:
            return {**raw, "name": str(raw.get("kind", ""))}
        return raw

    @field_validator("columns", "defaults")
    @classmethod
    def _canonical(cls, names: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is wrong, and reported
            return names
        for name in names:
            if name not in COLUMNS[kind]:
                raise problem(f"not a canonical {kind} column ({', '.join(COLUMNS[kind])})", key=name)
            if info.field_name == "columns":
                check_column(name, COLUMNS[kind][name], names[name])
        return names

    @property
    def timestamp_format(self) -> str:
        """How the timestamp column is written: iso, epoch_s, epoch_ms or seconds_since (see Timestamp)."""
        return self.timestamp.format

    @property
    def timestamp_origin(self) -> datetime | None:
        """The instant seconds_since timestamps count from (None for the other formats)."""
        return self.timestamp.origin

    @property
    def naive_timezone(self) -> str:
        """The IANA zone a timestamp without an offset is read in."""
        return self.timestamp.timezone

    @property
    def field_limit(self) -> int:
        """The most UTF-8 bytes one value of this source may hold; a row with a longer one is quarantined."""
        return DEFAULT_MAX_FIELD_BYTES if self.max_field_bytes is None else self.max_field_bytes

    def source_column(self, canonical: str) -> str:
        """The column (or path) of the foreign log that holds a canonical field; for a derived value
        (`column` is a `Derived`), the first path it is computed from."""
        return self.inputs(canonical)[0]

    def column(self, canonical: str) -> str | Derived:
        """How a canonical field is read: a path (a plain column is a path of one key) or a derived value."""
        return self.columns.get(canonical, canonical)

    def inputs(self, canonical: str) -> tuple[str, ...]:
        """The paths a canonical field is read from: one, or those its derived value is computed from."""
        column = self.column(canonical)
        return (column,) if isinstance(column, str) else column.inputs

    @property
    def sql_key(self) -> str:
        """The column of a SQL source's rows that identifies a row: `sql.key`, else the kind's id column."""
        key = None if self.sql is None else self.sql.key
        return key or self.source_column(ID_COLUMN[self.kind])


@checked.dataclass(frozen=True)
class MailSettings:
    """Where and how the daily report is mailed (resolved: the password itself, an absolute ca_file)."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout_s: float = 30.0
    password_env: str = PASSWORD_ENV  # the variable the password was read from, named when it is not set


@checked.dataclass(frozen=True)
class MailSection(YamlSection):
    """The `mail` section as written: the password is never in the file, `password_env` names its variable."""

    host: Annotated[str, expect("a host name")]
    sender: Annotated[str, expect("an e-mail address")]
    recipients: Annotated[tuple[str, ...], AfterValidator(_addresses), expect("a non-empty list of e-mail addresses")]
    port: Annotated[StrictInt, Field(gt=0, lt=65536), expect("a port number")] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: Annotated[str | None, expect("a user name")] = None
    password_env: Annotated[str, expect("a variable name")] = PASSWORD_ENV
    ca_file: RelativePath | None = None
    timeout_s: Seconds = 30.0

    def resolve(self, base: Path, env: Mapping[str, str]) -> MailSettings:
        """The resolved settings: the password from the environment, ca_file relative to `base`."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        ca_file = None if self.ca_file is None else str(_resolve(base, self.ca_file))
        return MailSettings(**values | {"password": env.get(self.password_env), "ca_file": ca_file})


@checked.dataclass(frozen=True)
class WebhookSettings(YamlSection):
    """Where alerts are POSTed, in which payload shape, and how hard to try; a bare URL is short for `{url: ...}`."""

    url: Annotated[str, AfterValidator(_http), expect("an http(s) URL", secret=True)] = Field(repr=False)
    format: Literal["json", "slack"] = "json"
    timeout_s: Seconds = 10.0
    retries: Annotated[StrictInt, Field(ge=0), expect("a whole number")] = 3
    backoff_s: Annotated[NonNegative, expect("seconds")] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _bare_url(cls, raw: Any) -> Any:
        return {"url": raw} if isinstance(raw, str) else raw


@checked.dataclass(frozen=True)
class Settings:
    """The resolved configuration of one ChatPulse installation."""

    data_home: Path
    database_url: str = field(repr=False)
    landing_dir: Path
    reports_dir: Path
    timezone: str = "UTC"
    start_date: date = date(2026, 1, 1)
    session_gap_minutes: float = 30.0
    quarantine_warn_rate: float = 0.05
    schedule_time: time = time(6, 0)
    scenario_rules: Path | None = None
    scenario_model: Path | None = None
    content_retention_days: int = 30
    extract_cache: bool = True
    prices: Path | None = None
    slow_request_seconds: float = 10.0
    sources: tuple[SourceConfig, ...] = ()
    mail: MailSettings | None = None
    alert_rules: Path | None = None
    alert_webhook: WebhookSettings | None = None
    sensor_interval_seconds: int = 60
    # The Dagster instance (chatpulse.pipelines.instance, docs/deploy.md): days run at once, where its storage is.
    concurrent_runs: int = 10
    dagster_storage_url_env: str | None = None
    wait_for_earlier_days_minutes: int = 120
    pseudonymize_users: bool = False
    pseudonymize_storage: bool = False
    pseudonym_key: str | None = field(default=None, repr=False)
    metadata_keys: tuple[str, ...] | None = None
    # Who spends, budgets and the provider's bills (chatpulse/spendconfig.py).
    dimensions: tuple[Dimension, ...] = ()
    top_values: int = 20
    budgets: tuple[Budget, ...] = ()
    provider_bills: tuple[ProviderBill, ...] = ()
    reconciliation_warn_share: float = 0.05

    @property
    def user_pseudonyms(self) -> Pseudonyms | None:
        """The hash user ids are shown under in the report and its e-mail (None: shown as they are)."""
        wanted = self.pseudonymize_users or self.pseudonymize_storage
        return Pseudonyms(self.pseudonym_key) if wanted and self.pseudonym_key else None

    @property
    def storage_pseudonyms(self) -> Pseudonyms | None:
        """The hash user ids are stored under (None: stored as they are)."""
        return Pseudonyms(self.pseudonym_key) if self.pseudonymize_storage and self.pseudonym_key else None

    @property
    def bill_patterns(self) -> tuple[str, ...]:
        """The globs (relative to the landing folder) of the provider's bills: landing files no source reads."""
        return tuple(bill.pattern for bill in self.provider_bills)

    @property
    def dagster_home(self) -> Path:
        return self.data_home / "dagster"

    @property
    def storage_dir(self) -> Path:
        """Where assets hand each other their daily DataFrames (Parquet)."""
        return self.data_home / "storage"


DEFAULT_SOURCES: tuple[SourceConfig, ...] = (
    SourceConfig(name="requests", kind=Kind.REQUESTS, pattern="requests*"),
    SourceConfig(name="messages", kind=Kind.MESSAGES, pattern="messages*"),
    SourceConfig(name="sessions", kind=Kind.MESSAGES, pattern="sessions*", layout="sessions"),
    SourceConfig(name="feedback", kind=Kind.FEEDBACK, pattern="feedback*"),
)


@checked.dataclass(frozen=True)
class ConfigFile(YamlSection):
    """The configuration file as written: paths relative to its folder, defaults that depend on the data home
    left as None. `settings_from_mapping` resolves it into `Settings`."""

    data_home: RelativePath = Path(DEFAULT_HOME)
    database_url: Annotated[str | None, expect("a SQLAlchemy URL", secret=True)] = Field(None, repr=False)
    landing_dir: RelativePath | None = None
    reports_dir: RelativePath | None = None
    timezone: TimeZone = "UTC"
    start_date: Day = date(2026, 1, 1)
    session_gap_minutes: Annotated[Positive, expect("a positive number")] = 30.0
    quarantine_warn_rate: Annotated[StrictFloat, Field(ge=0, le=1), expect("a share between 0 and 1")] = 0.05
    schedule_time: Annotated[time, TEXT_NOT_NUMBER, expect("a time of day HH:MM")] = time(6, 0)
    scenario_rules: RelativePath | None = None
    scenario_model: RelativePath | None = None
    content_retention_days: Annotated[StrictInt, Field(ge=1), expect("a whole number of days, at least 1")] = 30
    extract_cache: Annotated[StrictBool, expect("true or false")] = True
    prices: RelativePath | None = None
    slow_request_seconds: Annotated[Positive, expect("a positive number")] = 10.0
    sources: Annotated[tuple[SourceConfig, ...] | None, expect("a list of source mappings")] = None
    mail: Annotated[MailSection | None, expect("a mapping with host, sender and recipients")] = None
    alert_rules: RelativePath | None = None
    alert_webhook: Annotated[WebhookSettings | None, expect("a URL or a mapping with url", secret=True)] = Field(
        None, repr=False
    )
    sensor_interval_seconds: Annotated[StrictInt, Field(ge=1), expect("a whole number of seconds, at least 1")] = 60
    concurrent_runs: Annotated[StrictInt, Field(ge=1), expect("a whole number of runs, at least 1")] = 10
    dagster_storage_url_env: Annotated[str | None, expect("a variable name")] = None
    wait_for_earlier_days_minutes: Annotated[StrictInt, Field(ge=0), expect("a whole number of minutes")] = 120
    pseudonymize_users: Annotated[StrictBool, expect("true or false")] = False
    pseudonymize_storage: Annotated[StrictBool, expect("true or false")] = False
    pseudonym_key_env: Annotated[str, expect("a variable name")] = PSEUDONYM_KEY_ENV
    metadata_keys: Annotated[tuple[str, ...] | None, expect("a list of metadata keys")] = None
    max_field_bytes: FieldBytes | None = None  # the default of every source that does not set its own
    dimensions: Annotated[tuple[Dimension, ...], expect("a list of dimensions")] = ()
    top_values: TopValues = 20
    budgets: Annotated[tuple[Budget, ...], expect("a list of budgets")] = ()
    provider_bills: Annotated[tuple[ProviderBill, ...], expect("a list of bill mappings with format and pattern")] = ()
    reconciliation_warn_share: Share = 0.05

    @model_validator(mode="after")
    def _spend_references(self) -> ConfigFile:
        check_references(self.dimensions, self.budgets, self.provider_bills, self.metadata_keys)
        return self


def parse_source(raw: Any, key: str) -> SourceConfig:
    """One source from its YAML mapping; ConfigError names the wrong key below `key` (e.g. `sources[1]`)."""
    return validate(SourceConfig, raw, ConfigError, where=key)


def _resolve(base: Path, path: Path | str) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (base / path)


def _with_field_limit(sources: tuple[SourceConfig, ...], limit: int | None) -> tuple[SourceConfig, ...]:
    """Sources with the file's max_field_bytes wherever they do not set their own."""
    if limit is None:
        return sources
    return tuple(s if s.max_field_bytes is not None else replace(s, max_field_bytes=limit) for s in sources)


def settings_from_mapping(raw: Mapping[str, Any], base: Path, env: Mapping[str, str]) -> Settings:
    """Resolve a parsed config mapping; relative paths are taken from `base`.

    $CHATPULSE_HOME and $CHATPULSE_DATABASE_URL in `env` win over the file; the database,
    landing and reports folders default to places under the data home. Raises ConfigError
    naming the key (`sources[1].columns.timestamp: ...`) when a value is wrong.
    """
    file = validate(ConfigFile, raw, ConfigError)
    home = _resolve(base, env.get(HOME_ENV) or file.data_home).resolve()
    files = {
        key: _resolve(base, value)
        for key in ("scenario_rules", "scenario_model", "prices", "alert_rules")
        if (value := getattr(file, key)) is not None
    }
    for number, source in enumerate(file.sources or ()):
        try:
            if source.sql is not None:  # its variables are read when it is: a missing one is said now
                source.sql.connect_url(env)
        except SqlSettingError as exc:
            raise ConfigError(f"sources[{number}].sql.{exc}") from None
    if "prices" in files:
        try:
            read_prices(files["prices"])
        except PriceError as exc:
            raise ConfigError(f"prices: {exc}") from exc
    resolved = {
        "pseudonym_key": _pseudonym_key(file, env),
        "data_home": home,
        "database_url": env.get(DATABASE_ENV) or file.database_url or f"sqlite:///{home / 'warehouse.db'}",
        "landing_dir": _resolve(base, file.landing_dir or home / "landing"),
        "reports_dir": _resolve(base, file.reports_dir or home / "reports"),
        "sources": _with_field_limit(DEFAULT_SOURCES if file.sources is None else file.sources, file.max_field_bytes),
        "mail": None if file.mail is None else file.mail.resolve(base, env),
    }
    # max_field_bytes lives on in the sources; the key's variable name is resolved to the key.
    written = {
        f.name: getattr(file, f.name) for f in fields(file) if f.name not in ("pseudonym_key_env", "max_field_bytes")
    }
    return Settings(**written | files | resolved)


def _pseudonym_key(file: ConfigFile, env: Mapping[str, str]) -> str | None:
    """The pseudonym key from the environment; a missing or short one is a ConfigError when an option needs it."""
    key = env.get(file.pseudonym_key_env) or None
    option = "pseudonymize_storage" if file.pseudonymize_storage else "pseudonymize_users"
    if not (file.pseudonymize_users or file.pseudonymize_storage):
        return key
    if key is None:
        raise ConfigError(f"{option}: needs a secret key in ${file.pseudonym_key_env}, which is not set")
    if len(key) < KEY_MIN_LENGTH:
        raise ConfigError(f"{option}: the key in ${file.pseudonym_key_env} needs at least {KEY_MIN_LENGTH} characters")
    return key


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path`, else $CHATPULSE_CONFIG, else ./chatpulse.yaml, else defaults.

    Raises ConfigError naming the file and the key when the file is unreadable or a value is wrong.
    """
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = DEFAULT_CONFIG_FILE
    if chosen is None:
        return settings_from_mapping({}, Path.cwd(), env)
    config_path = Path(chosen).expanduser()
    raw = read_yaml(config_path, ConfigError, "config file")
    try:
        return settings_from_mapping({} if raw is None else raw, config_path.resolve().parent, env)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
