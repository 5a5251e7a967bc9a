"""Benchmark: a first run over a folder of many days (`chatpulse run --start D1 --end DN`), with the extract cache
and without it (`extract_cache: false`, each day parsing again every file that holds it), in the same run.

One landing folder of DAYS days (chatpulse.sample.generate.write_sample: requests, messages and feedback files
per day, and the provider's bill) is run from scratch into two data homes, one per setting, alternately
`--repeat` times. Each run is its own subprocess, measured through a small parent that reports its children's
peak RSS, so the two settings' memory figures stay apart. Files parsed and files served from the cache come
from the `files_read` and `files_cached` metadata of the extract steps in each run's Dagster event log, and
the warehouse tables of the two homes are compared row for row. The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_folder.py [--days 30] [--rows 2000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from bench import ISOLATED_ENV_PREFIXES, write_config

from chatpulse.sample.generate import write_sample

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DAYS = 30
DEFAULT_ROWS = 2_000
EXTRACT_ASSETS = ("raw_requests", "raw_messages", "raw_feedback")
READING_STEPS = ("raw_", "neighbour_")  # the steps that read landing files
# Runs the command in argv and prints its peak RSS (KB) and CPU seconds: a parent per run keeps runs apart.
MEASURED = """import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "rss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))"""
# Tables, and the alerts' columns, that say when a run happened, not what it read.
RUN_TABLES = ("day_steps", "landing_files", "alert_deliveries")
RUN_COLUMNS = ("first_seen", "last_seen", "resolved_at")
MEASURES = ("wall_s", "cpu_s", "reading_steps_s", "peak_rss_mb")


def log(message: str) -> None:
    print(f"[bench-folder] {message}", flush=True)


def run_days(config: Path, first: date, last: date) -> dict[str, float]:
    """`chatpulse run --start first --end last`: wall and CPU seconds, peak RSS (MB)."""
    cli = [sys.executable, "-m", "chatpulse.pipelines.cli", "--config", str(config), "run"]
    command = [sys.executable, "-c", MEASURED, *cli, "--start", first.isoformat(), "--end", last.isoformat()]
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED_ENV_PREFIXES)}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    measured = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {"code": -1}
    if result.returncode != 0 or measured["code"] != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        sys.exit(f"[bench-folder] run failed: {' '.join(command)}\n{output}")
    return {"wall_s": wall, "cpu_s": measured["cpu_s"], "peak_rss_mb": measured["rss_kb"] / 1024}


def extract_counts(dagster_home: Path) -> dict[str, float]:
    """Files parsed and files served from the cache, summed over every extract step of the instance's runs,
    and the seconds of the steps that read landing files (extract, and the neighbouring days' rows)."""
    from dagster import AssetKey, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    counts: dict[str, float] = {"files_parsed": 0, "files_cached": 0, "extract_steps": 0, "reading_steps_s": 0.0}
    with DagsterInstance.get() as instance:
        for run in instance.get_runs(limit=10_000):
            for step in instance.get_run_step_stats(run.run_id):
                if step.step_key.startswith(READING_STEPS) and step.start_time and step.end_time:
                    counts["reading_steps_s"] += step.end_time - step.start_time
        for name in EXTRACT_ASSETS:
            records = instance.fetch_materializations(AssetKey(name), limit=10_000).records
            for record in records:
                metadata = record.asset_materialization.metadata
                counts["files_parsed"] += int(metadata["files_read"].value)
                counts["files_cached"] += int(metadata["files_cached"].value) if "files_cached" in metadata else 0
                counts["extract_steps"] += 1
    return counts


def tables(database: Path) -> dict[str, pd.DataFrame]:
    """Every table of a warehouse but those about the runs themselves (and the alerts' run times), rows sorted,
    for comparing."""
    with sqlite3.connect(database) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        frames = {name: pd.read_sql(f'SELECT * FROM "{name}"', conn) for name in names if name not in RUN_TABLES}
    frames = {name: frame.drop(columns=[c for c in RUN_COLUMNS if c in frame]) for name, frame in frames.items()}
    return {name: frame.sort_values(list(frame.columns)).reset_index(drop=True) for name, frame in frames.items()}


def differing(ours: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame]) -> list[str]:
    """The tables whose rows differ between two warehouses."""
    names = sorted(set(ours) | set(theirs))
    return [
        n for n in names if n not in ours or n not in theirs or not ours[n].astype(str).equals(theirs[n].astype(str))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"days in the folder ({DEFAULT_DAYS})")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"requests per day ({DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting, alternating (1)")
    args = parser.parse_args()
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=args.days - 1)
    load_before = os.getloadavg()[0]
    figures: dict[str, list[dict[str, float]]] = {"cache": [], "no_cache": []}

    with tempfile.TemporaryDirectory(prefix="chatpulse-bench-folder-") as tmp:
        root = Path(tmp)
        landing = root / "landing"
        counts = write_sample(
            landing, [first + timedelta(days=n) for n in range(args.days)], requests_per_day=args.rows
        )
        files = sum(1 for path in landing.rglob("*") if path.is_file())
        log(f"{args.days} days from {first}: {counts['request_lines']:,} request lines, {files} files")
        homes: dict[str, Path] = {}
        for number in range(1, args.repeat + 1):
            for setting in ("cache", "no_cache"):
                home = homes[setting] = root / setting
                shutil.rmtree(home, ignore_errors=True)
                home.mkdir()
                config = write_config(home, first)
                with config.open("a") as text:
                    text.write(f"landing_dir: {landing}\nextract_cache: {'true' if setting == 'cache' else 'false'}\n")
                measured = run_days(config, first, last) | extract_counts(home / "dagster")
                figures[setting].append(measured)
                log(
                    f"{setting} run {number}/{args.repeat}: {measured['wall_s']:.1f} s "
                    f"(CPU {measured['cpu_s']:.1f} s, reading steps {measured['reading_steps_s']:.1f} s), "
                    f"peak RSS {measured['peak_rss_mb']:.0f} MB, {measured['files_parsed']} files parsed, "
                    f"{measured['files_cached']} served from the cache, {measured['extract_steps']} extract steps"
                )
        unequal = differing(tables(homes["cache"] / "warehouse.db"), tables(homes["no_cache"] / "warehouse.db"))
        log("warehouse tables: " + (f"differ: {', '.join(unequal)}" if unequal else "identical"))
        left = sorted(
            str(p.relative_to(homes["cache"])) for p in (homes["cache"] / "storage").glob("extract_cache/*/*")
        )
        log(f"extract cache left after the run: {left or 'nothing'}")

    def best(setting: str, key: str) -> float:
        return round(min(run[key] for run in figures[setting]), 2)

    print(
        json.dumps(
            {
                "days": args.days,
                "rows_per_day": args.rows,
                "landing_files": files,
                "files_parsed": figures["cache"][-1]["files_parsed"],
                "files_parsed_no_cache": figures["no_cache"][-1]["files_parsed"],
                "files_cached": figures["cache"][-1]["files_cached"],
                **{key: best("cache", key) for key in MEASURES},
                **{f"{key}_no_cache": best("no_cache", key) for key in MEASURES},
                "tables_identical": not unequal,
                "cache_left": len(left),
                "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            }
        )
    )


if __name__ == "__main__":
    main()
