"""The Dagster instance ChatPulse's runs are recorded and queued in: its home folder and `dagster.yaml`.

`chatpulse run`, `chatpulse demo` and `chatpulse ui` use $DAGSTER_HOME, else `<data_home>/dagster`, and write
its `dagster.yaml` from the configuration: runs queue in the QueuedRunCoordinator, at most `concurrent_runs`
at once and one per day (two runs replacing the same day would race), and with `dagster_storage_url_env`
Dagster's run, event log and schedule storage live in PostgreSQL (dagster-postgres) instead of SQLite files.
A `dagster.yaml` of the user's own (one without the first line written here) is left alone: a deployment
that writes its instance itself (Dagster's Helm chart) sets the same keys there (docs/deploy.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from chatpulse.config import Settings

WRITTEN_BY_US = (
    "# Written by chatpulse from its configuration (concurrent_runs, dagster_storage_url_env), and written again "
    "when they change; delete this line to keep edits of your own."
)
# What versions before concurrent_runs wrote, without the first line: such a file is ours to rewrite.
EARLIER_CONFIG = """\
telemetry:
  enabled: false
concurrency:
  runs:
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""
PARTITION_TAG = "dagster/partition"
# URL schemes of the driver dagster-postgres runs on.
PSYCOPG2_SCHEMES = ("postgresql+psycopg2", "postgres+psycopg2")


def instance_config(settings: Settings) -> dict[str, object]:
    """The `dagster.yaml` of ``settings`` as a mapping.

    The QueuedRunCoordinator launches at most `concurrent_runs` runs at once, and one run per day: the
    landing sensor may request a day again while it runs. With `dagster_storage_url_env`, the storage is
    PostgreSQL at the URL in that variable, read by Dagster when it starts (the file never holds the URL,
    which may carry a password).
    """
    config: dict[str, object] = {"telemetry": {"enabled": False}}
    if settings.dagster_storage_url_env is not None:
        config["storage"] = {"postgres": {"postgres_url": {"env": settings.dagster_storage_url_env}}}
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    config["concurrency"] = {
        "runs": {
            "max_concurrent_runs": settings.concurrent_runs,
            "tag_concurrency_limits": [{"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}],
        }
    }
    return config


def storage_variable_problem(settings: Settings) -> str | None:
    """What is wrong with the variable `dagster_storage_url_env` names, else None: unset in this process, or a
    URL without psycopg2 as its driver (dagster-postgres runs on psycopg2; SQLAlchemy 2 takes a bare
    `postgresql://` for psycopg 3, and Dagster then fails at its first event with `syntax error at or near "$1"`).
    Dagster reads it when it opens the instance and would fail there with a long traceback. The URL's password
    is never said: only its scheme."""
    variable = settings.dagster_storage_url_env
    if variable is None:
        return None
    url = os.environ.get(variable)
    if not url:
        return (
            f"dagster_storage_url_env names {variable}, which is not set: export it (a PostgreSQL URL for Dagster's "
            "storage) or remove the key to keep Dagster's storage in SQLite files"
        )
    scheme = url.partition("://")[0]
    if scheme.lower() not in PSYCOPG2_SCHEMES:
        return (
            f"{variable} starts {scheme}://: Dagster's PostgreSQL storage runs on the psycopg2 driver, "
            "write postgresql+psycopg2://"
        )
    return None


def instance_yaml(settings: Settings) -> str:
    """The text of the `dagster.yaml` ChatPulse writes for ``settings``, its first line saying so."""
    return WRITTEN_BY_US + "\n" + yaml.safe_dump(instance_config(settings), sort_keys=False)


def prepare_dagster_home(settings: Settings) -> Path:
    """Use $DAGSTER_HOME, else <data_home>/dagster (set into the environment), so CLI runs show up in `dagster dev`.

    Writes its `dagster.yaml` (see write_instance). Returns the home folder. Raises OSError when the
    folder or file cannot be written.
    """
    return write_instance(settings)[0]


def write_instance(settings: Settings) -> tuple[Path, str]:
    """prepare_dagster_home's work, and what became of the home's `dagster.yaml`: "written" (there was none,
    or ChatPulse wrote it and the configuration now says otherwise), "unchanged" or "yours" (a file of the
    user's own, kept as it is). Raises OSError when the folder or file cannot be written."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    path, wanted = home / "dagster.yaml", instance_yaml(settings)
    present = path.read_text() if path.exists() else None
    if not (present is None or present == EARLIER_CONFIG or present.startswith(WRITTEN_BY_US)):
        return home, "yours"
    if present == wanted:
        return home, "unchanged"
    path.write_text(wanted)
    return home, "written"


def instance_lines(settings: Settings, home: Path, outcome: str, config_file: str | None) -> list[str]:
    """What `chatpulse instance` prints: `DAGSTER_HOME=<home>` first (a line a shell can export), then what
    the `dagster.yaml` says, or that it is the user's own, and how to start the daemon on it (with
    CHATPULSE_CONFIG naming `config_file`, the `--config` given, by absolute path)."""
    lines = [f"DAGSTER_HOME={home}"]
    if outcome == "yours":
        lines.append(f"{home / 'dagster.yaml'}: your own file, left as it is (its first line is not ChatPulse's)")
    else:
        lines.append(f"{home / 'dagster.yaml'}: {outcome} from the configuration")
        lines.append(f"  days at once: {settings.concurrent_runs} (concurrent_runs), one run per day")
        variable = settings.dagster_storage_url_env
        storage = f"PostgreSQL at ${variable}" if variable is not None else f"SQLite files in {home}"
        lines.append(f"  Dagster's storage: {storage}")
        problem = storage_variable_problem(settings)
        if problem is not None:  # it may be set otherwise where the daemon runs: said, not refused
            lines.append(f"  warning: {problem} where Dagster runs")
    config = f"CHATPULSE_CONFIG={Path(config_file).resolve()} " if config_file is not None else ""
    daemon = Path(sys.executable).with_name("dagster-daemon")  # this environment's: a venv's is not on PATH
    lines.append(f"start: DAGSTER_HOME={home} {config}{daemon} run -m chatpulse.pipelines.definitions")
    return lines
