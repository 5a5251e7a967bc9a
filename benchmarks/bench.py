"""Benchmark: the whole pipeline on one day of a million requests, against a pandas script.

The pipeline does far more than the baseline (cleaning, sessions, checks, warehouse,
report), so the ratio says what that costs relative to the simplest hourly summary one
could write. The pipeline runs in a subprocess, as a user runs it, so its peak memory
can be read from the children's resource usage. The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from chatpulse.sample.generate import write_sample

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ROWS = 1_000_000
# Variables that would point the run at another installation's data or Dagster home.
ISOLATED_ENV_PREFIXES = ("CHATPULSE_", "DAGSTER_HOME")


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def write_config(home: Path, day: date) -> Path:
    config = home / "chatpulse.yaml"
    config.write_text(f"data_home: {home}\ntimezone: UTC\nstart_date: {day.isoformat()}\n")
    return config


def run_pipeline(day: date, config: Path) -> tuple[float, float]:
    """Runs the CLI for one day; returns its wall time (s) and peak RSS (MB)."""
    command = [
        sys.executable,
        "-m",
        "chatpulse.pipelines.cli",
        "run",
        "--start",
        day.isoformat(),
        "--config",
        str(config),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED_ENV_PREFIXES)}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        sys.exit(f"[bench] pipeline failed with exit code {result.returncode}: {' '.join(command)}\n{output}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
    return wall, peak_mb


def baseline(path: Path) -> pd.DataFrame:
    """The simplest hourly summary: requests, mean latency and error share per hour.

    pandas cannot skip a malformed line, so lines that do not close their object are
    dropped first; non-numeric latencies and missing timestamps are coerced away.
    """
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        text = "".join(line for line in lines if line.rstrip().endswith("}"))
    requests = pd.read_json(io.StringIO(text), lines=True)
    hours = pd.to_datetime(requests["timestamp"], utc=True, errors="coerce", format="ISO8601").dt.floor("h")
    summary = pd.DataFrame(
        {
            "hour": hours,
            "latency_ms": pd.to_numeric(requests["latency_ms"], errors="coerce"),
            "failed": requests["status_code"] >= 400,
        }
    )
    return summary.groupby("hour").agg(
        requests=("failed", "size"), mean_latency_ms=("latency_ms", "mean"), error_share=("failed", "mean")
    )


# The peer reads the same gz files and keeps one row per id, as clean does; bad lines are skipped.
DUCKDB_READ = (
    """CREATE TEMP TABLE requests AS
SELECT * FROM read_json($requests, format = 'newline_delimited', ignore_errors = true, columns = {
    request_id: 'VARCHAR', timestamp: 'TIMESTAMPTZ', user_id: 'VARCHAR', session_id: 'VARCHAR',
    model: 'VARCHAR', status_code: 'DOUBLE', latency_ms: 'DOUBLE', total_tokens: 'DOUBLE', cost_usd: 'DOUBLE'})
WHERE timestamp IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY request_id) = 1""",
    """CREATE TEMP TABLE messages AS
SELECT * FROM read_json($messages, format = 'newline_delimited', ignore_errors = true, columns = {
    message_id: 'VARCHAR', timestamp: 'TIMESTAMPTZ', user_id: 'VARCHAR', session_id: 'VARCHAR'})
WHERE timestamp IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY message_id) = 1""",
)
DUCKDB_TABLES = {
    "hourly": """SELECT date_trunc('hour', timestamp) AS hour, count(*) AS requests,
        avg(latency_ms) AS mean_latency_ms, quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
        avg((status_code >= 400)::INT) AS error_share FROM requests GROUP BY 1""",
    "daily": """SELECT date_trunc('day', timestamp) AS day, count(*) AS requests, count(DISTINCT user_id) AS users,
        sum(total_tokens) AS tokens, sum(cost_usd) AS cost_usd, avg((status_code >= 400)::INT) AS error_share
        FROM requests GROUP BY 1""",
    "per_model": """SELECT model, count(*) AS requests, sum(total_tokens) AS tokens, sum(cost_usd) AS cost_usd,
        quantile_cont(latency_ms, 0.95) AS p95_latency_ms FROM requests GROUP BY 1""",
    # Explicit session ids group their events; id-less events of a user split at 30-minute gaps.
    "sessions": """WITH events AS (
            SELECT timestamp, user_id, session_id, 1 AS is_request FROM requests
            UNION ALL SELECT timestamp, user_id, session_id, 0 FROM messages),
        gaps AS (
            SELECT *, coalesce(timestamp - lag(timestamp) OVER (PARTITION BY user_id ORDER BY timestamp)
                > INTERVAL 30 MINUTE, true) AS new_run
            FROM events WHERE session_id IS NULL AND user_id IS NOT NULL),
        keyed AS (
            SELECT session_id AS session, * EXCLUDE (session_id) FROM events WHERE session_id IS NOT NULL
            UNION ALL
            SELECT user_id || '@' || sum(new_run::INT) OVER (PARTITION BY user_id ORDER BY timestamp), *
                EXCLUDE (session_id, new_run) FROM gaps)
        SELECT session, any_value(user_id) AS user_id, min(timestamp) AS start, max(timestamp) AS "end",
            count(*) - sum(is_request) AS messages, sum(is_request) AS requests FROM keyed GROUP BY 1""",
}


def duckdb_peer(requests: Path, messages: Path) -> dict[str, int]:
    """The core tables (hourly, daily, per model, gap sessions over requests + messages) in DuckDB,
    on the same gz files; returns each table's row count."""
    with duckdb.connect() as con:
        for statement, path in zip(DUCKDB_READ, (requests, messages), strict=True):
            con.execute(statement, {"requests" if path == requests else "messages": str(path)})
        return {name: con.sql(sql).to_arrow_table().num_rows for name, sql in DUCKDB_TABLES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"requests in the day ({DEFAULT_ROWS:,})")
    args = parser.parse_args()
    day = datetime.now(UTC).date() - timedelta(days=1)

    with tempfile.TemporaryDirectory(prefix="chatpulse-bench-") as tmp:
        home = Path(tmp)
        config = write_config(home, day)
        log(f"generating {args.rows:,} requests for {day} in {home / 'landing'}")
        started = time.perf_counter()
        counts = write_sample(home / "landing", [day], requests_per_day=args.rows)
        requests_file = home / "landing" / f"requests-{day.isoformat()}.jsonl.gz"
        log(
            f"generated in {time.perf_counter() - started:.1f} s: {counts['request_lines']:,} request lines, "
            f"{counts['message_lines']:,} message lines, {requests_file.stat().st_size / 2**20:.1f} MiB of requests"
        )

        log("running the pipeline")
        pipeline_wall, peak_mb = run_pipeline(day, config)
        log(f"pipeline: {pipeline_wall:.1f} s, peak RSS {peak_mb:.0f} MB")

        log("running the baseline (pandas.read_json + hourly groupby)")
        started = time.perf_counter()
        hourly = baseline(requests_file)
        baseline_wall = time.perf_counter() - started
        log(f"baseline: {baseline_wall:.1f} s for {int(hourly['requests'].sum()):,} rows in {len(hourly)} hours")

        log("running the DuckDB peer (core tables on the same files)")
        started = time.perf_counter()
        tables = duckdb_peer(requests_file, home / "landing" / f"messages-{day.isoformat()}.jsonl.gz")
        duckdb_wall = time.perf_counter() - started
        log(f"duckdb: {duckdb_wall:.1f} s for {tables}")

    print(
        json.dumps(
            {
                "rows": args.rows,
                "pipeline_wall_s": round(pipeline_wall, 2),
                "pipeline_peak_rss_mb": round(peak_mb, 1),
                "baseline_wall_s": round(baseline_wall, 2),
                "ratio": round(pipeline_wall / baseline_wall, 2),
                "duckdb_wall_s": round(duckdb_wall, 2),
                "duckdb_ratio": round(pipeline_wall / duckdb_wall, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
