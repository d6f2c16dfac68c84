"""How the CLI prints: rich for people, JSON for programs, errors in one place."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from jobd.errors import JobdError, exit_code_for

#: Width of output piped to a file or another program: wide enough that no table wraps or cuts a name.
PIPED_WIDTH = 512


def make_console(*, stderr: bool = False) -> Console:
    """A console for people on a terminal; unwrapped, full-width lines when piped (`jobd jobs | grep`).

    What it prints is shown as it is, never read as rich markup: a job's
    error, args and result, a batch's name, a store's message are data, and
    a task's error may well hold ``[/x]``, which markup would refuse with an
    exception (every `jobd jobs` would fail on that one job). A line that
    styles itself passes ``markup=True`` and ``escape``s the data it holds;
    table cells style themselves with ``rich.text.Text``.
    """
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, markup=False)
    return Console(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True, markup=False)


console = make_console()
error_console = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(function: F) -> F:
    """Turn a JobdError into a one-line message on stderr and its exit code.

    A store that fails is a ``StoreUnavailable`` (exit 3) by the time it gets
    here: the library functions the commands call translate the driver's errors.
    """

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except JobdError as error:
            _print_error(str(error))
            raise typer.Exit(int(exit_code_for(error))) from None

    return wrapper  # type: ignore[return-value]


def _print_error(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


def counted(count: int, noun: str) -> str:
    """``1 worker``, ``2 workers``: a number with its noun, in the right number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def ago(epoch: float | None, now: float) -> str:
    if not epoch:
        return "-"
    return duration(now - epoch) + " ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
