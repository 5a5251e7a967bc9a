from pathlib import Path

import pytest

from chatpulse.config import ConfigError, load_settings, settings_from_mapping
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
