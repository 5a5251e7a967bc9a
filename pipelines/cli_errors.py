"""The one error type of the `chatpulse` command: a problem the user can fix."""

from __future__ import annotations

from typing import IO, Any

import click


class CliError(click.ClickException):
    """A problem the user can fix; printed as one line without a traceback, exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"chatpulse: error: {self.format_message()}", file=file, err=file is None)
