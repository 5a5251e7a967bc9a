"""The one error type of the `chatpulse` command, a problem the user can fix, and a failed step's error as one
line (the command's message and the failure mail say it alike)."""

from __future__ import annotations

import re
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo


class CliError(click.ClickException):
    """A problem the user can fix; printed as one line without a traceback, exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"chatpulse: error: {self.format_message()}", file=file, err=file is None)


def run_error(error: SerializableErrorInfo) -> str:
    """A failed step's error as one line: the outermost error below Dagster's own wrappers and retries.

    That is the error the step raised, which names the file and line (ExtractError), rather
    than the library error it was raised from. ChatPulse's class names are left out; any
    other class keeps its name, without which `KeyError: 'x'` would say nothing.
    """
    # A step that failed after its retry policy's last try says "Exceeded max_retries of 3" as a
    # RetryRequestedFromPolicy, raised from the step's own error.
    while error.cause is not None and (error.cls_name or "").startswith(("Dagster", "RetryRequested")):
        error = error.cause
    message = " ".join(error.message.split())
    ours = re.match(r"chatpulse\.[\w.]+: ", message)
    return message[ours.end() :] if ours else message
