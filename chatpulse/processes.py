"""Which process executes a run, and whether it is gone: a run `chatpulse run` executes in its own process
has no run launcher watching it, so a run killed there stays "started" in Dagster (nothing else notices)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

HOST_TAG = "chatpulse/host"
PID_TAG = "chatpulse/pid"


def runner_tags() -> dict[str, str]:
    """Tags naming this process (host name and process id), for a run executed in it."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def runner_gone(tags: Mapping[str, str]) -> bool:
    """Whether the process a run's tags name (runner_tags) has ended: only on this host, where it can be told;
    a run without the tags (launched by Dagster's daemon or UI, whose launcher reports a dead worker), or of
    another host, is never judged gone. A process id reused since by another process counts as alive."""
    pid = tags.get(PID_TAG, "")
    if tags.get(HOST_TAG) != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's
        return False
    return False
