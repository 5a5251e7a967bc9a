from pathlib import Path

import pytest
from dagster import asset, materialize

from chatpulse.alerting.rules import AlertRuleError
from chatpulse.alerting.rules import load_rules as load_alert_rules
from chatpulse.behaviour.scenario_rules import ScenarioRuleError, load_rules
from chatpulse.config import ConfigError, Settings, load_settings, settings_from_mapping
from chatpulse.pipelines.resources import ChatPulseSettings
from chatpulse.schema import Kind


def test_defaults_live_under_the_data_home(tmp_path: Path) -> None:
    settings = settings_from_mapping({}, tmp_path, {})
    assert settings.data_home == (tmp_path / ".chatpulse").resolve()
    assert settings.database_url == f"sqlite:///{settings.data_home / 'warehouse.db'}"
    assert settings.landing_dir == settings.data_home / "landing"
    assert settings.timezone == "UTC"
    assert [s.kind for s in settings.sources] == [Kind.REQUESTS, Kind.MESSAGES, Kind.MESSAGES, Kind.FEEDBACK]


def test_environment_overrides_home_and_database(tmp_path: Path) -> None:
    env = {"CHATPULSE_HOME": str(tmp_path / "h"), "CHATPULSE_DATABASE_URL": "postgresql+psycopg://x@h/db"}
    settings = settings_from_mapping({"data_home": "ignored"}, tmp_path, env)
    assert settings.data_home == (tmp_path / "h").resolve()
    assert settings.database_url == "postgresql+psycopg://x@h/db"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "chatpulse.yaml"
    config.parent.mkdir()
    config.write_text("data_home: home\nlanding_dir: incoming\ntimezone: Asia/Shanghai\n")
    settings = load_settings(config, env={})
    assert settings.data_home == (tmp_path / "conf" / "home").resolve()
    assert settings.landing_dir == tmp_path / "conf" / "incoming"
    assert settings.timezone == "Asia/Shanghai"


def test_source_mapping_is_parsed(tmp_path: Path) -> None:
    raw = {
        "sources": [
            {
                "kind": "requests",
                "pattern": "*.csv",
                "columns": {"timestamp": "TS", "latency_ms": "Elapsed"},
                "timestamp": {"format": "seconds_since", "origin": "2023-01-01"},
                "latency_unit": "s",
                "failure": {"column": "completion_tokens", "equals": 0},
            }
        ]
    }
    source = settings_from_mapping(raw, tmp_path, {}).sources[0]
    assert source.source_column("timestamp") == "TS"
    assert source.source_column("model") == "model"
    assert source.timestamp_origin.year == 2023
    assert source.failure is not None and source.failure.status_code == 500


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"timezone": "Mars/Base"}, "timezone: unknown time zone 'Mars/Base'"),
        ({"session_gap_minutes": -1}, "session_gap_minutes: expected a positive number"),
        ({"colour": "red"}, "colour: unknown key"),
        (
            {"sources": [{"kind": "logs", "pattern": "*"}]},
            "sources[0].kind: expected one of requests, messages, feedback",
        ),
        ({"sources": [{"kind": "requests"}]}, "sources[0].pattern: expected a glob"),
        (
            {"sources": [{"kind": "requests", "pattern": "*", "columns": {"latency": "x"}}]},
            "sources[0].columns.latency",
        ),
        (
            {"sources": [{"kind": "requests", "pattern": "*", "timestamp": "seconds_since"}]},
            "sources[0].timestamp.origin: required",
        ),
        (
            {"sources": [{"kind": "requests", "pattern": "*", "latency_unit": "min"}]},
            "sources[0].latency_unit: expected one of ms, s",
        ),
        ({"schedule_time": "late"}, "schedule_time: expected a time of day HH:MM"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path: Path, raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        settings_from_mapping(raw, tmp_path, {})


def test_unreadable_or_invalid_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*missing.yaml"):
        load_settings(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_settings(bad, env={})


def test_a_yaml_syntax_error_is_one_line_with_the_file_line_and_column(tmp_path: Path) -> None:
    """The config file and a scenario rules file it names: PyYAML's own text spans five lines and calls the file
    "<unicode string>"."""
    rules = tmp_path / "my_rules.yaml"
    # Line 3 opens a list at its 15th character; line 4's colon, its 10th, cannot be in it.
    rules.write_text("rules:\n  - label: x\n    keywords: [a, b\n  - label: y\n", encoding="utf-8")
    config = tmp_path / "chatpulse.yaml"
    config.write_text("timezone: UTC\nscenario_rules: [my_rules.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={})
    assert str(error.value) == (
        f"{config}: not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence from line 2, column 17)"
    )
    with pytest.raises(ScenarioRuleError) as error:
        load_rules(rules)
    assert str(error.value) == (
        f"{rules}: not valid YAML at line 4, column 10: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence from line 3, column 15)"
    )


def test_a_key_written_twice_is_an_error_at_its_second_line(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys without a word: a second `mail:` further down a long file
    would silently replace the first."""
    config = tmp_path / "chatpulse.yaml"
    config.write_text("timezone: UTC\nmail:\n  host: a\n  host: b\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={})
    assert str(error.value) == f"{config}: not valid YAML at line 4, column 3: duplicate key 'host' (first at line 3)"
    config.write_text("timezone: UTC\nsession_gap_minutes: 30\n\ntimezone: Europe/Paris\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"at line 4, column 1: duplicate key 'timezone' \(first at line 1\)"):
        load_settings(config, env={})


def test_a_merge_key_may_be_overridden_and_errors_inside_it_keep_their_line(tmp_path: Path) -> None:
    """YAML's merge key (`<<: *base`) is how a long file shares settings: a key beside it that overrides one
    of the merged mapping is not a duplicate."""
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        "sources:\n  - &base {kind: requests, pattern: 'a*.jsonl', latency_unit: ms}\n"
        "  - <<: *base\n    pattern: 'b*.jsonl'\n    latency_unit: minutes\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={})
    assert str(error.value).endswith("sources[1].latency_unit: expected one of ms, s, got 'minutes' (line 5)")


def test_an_alert_rule_error_gives_the_line_of_its_key(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: slow\n    metric: latency_p95_ms\n    comparison: '>'\n    threshold: 900\n"
        "  - name: errors\n    metric: error_rate\n    comparison: '>'\n    threshold: high\n",
        encoding="utf-8",
    )
    with pytest.raises(AlertRuleError, match=r"rules\[1\]\.threshold: .* \(line 9\)$"):
        load_alert_rules(rules)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # PyYAML used to raise on the impossible date while parsing, with no key and a long traceback.
        ("start_date: 2026-13-45\n", "start_date: expected a date YYYY-MM-DD, got '2026-13-45' (line 1)"),
        ("start_date: 20260101\n", "start_date: expected a date YYYY-MM-DD, got 20260101 (line 1)"),
        ("schedule_time: '25:00'\n", "schedule_time: expected a time of day HH:MM, got '25:00' (line 1)"),
        ("schedule_time: 7:30\n", "schedule_time: expected a time of day HH:MM, got 450 (line 1)"),  # YAML 1.1: base 60
        ("timezone: America\n", "timezone: unknown time zone 'America' (line 1)"),  # a folder of zones, not a zone
        (
            "sources:\n  - {kind: requests, pattern: '*'}\n"
            "  - {kind: requests, pattern: '*', columns: {timestamp: 5}}\n",
            "sources[1].columns.timestamp: expected a column name, a path or a derived value "
            "(duration, sum, map, first), got 5 (line 3)",
        ),
        (
            "sources:\n  - {kind: requests, pattern: '*', timestamp: {format: iso, zone: UTC}}\n",
            "sources[0].timestamp.zone: unknown key (did you mean 'timezone'? expected one of fallback, format, "
            "origin, timezone) (line 2)",
        ),
        (
            "sources:\n  - {kind: requests, pattern: '*', timestamp: {format: seconds_since, origin: 0}}\n",
            "sources[0].timestamp.origin: expected an ISO date or time, got 0 (line 2)",
        ),
        ("session_gap_minutes: true\n", "session_gap_minutes: expected a positive number, got True (line 1)"),
        ("session_gap_minutes: '30'\n", "session_gap_minutes: expected a positive number, got '30' (line 1)"),
        (
            "content_retention_days: 2.5\n",
            "content_retention_days: expected a whole number of days, at least 1, got 2.5 (line 1)",
        ),
        (
            "mail: {host: h, sender: a@x, recipients: [ops]}\n",
            "mail.recipients: expected a non-empty list of e-mail addresses, got ['ops'] (line 1)",
        ),
        (
            "mail: {host: h, sender: a@x, recipients: [b@x], password: secret}\n",
            "mail.password: unknown key (did you mean 'password_env'? expected one of ca_file, host, password_env, "
            "port, recipients, security, sender, timeout_s, username) (line 1)",
        ),
        ("- a list\n", "expected a mapping, got ['a list']"),
        # A long wrong value (a pasted document, a blob) is quoted cut to 80 characters.
        (
            f"session_gap_minutes: {'9' * 200}x\n",
            f"session_gap_minutes: expected a positive number, got '{'9' * 78}… (line 1)",
        ),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={})
    assert str(error.value) == f"{config}: {message}"


def test_a_misspelt_top_level_key_names_the_one_meant(tmp_path: Path) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text("source: []\n")
    with pytest.raises(
        ConfigError, match=r": source: unknown key \(did you mean 'sources'\? expected one of alert_rules, "
    ):
        load_settings(config, env={})


def test_the_mail_password_comes_from_the_variable_the_file_names(tmp_path: Path) -> None:
    raw = {"mail": {"host": "smtp.example", "sender": "r@example.com", "recipients": ["o@example.com"]}}
    env = {"CHATPULSE_SMTP_PASSWORD": "default-var", "MAIL_PW": "named-var"}
    mail = settings_from_mapping(raw, tmp_path, env).mail
    assert mail is not None
    assert (mail.host, mail.port, mail.security, mail.recipients) == (
        "smtp.example",
        587,
        "starttls",
        ("o@example.com",),
    )
    assert (mail.password, mail.timeout_s, mail.ca_file) == ("default-var", 30.0, None)
    raw["mail"] |= {"password_env": "MAIL_PW", "ca_file": "certs/ca.pem", "port": 465, "security": "ssl"}
    mail = settings_from_mapping(raw, tmp_path, env).mail
    assert mail is not None and (mail.password, mail.ca_file) == ("named-var", str(tmp_path / "certs" / "ca.pem"))
    assert (mail.port, mail.security) == (465, "ssl")
    assert settings_from_mapping(raw, tmp_path, {}).mail.password is None


def test_the_resource_parses_the_file_once_per_run(tmp_path: Path) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text("timezone: Asia/Tokyo\n")
    seen: list[Settings] = []

    @asset
    def first(chatpulse: ChatPulseSettings) -> None:
        seen.append(chatpulse.settings)

    @asset(deps=[first])
    def second(chatpulse: ChatPulseSettings) -> None:
        seen.append(chatpulse.settings)

    resource = ChatPulseSettings(config_file=str(config))
    assert materialize([first, second], resources={"chatpulse": resource}).success
    config.write_text("timezone: Europe/Paris\n")
    assert materialize([first, second], resources={"chatpulse": resource}).success
    assert [s.timezone for s in seen] == ["Asia/Tokyo", "Asia/Tokyo", "Europe/Paris", "Europe/Paris"]
    assert seen[0] is seen[1] and seen[2] is seen[3]  # one parse per run, shared by its assets
