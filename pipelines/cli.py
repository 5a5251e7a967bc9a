"""The `chatpulse` command: demo, generate sample data, run the pipeline for days.

A thin shell over the same Dagster job the UI and the schedule run, so a day run
here shows up in `dagster dev` and is written exactly as a scheduled run would be.
Every error the user can fix (a bad option, a configuration error, a failed run) is
one `chatpulse: error: ...` line on stderr and exit status 2.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from chatpulse.config import CONFIG_ENV, ConfigError, Settings, load_settings
from chatpulse.days import DayOutOfRange, DaySpan
from chatpulse.ingest.check import DEFAULT_ROWS
from chatpulse.pipelines.cli_errors import CliError, run_error
from chatpulse.pipelines.demo import DEMO_DAYS, own_config, planted_rows, ui_config, unsynced_sqlite
from chatpulse.pipelines.instance import instance_lines, prepare_dagster_home, storage_variable_problem, write_instance
from chatpulse.pipelines.preflight import check_rule_files, mail_failure
from chatpulse.pipelines.scenarios_cli import scenarios

# The installed module, not workspace.yaml: a wheel install has no repository around it.
DEFINITIONS_MODULE = "chatpulse.pipelines.definitions"
# `chatpulse check` found mapping mistakes: distinct from 1 (a crash) and 2 (an error the user can fix).
WARNINGS_EXIT = 3
# Warnings (quarantined rows, mapping mistakes) on stderr; a failed step's error is the one line run_days prints.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING", "errors": False}}}}


class Day(click.ParamType):
    """A day written YYYY-MM-DD, converted to a `date`."""

    name = "day"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"expected a day YYYY-MM-DD, got {value!r}", param, ctx)


def _one_line(error: click.UsageError) -> CliError:
    """click's usage error (usage, hint, message on three lines) as one line naming where help is."""
    where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return CliError(error.format_message() + where)


class _Commands(click.Group):
    """The sub-commands, with usage and configuration errors reported as one line (CliError)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a bare `chatpulse` prints the help
        except click.UsageError as exc:
            raise _one_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a sub-command's options are parsed in here
            raise _one_line(exc) from exc
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        except RuntimeError as exc:  # a warehouse that cannot be opened (its message hides the password)
            warehouse = sys.modules.get("chatpulse.warehouse")  # looked up: most commands never import it
            if warehouse is not None and isinstance(exc, warehouse.WarehouseError):
                raise CliError(str(exc)) from exc
            raise


@dataclass
class Invocation:
    """What the group's options chose, for the sub-command: the configuration file, if one was named."""

    config_file: str | None

    def settings(self) -> Settings:
        """The loaded configuration; raises ConfigError naming the bad key."""
        return load_settings(self.config_file)


@click.group(
    name="chatpulse",
    cls=_Commands,
    context_settings={"show_default": True, "help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar=CONFIG_ENV,
    show_envvar=True,
    show_default="./chatpulse.yaml if it exists, else built-in defaults",
    help="YAML configuration file.",
)
@click.version_option(package_name="chatpulse", prog_name="chatpulse")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Daily analytics of LLM API usage."""
    ctx.obj = Invocation(config_file)


def _config_after_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(Invocation).config_file = value


def _subcommand(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """Register `function` as `chatpulse NAME`, called with the Invocation first.

    Each sub-command also takes a hidden `--config` after its name (`chatpulse run --config
    FILE ...`), as the command always has; the documented place is before the name.
    """

    def register(function: Callable[..., None]) -> click.Command:
        late_config = click.option(
            "--config", type=click.Path(dir_okay=False), hidden=True, expose_value=False, callback=_config_after_command
        )
        return cli.command(name)(late_config(click.pass_obj(function)))

    return register


def last_days(settings: Settings, count: int) -> list[date]:
    """The `count` complete local days before today, oldest first."""
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return [today - timedelta(days=offset) for offset in range(count, 0, -1)]


def _use_config(config_file: str | None) -> None:
    """Hand the configuration to the Dagster code this process runs or starts, by absolute path."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(Path(config_file).resolve())


def _check_storage_variable(settings: Settings) -> None:
    """CliError when Dagster's storage variable is unset or not a psycopg2 URL (storage_variable_problem), before
    Dagster opens it."""
    problem = storage_variable_problem(settings)
    if problem is not None:
        raise CliError(problem)


def run_days(settings: Settings, days: Sequence[date], config_file: str | None) -> None:
    """Materialize every asset for each day, printing one progress line per day.

    Runs go through `execute_job` on the reconstructable job, as the UI launches
    them: unlike `execute_in_process` it keeps no step outputs in memory, so a big
    day's frames are freed as soon as the next step has read them. Raises CliError
    for a day that is no partition (before `start_date` or after today, naming the
    days that can be run), a wrong scenario rules or model file or alert rules file (check_rule_files), a Dagster
    storage variable unset or not a psycopg2 URL (storage_variable_problem) or a failed run (naming its error, see
    run_error).
    """
    from dagster import DagsterInstance, execute_job, reconstructable

    from chatpulse.pipelines.definitions import daily_job
    from chatpulse.processes import runner_tags

    span = DaySpan.through_today(settings.start_date, settings.timezone)
    for day in days:
        try:
            span.check(day)
        except DayOutOfRange as exc:
            raise CliError(str(exc)) from exc
    check_rule_files(settings)
    _use_config(config_file)
    _check_storage_variable(settings)
    prepare_dagster_home(settings)
    job = reconstructable(daily_job)
    # Dagster keeps the last job it reconstructed in this process (both methods are lru_caches), with the
    # resources of the configuration it was built for: a second run here (tests through CliRunner) with
    # another configuration would write to the first one's warehouse.
    type(job).get_repository_definition.cache_clear()
    type(job).get_definition.cache_clear()
    with DagsterInstance.get() as instance:
        for number, day in enumerate(days, start=1):
            started = time.perf_counter()
            tags = {"dagster/partition": day.isoformat(), **runner_tags()}
            with execute_job(job, instance, run_config=QUIET_LOGS, tags=tags) as result:
                if not result.success:
                    failures = dict.fromkeys(
                        run_error(e.step_failure_data.error) for e in result.get_step_failure_events()
                    )
                    said = "; ".join(failures or ["see the Dagster run log"])
                    raise CliError(f"run for {day} failed: {said}" + mail_failure(settings, result.run_id, day, said))
            click.echo(f"[{number}/{len(days)}] {day} done in {time.perf_counter() - started:.1f} s")


def report_path(settings: Settings, day: date) -> Path:
    """Where the report of a day was written; raises CliError when the run wrote none."""
    from chatpulse.reports.render import report_file

    path = report_file(settings.reports_dir, day)
    if not path.is_file():
        raise CliError(f"no report was written at {path}")
    return path


@_subcommand("demo")
@click.option("--days", type=click.IntRange(min=1), default=DEMO_DAYS, help="How many days before today.")
def demo(invocation: Invocation, days: int) -> None:
    """Generate sample days, run them, print the newest report.

    The sample covers the DAYS complete days before today, written to the landing folder; the
    newest has an incident, so its report opens with the alerts it fired. Without a configuration
    of your own, the demo runs on <data_home>/demo.yaml: the sample's teams, projects, budgets and
    bill (chatpulse/sample/demo.yaml).
    """
    config_file = _demo_config(invocation)
    settings = load_settings(config_file)
    chosen = last_days(settings, days)
    click.echo(planted_rows(_generate(settings, chosen, None, incident_day=chosen[-1])))
    with unsynced_sqlite():
        run_days(settings, chosen, config_file)
    click.echo(f"report: {report_path(settings, chosen[-1])}")


def _demo_config(invocation: Invocation) -> str | None:
    """The configuration the demo runs on: the one named or found, else the demo's, written into the data home."""
    if own_config(invocation.config_file):
        return invocation.config_file
    from chatpulse.sample.demo import write_demo_config

    return str(write_demo_config(invocation.settings().data_home))


@_subcommand("generate")
@click.option("--days", type=click.IntRange(min=1), default=7, help="How many days before today.")
@click.option(
    "--requests-per-day",
    type=int,
    default=None,
    show_default="about 3000 on weekdays, fewer at weekends",
    help="Exact number of valid requests per day.",
)
def generate(invocation: Invocation, days: int, requests_per_day: int | None) -> None:
    """Write sample data into the landing folder."""
    settings = invocation.settings()
    _generate(settings, last_days(settings, days), requests_per_day)


def _generate(
    settings: Settings, days: Sequence[date], requests_per_day: int | None, incident_day: date | None = None
) -> dict[str, int]:
    """Write the sample for ``days``; an ``incident_day`` given (the demo's) gets a weekday's traffic."""
    from chatpulse.sample.generate import write_sample
    from chatpulse.sample.traffic import SampleSizeError

    try:
        counts = write_sample(
            settings.landing_dir,
            list(days),
            tz=settings.timezone,
            requests_per_day=requests_per_day,
            incident_day=incident_day,
            busy_incident=incident_day is not None,
        )
    except SampleSizeError as exc:
        raise CliError(str(exc)) from exc
    summary = ", ".join(f"{counts[key]:,} {key}" for key in ("requests", "messages", "feedback", "sessions"))
    click.echo(f"wrote sample data for {days[0]} .. {days[-1]} to {settings.landing_dir}: {summary}")
    return counts


@_subcommand("run")
@click.option("--start", type=Day(), required=True, help="First day.")
@click.option("--end", type=Day(), default=None, show_default="the start day", help="Last day.")
def run(invocation: Invocation, start: date, end: date | None) -> None:
    """Run the pipeline for one day or a range of days."""
    settings = invocation.settings()
    end = end or start
    if end < start:
        raise CliError(f"--end {end} is before --start {start}")
    run_days(settings, [start + timedelta(days=n) for n in range((end - start).days + 1)], invocation.config_file)
    click.echo(f"report: {report_path(settings, end)}")


@_subcommand("check")
@click.option(
    "--rows",
    type=click.IntRange(min=0),
    default=DEFAULT_ROWS,
    help="Rows read from the start of each file, or of each SQL source's query (0: every row).",
)
@click.option(
    "--date", "day", type=Day(), default=None, show_default="yesterday", help="The day a SQL source's query is run for."
)
def check(invocation: Invocation, rows: int, day: date | None) -> None:
    """Check the sources against the landing folder (and their databases) before a run.

    Per source: the files it reads (or the rows its query gives for --date), the days their first
    rows fall on, and each mapped column's fill with a parsed (masked) example. Warns about columns
    found in no file, patterns that match nothing, files no source reads, timestamp options that do
    nothing and databases that cannot be read; exit status 3 when it warns, 0 when it does not. A wrong
    scenario rules or model file is an error, as it would fail the run.
    """
    from chatpulse.ingest.check_report import check_landing

    settings = invocation.settings()
    check_rule_files(settings)
    result = check_landing(settings, rows, datetime.now(ZoneInfo(settings.timezone)).date(), day)
    for line in result.lines:
        click.echo(line)
    if result.findings:
        click.get_current_context().exit(WARNINGS_EXIT)


@_subcommand("send-report")
@click.option("--date", "day", type=Day(), required=True, help="The report's day.")
@click.option("--force", is_flag=True, help="Send again even if this day was mailed.")
def send_report(invocation: Invocation, day: date, force: bool) -> None:
    """Mail a day's report (once per day, unless --force)."""
    from chatpulse.mail import MailError
    from chatpulse.reports.mail import deliver
    from chatpulse.warehouse import Warehouse, WarehouseError

    settings = invocation.settings()
    if settings.mail is None:
        raise CliError("no mail settings: add a `mail` section to the configuration (see the README)")
    try:
        message_id = deliver(
            day, settings.mail, Warehouse(settings.database_url), report_path(settings, day), force=force
        )
    except (MailError, WarehouseError) as exc:  # their messages hide passwords
        raise CliError(str(exc)) from None
    if message_id is None:
        click.echo(f"the report for {day} was mailed before; use --force to send it again")
    else:
        click.echo(f"sent the report for {day} to {', '.join(settings.mail.recipients)}: {message_id}")


@_subcommand("status")
@click.option("--days", type=click.IntRange(min=1), default=7, help="How many days, ending today.")
@click.option("--start", type=Day(), default=None, help="First day (instead of --days), e.g. of a backfill.")
@click.option("--end", type=Day(), default=None, show_default="today", help="Last day, with --start.")
def status(invocation: Invocation, days: int, start: date | None, end: date | None) -> None:
    """Print each day's state: complete, or incomplete with its stale steps.

    A day is complete when every step that writes its tables and report ran after the steps it
    reads; a run killed between two steps leaves it incomplete until the day is run again. Each
    day names the last run that wrote it and when it finished (local time); an incomplete day
    lists its stale steps, one a line, each with why; with mail configured, a past day whose report was
    not mailed says so.
    """
    from chatpulse.daystate import TABLE, day_states, describe
    from chatpulse.warehouse import Warehouse

    settings = invocation.settings()
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    if start is None and end is not None:
        raise CliError("--end needs --start")
    last = end or today
    first = start or today - timedelta(days=days - 1)
    if last < first:
        raise CliError(f"--end {last} is before --start {first}")
    chosen = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    chosen = [day.isoformat() for day in chosen if day >= settings.start_date]
    if not chosen:
        raise CliError(f"no day to show: start_date {settings.start_date} is after {last}")
    store = Warehouse(settings.database_url)
    states = day_states(store.read_days(TABLE, chosen[0], chosen[-1]))
    with_tables = set(store.read_days("daily_metrics", chosen[0], chosen[-1])["day"])
    # A run whose mail failed still wrote the whole day: said here, or nothing would show the report unsent.
    mailed = set(store.read_days("report_sends", chosen[0], chosen[-1])["day"]) if settings.mail else set(chosen)
    for day in chosen:
        for line in describe(day, states.get(day), day in with_tables, settings.timezone):
            click.echo(line)
        if day in with_tables and day < today.isoformat() and day not in mailed:
            click.echo(f"            report not mailed: chatpulse send-report --date {day}")
    incomplete = [day for day in chosen if day in states and states[day].stale]
    if incomplete:
        again = f"--start {incomplete[0]}" + (f" --end {incomplete[-1]}" if len(incomplete) > 1 else "")
        click.echo(f"{len(incomplete)} incomplete: run again with chatpulse run {again}")


@_subcommand("convert-oasst")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="the landing folder",
    help="Folder to write into.",
)
def convert_oasst(invocation: Invocation, source: Path, out: Path | None) -> None:
    """Convert oasst2 trees into session and feedback files.

    SOURCE is an oasst2 JSONL file of message trees.
    """
    from chatpulse.ingest.oasst import convert

    target = out or invocation.settings().landing_dir
    counts = convert(source, target)
    click.echo(
        f"wrote {counts['sessions']:,} sessions "
        f"({counts['trees']:,} trees, {counts['repeated_trees']:,} repeats skipped), "
        f"{counts['messages']:,} messages and {counts['feedback']:,} ratings to {target}"
    )


@_subcommand("serve-metrics")
@click.option("--host", default="127.0.0.1", help="Address to listen on (loopback only unless changed).")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, help="Port to listen on (0: any free one).")
def serve_metrics(invocation: Invocation, host: str, port: int) -> None:
    """Serve the latest metrics in Prometheus format at /metrics."""
    from chatpulse.alerting.prometheus import server
    from chatpulse.warehouse import Warehouse, WarehouseError

    settings = invocation.settings()
    try:
        warehouse = Warehouse(settings.database_url)
    except WarehouseError as exc:
        raise CliError(str(exc)) from None
    try:
        http = server(warehouse, host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    click.echo(f"serving http://{host}:{http.server_address[1]}/metrics")
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how it is meant to stop
    finally:
        http.server_close()


@_subcommand("instance")
def instance(invocation: Invocation) -> None:
    """Write the Dagster home's dagster.yaml from the configuration and print where it is.

    The home is $DAGSTER_HOME, else <data_home>/dagster; the file says how many days run at once
    (concurrent_runs) and where Dagster's storage is (dagster_storage_url_env). Start dagster-daemon
    and dagster-webserver on that home (docs/deploy.md). A dagster.yaml of your own is left as it is.
    """
    settings = invocation.settings()
    click.echo("\n".join(instance_lines(settings, *write_instance(settings), invocation.config_file)))


@_subcommand("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, help="Port of the Dagster UI.")
def ui(invocation: Invocation, port: int) -> None:
    """Start `dagster dev` on this configuration.

    The UI, the sensors and the schedule, on the configuration's Dagster home (created
    with its one-run-per-day limit). Ctrl-C or SIGTERM stops it with all its processes. Without a
    configuration of your own, after `chatpulse demo`, on the demo's (<data_home>/demo.yaml): a day run
    from the UI then keeps the demo's teams, budgets and bill.
    """
    from chatpulse.pipelines.child import run_group

    config_file = ui_config(invocation.config_file, invocation.settings().data_home)
    if config_file != invocation.config_file:
        click.echo(f"no configuration of your own: on the demo's, {config_file}")
    settings = load_settings(config_file)
    _use_config(config_file)
    _check_storage_variable(settings)
    prepare_dagster_home(settings)
    dagster = Path(sys.executable).with_name("dagster")
    code = run_group([str(dagster), "dev", "-m", DEFINITIONS_MODULE, "-p", str(port)])
    if code:
        click.get_current_context().exit(code)


cli.add_command(scenarios)


def main(argv: Sequence[str] | None = None) -> None:
    """Run `chatpulse` on `argv` (default: the process's arguments) and exit with its status."""
    try:
        cli.main(args=argv, prog_name="chatpulse")
    finally:
        # The process ends here. The interpreter's collections at exit would go once more over every object a run
        # made (~400,000: Dagster, pandas, matplotlib), 1.35 s of CPU after a 100-row day's 8 s; frozen, they are
        # left to the operating system with the rest of the process's memory. Files and databases are closed.
        gc.freeze()


if __name__ == "__main__":
    main()
