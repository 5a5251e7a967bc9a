"""Benchmark at scale: one day of ten million requests (sessions to match) against one of a million.

Target (issue 14): the big day completes with peak RSS at most 4,000 MB and in at most 11 times the
million-request day's wall time, both days timed in the same run on the same machine. The big day's
files are written in parts of at most a million requests (the generator holds a whole day in memory),
each part with its own seed, so its users, sessions and messages are those of that many small days
laid over one day. Each pipeline run is watched: progress (elapsed time, RSS) is printed every
`--every` seconds, and a run whose RSS passes `--stop-mb` is stopped so a shared machine is not
driven out of memory; it then counts as failed. The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_scale.py [--rows 10000000] [--base-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench import ISOLATED_ENV_PREFIXES, ROOT, log, write_config

from chatpulse.sample.generate import write_sample
from chatpulse.schema import Kind

PART_ROWS = 1_000_000
TARGET_RSS_MB = 4_000
TARGET_SCALE = 1.1  # time per row at most 1.1 times the base day's: 10x the rows in at most 11x the time


def write_day(landing: Path, day: date, rows: int, part_rows: int = PART_ROWS) -> None:
    """`rows` requests of `day` (and their messages and feedback) in files of at most `part_rows` requests."""
    parts = -(-rows // part_rows)
    for part in range(parts):
        size = min(part_rows, rows - part * part_rows)
        started = time.perf_counter()
        scratch = landing / f".part{part}"
        write_sample(scratch, [day], requests_per_day=size, seed=7 + part)
        for kind in Kind:
            name = f"{kind.value}-{day.isoformat()}.jsonl.gz"
            (scratch / name).rename(landing / (name if parts == 1 else name.replace(".jsonl", f"-part{part}.jsonl")))
        for path in sorted(scratch.rglob("*"), reverse=True):  # the bill: not read by the log sources
            path.rmdir() if path.is_dir() else path.unlink()
        scratch.rmdir()
        log(f"  part {part + 1}/{parts}: {size:,} requests in {time.perf_counter() - started:.0f} s")


def _rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)


def watched_run(day: date, config: Path, every: float, stop_mb: float) -> tuple[float, float, bool]:
    """Runs the CLI for one day, printing progress; returns wall time (s), peak RSS (MB) and success."""
    command = [sys.executable, "-m", "chatpulse.pipelines.cli", "run", "--start", day.isoformat()]
    command += ["--config", str(config)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED_ENV_PREFIXES)}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    reader = threading.Thread(target=lambda: tail.extend(process.stdout or ()), daemon=True)
    reader.start()
    peak, last, stopped = 0.0, started, False
    while process.poll() is None:
        rss = _rss_mb(process.pid)
        peak = max(peak, rss)
        if rss > stop_mb:
            log(f"  RSS {rss:,.0f} MB passed --stop-mb {stop_mb:,.0f}: stopping the run")
            process.kill()
            stopped = True
            break
        if time.perf_counter() - last >= every:
            last = time.perf_counter()
            log(f"  {last - started:6.0f} s, RSS {rss:,.0f} MB (peak {peak:,.0f} MB)")
        time.sleep(0.2)
    process.wait()
    reader.join(timeout=5)
    wall = time.perf_counter() - started
    ok = process.returncode == 0 and not stopped
    if not ok and not stopped:
        log("  pipeline failed:\n" + "".join(tail[-30:]))
    return wall, peak, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="requests in the big day (10,000,000)")
    parser.add_argument("--base-rows", type=int, default=1_000_000, help="requests in the base day (1,000,000)")
    parser.add_argument("--part-rows", type=int, default=PART_ROWS, help="requests per file (1,000,000)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between progress lines (30)")
    parser.add_argument("--stop-mb", type=float, default=8_000.0, help="stop a run past this RSS in MB (8000)")
    args = parser.parse_args()
    day = datetime.now(UTC).date() - timedelta(days=1)
    results = {}
    for label, rows in (("base", args.base_rows), ("big", args.rows)):
        with tempfile.TemporaryDirectory(prefix=f"chatpulse-scale-{label}-") as tmp:
            home = Path(tmp)
            config = write_config(home, day)
            log(f"{label}: generating {rows:,} requests for {day} in {home / 'landing'}")
            (home / "landing").mkdir()
            write_day(home / "landing", day, rows, args.part_rows)
            log(f"{label}: running the pipeline")
            wall, peak, ok = watched_run(day, config, args.every, args.stop_mb)
            log(f"{label}: {'done' if ok else 'FAILED'} in {wall:.1f} s, peak RSS {peak:,.0f} MB")
            results[label] = {"rows": rows, "wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1), "ok": ok}
    base, big = results["base"], results["big"]
    scale = big["wall_s"] / base["wall_s"]
    linear = scale <= TARGET_SCALE * big["rows"] / base["rows"]
    print(
        json.dumps(
            {
                "base_rows": base["rows"],
                "base_wall_s": base["wall_s"],
                "rows": big["rows"],
                "wall_s": big["wall_s"],
                "peak_rss_mb": big["peak_rss_mb"],
                "completed": big["ok"],
                "time_scale": round(scale, 2),
                "meets_target": bool(big["ok"] and big["peak_rss_mb"] <= TARGET_RSS_MB and linear),
            }
        )
    )


if __name__ == "__main__":
    main()
