"""Settings: where data lives, which time zone a day is in, and how sources map.

Everything comes from one optional YAML file plus a few environment variables,
so a user adapts ChatPulse to their logs with configuration, not code. Errors
name the key and what was expected, never a bare traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from chatpulse import checks
from chatpulse.metrics.pricing import PriceError, read_prices
from chatpulse.schema import COLUMNS, Kind

CONFIG_ENV = "CHATPULSE_CONFIG"
HOME_ENV = "CHATPULSE_HOME"
DATABASE_ENV = "CHATPULSE_DATABASE_URL"
DEFAULT_CONFIG_FILE = "chatpulse.yaml"
DEFAULT_HOME = ".chatpulse"

TIMESTAMP_FORMATS = ("iso", "epoch_s", "epoch_ms", "seconds_since")
LATENCY_UNITS = {"ms": 1.0, "s": 1000.0}
LAYOUTS = ("rows", "sessions")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class FailureRule:
    """Marks a request failed when a column equals a value (for logs without a status)."""

    column: str
    equals: Any
    status_code: int = 500
    error_type: str = "failed"


@dataclass(frozen=True)
class SourceConfig:
    """How one family of landing files maps onto a canonical record kind."""

    name: str
    kind: Kind
    pattern: str
    columns: Mapping[str, str] = field(default_factory=dict)
    timestamp_format: str = "iso"
    timestamp_origin: datetime | None = None
    naive_timezone: str = "UTC"
    latency_unit: str = "ms"
    failure: FailureRule | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "rows"

    def source_column(self, canonical: str) -> str:
        """The column of the foreign log that holds a canonical field."""
        return self.columns.get(canonical, canonical)


@dataclass(frozen=True)
class MailSettings:
    """Where and how the daily report is mailed."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout_s: float = 30.0


WEBHOOK_FORMATS = ("json", "slack")


@dataclass(frozen=True)
class WebhookSettings:
    """Where alerts are POSTed, in which payload shape, and how hard to try."""

    url: str
    format: str = "json"
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one ChatPulse installation."""

    data_home: Path
    database_url: str
    landing_dir: Path
    reports_dir: Path
    timezone: str = "UTC"
    start_date: date = date(2026, 1, 1)
    session_gap_minutes: float = 30.0
    quarantine_warn_rate: float = 0.05
    schedule_time: time = time(6, 0)
    scenario_rules: Path | None = None
    content_retention_days: int = 30
    prices: Path | None = None
    slow_request_seconds: float = 10.0
    sources: tuple[SourceConfig, ...] = ()
    mail: MailSettings | None = None
    alert_rules: Path | None = None
    alert_webhook: WebhookSettings | None = None
    sensor_interval_seconds: int = 60

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


_expect = partial(checks.expect, error=ConfigError)
_choice = partial(checks.choice, error=ConfigError)
_known = partial(checks.known_keys, error=ConfigError)
_required = partial(checks.required_keys, error=ConfigError)


def _setting(
    raw: Mapping[str, Any],
    key: str,
    default: float,
    types: type | tuple[type, ...],
    expected: str,
    valid: Callable[[Any], bool],
) -> Any:
    """A top-level number of the configuration, its default when absent."""
    return _expect(raw.get(key, default), types, key, expected, valid=valid)


def _share(rate: float) -> bool:
    return 0 <= rate <= 1


def _timezone(value: Any, key: str) -> str:
    _expect(value, str, key, "an IANA time zone name such as UTC or Asia/Shanghai")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{key}: unknown time zone {value!r}") from exc
    return value


def _parse_date(value: Any, key: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key}: expected a date YYYY-MM-DD, got {value!r}") from exc


def _parse_time(value: Any, key: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key}: expected a time of day HH:MM, got {value!r}") from exc


def _parse_origin(value: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key}: expected an ISO date or time, got {value!r}") from exc


def _parse_failure(raw: Any, key: str) -> FailureRule:
    _expect(raw, dict, key, "a mapping with 'column' and 'equals'")
    _required(raw, ("column", "equals"), key)
    return FailureRule(
        column=_expect(raw["column"], str, f"{key}.column", "a canonical column name"),
        equals=raw["equals"],
        status_code=_expect(raw.get("status_code", 500), int, f"{key}.status_code", "an integer"),
        error_type=_expect(raw.get("error_type", "failed"), str, f"{key}.error_type", "a string"),
    )


def parse_source(raw: Any, key: str) -> SourceConfig:
    """Build one source from its YAML mapping, checking every key."""
    _expect(raw, dict, key, "a mapping")
    known = ("name", "kind", "pattern", "columns", "timestamp", "latency_unit", "failure", "defaults", "layout")
    _known(raw, known, key)
    kind = Kind(_choice(raw.get("kind"), tuple(k.value for k in Kind), f"{key}.kind"))
    canonical = COLUMNS[kind]
    columns = _expect(raw.get("columns", {}), dict, f"{key}.columns", "a mapping of canonical name to source column")
    for name in columns:
        if name not in canonical:
            raise ConfigError(f"{key}.columns.{name}: not a canonical {kind} column ({', '.join(canonical)})")
    defaults = _expect(raw.get("defaults", {}), dict, f"{key}.defaults", "a mapping of canonical name to value")
    for name in defaults:
        if name not in canonical:
            raise ConfigError(f"{key}.defaults.{name}: not a canonical {kind} column")
    ts = raw.get("timestamp", {})
    if isinstance(ts, str):
        ts = {"format": ts}
    _expect(ts, dict, f"{key}.timestamp", "a format name or a mapping with 'format'")
    ts_format = _choice(ts.get("format", "iso"), TIMESTAMP_FORMATS, f"{key}.timestamp.format")
    origin = ts.get("origin")
    if ts_format == "seconds_since" and origin is None:
        raise ConfigError(f"{key}.timestamp.origin: required when format is seconds_since")
    return SourceConfig(
        name=_expect(raw.get("name", kind.value), str, f"{key}.name", "a string"),
        kind=kind,
        pattern=_expect(raw.get("pattern"), str, f"{key}.pattern", "a glob relative to the landing folder"),
        columns=columns,
        timestamp_format=ts_format,
        timestamp_origin=None if origin is None else _parse_origin(origin, f"{key}.timestamp.origin"),
        naive_timezone=_timezone(ts.get("timezone", "UTC"), f"{key}.timestamp.timezone"),
        latency_unit=_choice(raw.get("latency_unit", "ms"), LATENCY_UNITS, f"{key}.latency_unit"),
        failure=None if raw.get("failure") is None else _parse_failure(raw["failure"], f"{key}.failure"),
        defaults=defaults,
        layout=_choice(raw.get("layout", "rows"), LAYOUTS, f"{key}.layout"),
    )


MAIL_SECURITY = ("starttls", "ssl", "none")
PASSWORD_ENV = "CHATPULSE_SMTP_PASSWORD"


def parse_mail(raw: Any, base: Path, env: Mapping[str, str]) -> MailSettings:
    """The `mail` section; the password comes from the environment variable it names."""
    key = "mail"
    _expect(raw, dict, key, "a mapping with host, sender and recipients")
    known = ("host", "port", "security", "username", "password_env", "sender", "recipients", "ca_file", "timeout_s")
    _known(raw, known, key)
    _required(raw, ("host", "sender", "recipients"), key)
    recipients = raw["recipients"]
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and "@" in r for r in recipients)
    ):
        raise ConfigError(f"{key}.recipients: expected a non-empty list of e-mail addresses, got {recipients!r}")
    password_env = _expect(raw.get("password_env", PASSWORD_ENV), str, f"{key}.password_env", "a variable name")
    ca_file = raw.get("ca_file")
    return MailSettings(
        host=_expect(raw["host"], str, f"{key}.host", "a host name"),
        sender=_expect(raw["sender"], str, f"{key}.sender", "an e-mail address"),
        recipients=tuple(recipients),
        port=_expect(raw.get("port", 587), int, f"{key}.port", "a port number", valid=lambda p: 0 < p < 65536),
        security=_choice(raw.get("security", "starttls"), MAIL_SECURITY, f"{key}.security"),
        username=_expect(raw.get("username"), (str, type(None)), f"{key}.username", "a user name"),
        password=env.get(password_env),
        ca_file=None if ca_file is None else str(_resolve(base, ca_file, f"{key}.ca_file")),
        timeout_s=float(
            _expect(raw.get("timeout_s", 30), (int, float), f"{key}.timeout_s", "seconds", valid=checks.positive)
        ),
    )


def parse_webhook(raw: Any) -> WebhookSettings:
    """The `alert_webhook` section: a URL, or a mapping with url, format, timeout_s, retries, backoff_s."""
    key = "alert_webhook"
    if isinstance(raw, str):
        raw = {"url": raw}
    _expect(raw, dict, key, "a URL or a mapping with url")
    _known(raw, ("url", "format", "timeout_s", "retries", "backoff_s"), key)
    http = ("http://", "https://")
    return WebhookSettings(
        url=_expect(raw.get("url"), str, f"{key}.url", "an http(s) URL", valid=lambda url: url.startswith(http)),
        format=_choice(raw.get("format", "json"), WEBHOOK_FORMATS, f"{key}.format"),
        timeout_s=float(
            _expect(raw.get("timeout_s", 10), (int, float), f"{key}.timeout_s", "seconds", valid=checks.positive)
        ),
        retries=_expect(raw.get("retries", 3), int, f"{key}.retries", "a whole number", valid=checks.non_negative),
        backoff_s=float(
            _expect(raw.get("backoff_s", 1), (int, float), f"{key}.backoff_s", "seconds", valid=checks.non_negative)
        ),
    )


def _resolve(base: Path, value: Any, key: str) -> Path:
    path = Path(_expect(value, (str, Path), key, "a path")).expanduser()
    return path if path.is_absolute() else (base / path)


def settings_from_mapping(raw: Mapping[str, Any], base: Path, env: Mapping[str, str]) -> Settings:
    """Resolve a parsed config mapping; relative paths are taken from `base`."""
    known = {
        "data_home",
        "database_url",
        "landing_dir",
        "reports_dir",
        "timezone",
        "start_date",
        "session_gap_minutes",
        "quarantine_warn_rate",
        "schedule_time",
        "scenario_rules",
        "sources",
        "mail",
        "prices",
        "alert_rules",
        "alert_webhook",
        "sensor_interval_seconds",
        "slow_request_seconds",
        "content_retention_days",
    }
    _known(raw, known, "")
    home = _resolve(base, env.get(HOME_ENV) or raw.get("data_home", DEFAULT_HOME), "data_home").resolve()
    database_url = env.get(DATABASE_ENV) or raw.get("database_url") or f"sqlite:///{home / 'warehouse.db'}"
    gap = _setting(raw, "session_gap_minutes", 30, (int, float), "a positive number", checks.positive)
    warn_rate = _setting(raw, "quarantine_warn_rate", 0.05, (int, float), "a share between 0 and 1", _share)
    sources_raw = raw.get("sources")
    if sources_raw is None:
        sources = DEFAULT_SOURCES
    else:
        _expect(sources_raw, list, "sources", "a list of source mappings")
        sources = tuple(parse_source(item, f"sources[{i}]") for i, item in enumerate(sources_raw))
    rules = raw.get("scenario_rules")
    retention = _setting(raw, "content_retention_days", 30, int, "a whole number of days, at least 1", checks.positive)
    prices = None if raw.get("prices") is None else _resolve(base, raw["prices"], "prices")
    interval = _setting(
        raw, "sensor_interval_seconds", 60, int, "a whole number of seconds, at least 1", checks.positive
    )
    if prices is not None:
        try:
            read_prices(prices)
        except PriceError as exc:
            raise ConfigError(f"prices: {exc}") from exc
    slow = _setting(raw, "slow_request_seconds", 10, (int, float), "a positive number", checks.positive)
    return Settings(
        data_home=home,
        database_url=_expect(database_url, str, "database_url", "a SQLAlchemy URL"),
        landing_dir=_resolve(base, raw.get("landing_dir", home / "landing"), "landing_dir"),
        reports_dir=_resolve(base, raw.get("reports_dir", home / "reports"), "reports_dir"),
        timezone=_timezone(raw.get("timezone", "UTC"), "timezone"),
        start_date=_parse_date(raw.get("start_date", "2026-01-01"), "start_date"),
        session_gap_minutes=float(gap),
        quarantine_warn_rate=float(warn_rate),
        schedule_time=_parse_time(raw.get("schedule_time", "06:00"), "schedule_time"),
        scenario_rules=None if rules is None else _resolve(base, rules, "scenario_rules"),
        content_retention_days=retention,
        prices=prices,
        alert_rules=None if raw.get("alert_rules") is None else _resolve(base, raw["alert_rules"], "alert_rules"),
        alert_webhook=None if raw.get("alert_webhook") is None else parse_webhook(raw["alert_webhook"]),
        sensor_interval_seconds=interval,
        slow_request_seconds=float(slow),
        sources=sources,
        mail=None if raw.get("mail") is None else parse_mail(raw["mail"], base, env),
    )


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path`, else $CHATPULSE_CONFIG, else ./chatpulse.yaml, else defaults."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = DEFAULT_CONFIG_FILE
    if chosen is None:
        return settings_from_mapping({}, Path.cwd(), env)
    config_path = Path(chosen).expanduser()
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping at the top level")
    try:
        return settings_from_mapping(raw, config_path.resolve().parent, env)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
