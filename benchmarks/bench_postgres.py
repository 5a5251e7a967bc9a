"""Benchmark: one day of a million requests on a PostgreSQL warehouse against the same day on SQLite.

Both runs read the same landing files with a fresh data home each; the PostgreSQL run writes to
a database of its own on the server, dropped at the end. The ratio of the two wall times is the
figure (issue 14: at most 1.3); absolute times on a shared machine move with its load, so the
runs alternate and each side reports its best of `--repeat`. After each PostgreSQL run every table
is compared with the SQLite run's by its row count, so both did the same work. Without a server
answering it prints why and a JSON line with `skipped`. The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_postgres.py [--rows N] [--repeat N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from bench import DEFAULT_ROWS, log, run_pipeline, write_config

from chatpulse.sample.generate import write_sample
from chatpulse.tables import TABLES

# The server the tests use (trust authentication); its `test` database is only used to create ours.
LOCAL_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _admin(server: str) -> sa.Engine | str:
    """An autocommit engine on `server`, or why none answers (the password hidden)."""
    shown = sa.make_url(server).render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    except ImportError as exc:
        return f"no driver for {shown}: {exc}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        said = " ".join(str(getattr(exc, "orig", None) or exc).split())
        password = sa.make_url(server).password
        return f"no PostgreSQL server answers at {shown}: {said.replace(str(password), '***') if password else said}"
    return engine


def _row_counts(url: str) -> dict[str, int]:
    """Rows per warehouse table."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in TABLES.items()
            }
    finally:
        engine.dispose()


def _step_seconds(home: Path) -> dict[str, float]:
    """Each Dagster step's wall time (s) in the one run of the data home's instance."""
    from dagster import DagsterInstance  # the pipeline's own import; only needed after a run

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run,) = instance.get_runs(limit=1)
        return {
            step.step_key: step.end_time - step.start_time
            for step in instance.get_run_step_stats(run.run_id)
            if step.start_time is not None and step.end_time is not None
        }


def _log_steps(steps: dict[str, dict[str, float]], shown: int = 8) -> None:
    """The steps where PostgreSQL's run spent most beyond SQLite's, with both times."""
    both = set(steps["sqlite"]) & set(steps["postgres"])
    gaps = sorted(both, key=lambda step: steps["sqlite"][step] - steps["postgres"][step])[:shown]
    for step in gaps:
        sqlite_s, postgres_s = steps["sqlite"][step], steps["postgres"][step]
        log(f"  {step:<28} SQLite {sqlite_s:6.1f} s  PostgreSQL {postgres_s:6.1f} s  ({postgres_s - sqlite_s:+.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"requests in the day ({DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=1, help="runs on each warehouse; the best of each counts (1)")
    parser.add_argument("--postgres", default=LOCAL_SERVER, help=f"a database on the server to use ({LOCAL_SERVER})")
    args = parser.parse_args()
    day = datetime.now(UTC).date() - timedelta(days=1)

    admin = _admin(args.postgres)
    if isinstance(admin, str):
        log(f"skipped: {admin}")
        print(json.dumps({"rows": args.rows, "skipped": admin}))
        return

    times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    with tempfile.TemporaryDirectory(prefix="chatpulse-bench-pg-") as tmp:
        landing = Path(tmp) / "landing"
        log(f"generating {args.rows:,} requests for {day} in {landing}")
        started = time.perf_counter()
        counts = write_sample(landing, [day], requests_per_day=args.rows)
        log(
            f"generated in {time.perf_counter() - started:.1f} s: {counts['request_lines']:,} request lines, "
            f"{counts['message_lines']:,} message lines"
        )
        for attempt in range(args.repeat):
            # Alternate which goes first, so a change in the machine's load falls on both sides.
            order = ("sqlite", "postgres") if attempt % 2 == 0 else ("postgres", "sqlite")
            urls: dict[str, str] = {}
            steps: dict[str, dict[str, float]] = {}
            for warehouse in order:
                home = Path(tmp) / f"{warehouse}-{attempt}"
                home.mkdir()
                if warehouse == "postgres":
                    database = f"chatpulse_bench_{uuid.uuid4().hex[:12]}"
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f"CREATE DATABASE {database}")
                    urls[warehouse] = admin.url.set(database=database).render_as_string(hide_password=False)
                else:
                    urls[warehouse] = f"sqlite:///{home / 'warehouse.db'}"
                config = write_config(home, day)
                with config.open("a") as extra:
                    extra.write(f"landing_dir: {landing}\ndatabase_url: {urls[warehouse]}\n")
                log(f"run {attempt + 1}/{args.repeat}: the pipeline on {warehouse}")
                try:
                    wall, _ = run_pipeline(day, config)
                    steps[warehouse] = _step_seconds(home)
                    if warehouse == "postgres":
                        postgres_counts = _row_counts(urls[warehouse])
                finally:
                    if warehouse == "postgres":
                        with admin.connect() as conn:
                            conn.exec_driver_sql(f"DROP DATABASE {database} WITH (FORCE)")
                times[warehouse].append(wall)
                log(f"{warehouse}: {wall:.1f} s")
            sqlite_counts = _row_counts(urls["sqlite"])
            if postgres_counts != sqlite_counts:
                differ = {
                    name: (sqlite_counts[name], postgres_counts[name])
                    for name in TABLES
                    if sqlite_counts[name] != postgres_counts[name]
                }
                sys.exit(f"[bench] the warehouses differ (table: SQLite rows, PostgreSQL rows): {differ}")
            log(f"both warehouses hold the same rows per table ({sqlite_counts['requests']:,} requests)")
            log("the steps that took longest beyond SQLite's:")
            _log_steps(steps)
    admin.dispose()

    sqlite_s, postgres_s = min(times["sqlite"]), min(times["postgres"])
    ratio = postgres_s / sqlite_s
    log(f"best of {args.repeat}: SQLite {sqlite_s:.1f} s, PostgreSQL {postgres_s:.1f} s, ratio {ratio:.2f}")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "repeat": args.repeat,
                "sqlite_wall_s": round(sqlite_s, 2),
                "postgres_wall_s": round(postgres_s, 2),
                "ratio": round(ratio, 2),
                "sqlite_runs_s": [round(t, 2) for t in times["sqlite"]],
                "postgres_runs_s": [round(t, 2) for t in times["postgres"]],
            }
        )
    )


if __name__ == "__main__":
    main()
