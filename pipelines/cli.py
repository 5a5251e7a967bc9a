"""The `chatpulse` command: demo, generate sample data, run the pipeline for days.

A thin shell over the same Dagster job the UI and the schedule run, so a day run
here shows up in `dagster dev` and is written exactly as a scheduled run would be.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from chatpulse.config import CONFIG_ENV, ConfigError, Settings, load_settings

# One run per day at a time: the landing sensor may request a day again while it is running,
# and two runs replacing the same day would race. Runs of different days still go in parallel.
INSTANCE_CONFIG = """\
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
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a day YYYY-MM-DD, got {text!r}") from exc


def last_days(settings: Settings, count: int) -> list[date]:
    """The `count` complete local days before today, oldest first."""
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return [today - timedelta(days=offset) for offset in range(count, 0, -1)]


def prepare_dagster_home(settings: Settings) -> Path:
    """Use $DAGSTER_HOME, else <data_home>/dagster, so CLI runs show up in `dagster dev`."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(INSTANCE_CONFIG)
    return home


def _use_config(config_file: str | None) -> None:
    """Hand the configuration to the Dagster code this process runs or starts, by absolute path."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(Path(config_file).resolve())


def _ui(settings: Settings, config_file: str | None, port: int) -> None:
    """Become `dagster dev` on the configuration's Dagster home, created with its one-run-per-day limit."""
    _use_config(config_file)
    prepare_dagster_home(settings)
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(dagster, [str(dagster), "dev", "-w", str(WORKSPACE), "-p", str(port)])


def run_days(settings: Settings, days: Sequence[date], config_file: str | None) -> None:
    """Materialize every asset for each day, printing one progress line per day.

    Runs go through `execute_job` on the reconstructable job, as the UI launches
    them: unlike `execute_in_process` it keeps no step outputs in memory, so a big
    day's frames are freed as soon as the next step has read them.
    """
    from dagster import DagsterInstance, execute_job, reconstructable

    from chatpulse.pipelines.definitions import daily_job

    for day in days:
        if day < settings.start_date:
            raise CliError(f"day {day} is before start_date {settings.start_date}: set start_date in the config")
    _use_config(config_file)
    prepare_dagster_home(settings)
    job = reconstructable(daily_job)
    with DagsterInstance.get() as instance:
        for number, day in enumerate(days, start=1):
            started = time.perf_counter()
            tags = {"dagster/partition": day.isoformat()}
            with execute_job(job, instance, run_config=QUIET_LOGS, tags=tags) as result:
                if not result.success:
                    failures = [_root_cause(e.step_failure_data.error) for e in result.get_step_failure_events()]
                    raise CliError(f"run for {day} failed: " + "; ".join(failures or ["see the Dagster run log"]))
            print(f"[{number}/{len(days)}] {day} done in {time.perf_counter() - started:.1f} s", flush=True)


def _root_cause(error: Any) -> str:
    """The innermost error of a Dagster failure: the one that names the file or key."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def report_path(settings: Settings, day: date) -> Path:
    """Where the report of a day was written; its absence means the run wrote none."""
    from chatpulse.reports.render import report_file

    path = report_file(settings.reports_dir, day)
    if not path.is_file():
        raise CliError(f"no report was written at {path}")
    return path


def _generate(settings: Settings, days: Sequence[date], requests_per_day: int | None) -> None:
    from chatpulse.sample.generate import write_sample

    counts = write_sample(settings.landing_dir, list(days), tz=settings.timezone, requests_per_day=requests_per_day)
    summary = ", ".join(f"{counts[key]:,} {key}" for key in ("requests", "messages", "feedback", "sessions"))
    print(f"wrote sample data for {days[0]} .. {days[-1]} to {settings.landing_dir}: {summary}")


def _send_report(settings: Settings, day: date, force: bool) -> None:
    from chatpulse.reports.mail import MailError, deliver
    from chatpulse.warehouse import Warehouse

    if settings.mail is None:
        raise CliError("no mail settings: add a `mail` section to the configuration (see the README)")
    try:
        message_id = deliver(
            day, settings.mail, Warehouse(settings.database_url), report_path(settings, day), force=force
        )
    except MailError as exc:
        raise CliError(str(exc)) from exc
    if message_id is None:
        print(f"the report for {day} was mailed before; use --force to send it again")
    else:
        print(f"sent the report for {day} to {', '.join(settings.mail.recipients)}: {message_id}")


def _convert_oasst(settings: Settings, source: Path, out: Path | None) -> None:
    from chatpulse.ingest.oasst import convert

    if not source.is_file():
        raise CliError(f"cannot read {source}: no such file")
    target = out or settings.landing_dir
    counts = convert(source, target)
    print(
        f"wrote {counts['sessions']:,} sessions "
        f"({counts['trees']:,} trees, {counts['repeated_trees']:,} repeats skipped), "
        f"{counts['messages']:,} messages and {counts['feedback']:,} ratings to {target}"
    )


def _serve_metrics(settings: Settings, host: str, port: int) -> None:
    from chatpulse.alerting.prometheus import server
    from chatpulse.warehouse import Warehouse

    http = server(Warehouse(settings.database_url), host, port)
    print(f"serving http://{host}:{http.server_address[1]}/metrics", flush=True)
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        http.server_close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatpulse", description="Daily analytics of LLM API usage.")
    parser.add_argument("--config", help="YAML configuration (default: $CHATPULSE_CONFIG or ./chatpulse.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write sample data for the last days, run them, print the newest report")
    demo.add_argument("--days", type=int, default=7)
    generate = commands.add_parser("generate", help="write sample data into the landing folder")
    generate.add_argument("--days", type=int, default=7, help="how many days before today (default 7)")
    generate.add_argument("--requests-per-day", type=int, default=None)
    run = commands.add_parser("run", help="run the pipeline for one day or a range of days")
    run.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    run.add_argument("--end", type=_day, help="last day (default: the start day)")
    send = commands.add_parser("send-report", help="mail a day's report (once per day, unless --force)")
    send.add_argument("--date", type=_day, required=True, help="the report's day, YYYY-MM-DD")
    send.add_argument("--force", action="store_true", help="send again even if this day was mailed")
    convert = commands.add_parser(
        "convert-oasst", help="turn oasst2 conversation trees into session and feedback files"
    )
    convert.add_argument("source", type=Path, help="an oasst2 JSONL file of message trees")
    convert.add_argument("--out", type=Path, help="folder to write into (default: the landing folder)")
    serve = commands.add_parser("serve-metrics", help="serve the latest metrics in Prometheus format at /metrics")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=9464)
    ui = commands.add_parser("ui", help="start `dagster dev` (UI, sensors, schedule) on this configuration")
    ui.add_argument("--port", type=int, default=3000)
    for sub in (demo, generate, run, send, convert, serve, ui):
        sub.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "demo":
            days = last_days(settings, args.days)
            _generate(settings, days, None)
            run_days(settings, days, args.config)
            print(f"report: {report_path(settings, days[-1])}")
        elif args.command == "generate":
            _generate(settings, last_days(settings, args.days), args.requests_per_day)
        elif args.command == "convert-oasst":
            _convert_oasst(settings, args.source, args.out)
        elif args.command == "send-report":
            _send_report(settings, args.date, args.force)
        elif args.command == "serve-metrics":
            _serve_metrics(settings, args.host, args.port)
        elif args.command == "ui":
            _ui(settings, args.config, args.port)
        else:
            end = args.end or args.start
            if end < args.start:
                raise CliError(f"--end {end} is before --start {args.start}")
            run_days(
                settings, [args.start + timedelta(days=n) for n in range((end - args.start).days + 1)], args.config
            )
            print(f"report: {report_path(settings, end)}")
    except (ConfigError, CliError) as exc:
        print(f"chatpulse: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
