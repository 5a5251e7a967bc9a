"""A long-running program (`dagster dev`) run as a child that takes its whole process tree with it when it stops.

`dagster dev` starts the webserver and the daemon, which start code servers: five processes. Replacing the
`chatpulse` process with it (exec) left them to its own signal handling, and a SIGTERM left four behind. Here
the child runs in a process group of its own, this process forwards Ctrl-C (SIGINT), SIGTERM and a hang-up to
the whole group, gives it a grace period to shut down cleanly, and then kills whatever of the group is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

# Dagster's own shutdown waits up to 10 s for each of its two services; a little more before killing.
GRACE_S = 25.0
POLL_S = 0.2
# What each signal this process receives is passed on as: a hang-up (the terminal closed) as SIGTERM,
# since `dagster dev` treats SIGTERM as Ctrl-C and a hang-up as the end without cleanup.
FORWARD = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM, signal.SIGHUP: signal.SIGTERM}


def run_group(argv: Sequence[str], grace_s: float = GRACE_S) -> int:
    """Run ``argv`` in a new process group until it ends; stop the whole group when this process is signalled.

    SIGINT and SIGTERM are forwarded to every process of the group (as the terminal sends Ctrl-C to all
    of a foreground group), SIGHUP as SIGTERM. Once the child has ended, or ``grace_s`` seconds after the
    first signal, every process still in the group is sent SIGTERM and, after up to ``grace_s`` more
    seconds, SIGKILL. Returns the child's exit status, or 128 + the signal number that ended it (the
    shell's convention, 130 after Ctrl-C).
    """
    child = subprocess.Popen(list(argv), process_group=0)
    group = child.pid
    stop_by: list[float] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        _signal_group(group, FORWARD[signal.Signals(signum)])
        if not stop_by:
            stop_by.append(time.monotonic() + grace_s)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARD}
    try:
        while child.poll() is None:
            if stop_by and time.monotonic() > stop_by[0]:
                _signal_group(group, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=POLL_S)
        end_group(group, grace_s)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = child.returncode
    return code if code >= 0 else 128 - code


def end_group(group: int, grace_s: float = GRACE_S) -> None:
    """Stop every process left in process group ``group``: SIGTERM, then SIGKILL after ``grace_s`` seconds.

    A process whose parent ended before it stays in its group, so this reaches the grandchildren too.
    Returns once no process of the group is running (zombies, already ended, do not count).
    """
    if not group_alive(group):
        return
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_alive(group):
        if time.monotonic() > deadline:
            _signal_group(group, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(POLL_S)


def group_alive(group: int) -> bool:
    """Whether a process of group ``group`` is still running (Linux: read from /proc; elsewhere: any member)."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    return any(_group_and_state(pid) == (group, True) for pid in os.listdir("/proc") if pid.isdigit())


def _group_and_state(pid: str) -> tuple[int, bool] | None:
    """A process's group and whether it is running rather than a zombie, from /proc/PID/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return int(fields[2]), fields[0] not in ("Z", "X")


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
        os.killpg(group, signum)
