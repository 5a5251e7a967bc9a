"""`chatpulse ui` runs `dagster dev` and, on Ctrl-C or SIGTERM, stops with every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fixtures import free_port


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every process on the machine from /proc: pid -> (parent pid, process group, state letter)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        state, parent, group = stat.rsplit(")", 1)[1].split()[:3]
        found[int(entry)] = (int(parent), int(group), state)
    return found


def _tree(root: int) -> set[int]:
    """``root`` and its descendants now, through the parent links in /proc."""
    processes, tree = _processes(), {root}
    grew = True
    while grew:
        below = {pid for pid, (parent, _, _) in processes.items() if parent in tree}
        grew = not below <= tree
        tree |= below
    return tree


def _running(pids: set[int], groups: set[int]) -> set[int]:
    """Which of ``pids``, or of any process in ``groups``, still runs (a zombie has ended: it awaits its reaper)."""
    return {
        pid for pid, (_, group, state) in _processes().items() if (pid in pids or group in groups) and state not in "ZX"
    }


@pytest.mark.subprocess
@pytest.mark.webserver
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from Linux's /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_stops_with_every_process_it_started(tmp_path: Path, stop: signal.Signals) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text("data_home: .\n")
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "chatpulse.pipelines.cli", "--config", str(config), "ui", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:  # up once the webserver answers, which it does after loading the code location
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert ui.poll() is None and time.monotonic() < deadline, "the UI never answered"
                time.sleep(0.5)
        started = _tree(ui.pid) - {ui.pid}
        assert len(started) >= 3  # dagster dev, its webserver and daemon, and their code servers
        groups = {_processes()[pid][1] for pid in started} - {os.getpgid(0)}  # any process group but pytest's
        ui.send_signal(stop)
        assert ui.wait(timeout=90) in (0, 128 + stop)
        assert _running(started, groups) == set()
    finally:
        if ui.poll() is None:
            ui.kill()
