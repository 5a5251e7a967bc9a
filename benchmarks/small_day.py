"""Benchmark: the fixed cost of a run, a 100-row day end to end (`chatpulse run`), against bare Python.

A near-real-time run of the landing sensor holds few rows, so its time is the run's fixed cost:
imports, Dagster's run and step machinery, the warehouse, the report. The day is run several times in
a subprocess, as a user runs it, on one data home: the first run creates the warehouse and Dagster's
storage (reported apart), the later ones replace the day as a sensor's rerun does. Interleaved with
them, the same run times bare `python -c pass`, `import dagster` and the import of the Definitions
module, so the figures can be judged on a loaded machine (the minimum of the repeats is the figure
to compare). It also reads the last run's step times from Dagster's event log. The last line printed
is one JSON object.

Before timing anything it compiles the project's modules to bytecode, as installing a package does: a checkout
(an editable install) otherwise compiles them on first import and caches them, except where
PYTHONDONTWRITEBYTECODE is set (this project's shared machine sets it), and every run then compiled ChatPulse's
~90 modules afresh: about 1 s of a rerun's CPU that no installed copy pays.

    .venv/bin/python benchmarks/small_day.py [--rows 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench import ISOLATED_ENV_PREFIXES, write_config

from chatpulse.sample.generate import write_sample

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ROWS = 100
DEFAULT_REPEAT = 5
DEFINITIONS_MODULE = "chatpulse.pipelines.definitions"
SOURCE_FOLDERS = ("chatpulse", "assets", "pipelines", "reports", "expectations")  # pyproject's package-dir
BASELINES = {
    "python_s": "pass",
    "dagster_import_s": "import dagster",
    "import_s": f"import {DEFINITIONS_MODULE}",
}


def log(message: str) -> None:
    print(f"[bench-small] {message}", flush=True)


def timed(command: list[str]) -> tuple[float, float]:
    """Runs `command` from the repository root in the isolated environment; its wall and CPU (user + sys) seconds."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED_ENV_PREFIXES)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        sys.exit(f"[bench-small] failed with exit code {result.returncode}: {' '.join(command)}\n{output}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_day(day: date, config: Path) -> tuple[float, float]:
    """One `chatpulse run` of the day; its wall and CPU seconds."""
    return timed(
        [sys.executable, "-m", "chatpulse.pipelines.cli", "--config", str(config), "run", "--start", day.isoformat()]
    )


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds of each step of the newest run in `dagster_home`, longest first, from its event log."""
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)
        stats = instance.get_run_step_stats(run.run_id)
    seconds = {s.step_key: s.end_time - s.start_time for s in stats if s.start_time and s.end_time}
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"requests in the day ({DEFAULT_ROWS})")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help=f"timed reruns ({DEFAULT_REPEAT})")
    args = parser.parse_args()
    day = datetime.now(UTC).date() - timedelta(days=1)
    load_before = os.getloadavg()[0]
    for folder in SOURCE_FOLDERS:
        compileall.compile_dir(ROOT / folder, quiet=1)

    with tempfile.TemporaryDirectory(prefix="chatpulse-bench-small-") as tmp:
        home = Path(tmp)
        config = write_config(home, day)
        counts = write_sample(home / "landing", [day], requests_per_day=args.rows)
        log(f"generated {counts['request_lines']:,} request and {counts['message_lines']:,} message lines for {day}")

        first_wall, first_cpu = run_day(day, config)
        log(f"first run (creates the warehouse and Dagster's storage): {first_wall:.1f} s, CPU {first_cpu:.1f} s")
        walls, cpus = [], []
        baselines: dict[str, list[float]] = {name: [] for name in BASELINES}
        for number in range(1, args.repeat + 1):
            for name, code in BASELINES.items():
                baselines[name].append(timed([sys.executable, "-c", code])[0])
            wall, cpu = run_day(day, config)
            walls.append(wall)
            cpus.append(cpu)
            figures = ", ".join(f"{name} {values[-1]:.1f}" for name, values in baselines.items())
            log(f"run {number}/{args.repeat}: {wall:.1f} s (CPU {cpu:.1f} s); {figures}")
        steps = step_seconds(home / "dagster")

    log("slowest steps of the last run: " + ", ".join(f"{key} {value:.2f} s" for key, value in list(steps.items())[:6]))
    print(
        json.dumps(
            {
                "rows": args.rows,
                "repeat": args.repeat,
                "wall_s_min": round(min(walls), 2),
                "wall_s_median": round(statistics.median(walls), 2),
                "cpu_s_min": round(min(cpus), 2),
                "first_run_wall_s": round(first_wall, 2),
                **{name: round(min(values), 2) for name, values in baselines.items()},
                "steps_s": round(sum(steps.values()), 2),
                "slowest_step": next(iter(steps), None),
                "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            }
        )
    )


if __name__ == "__main__":
    main()
