"""How the CLI prints: rich for people, JSON for programs, errors in one place."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console

from jobd.errors import ExitCode, JobdError, exit_code_for

console = Console()
error_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(function: F) -> F:
    """Turn a JobdError (or a store that fails) into a one-line message on stderr and its exit code."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except JobdError as error:
            _print_error(str(error))
            raise typer.Exit(int(exit_code_for(error))) from None
        except sa.exc.DBAPIError as error:
            _print_error(describe_store_error(error))
            raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None

    return wrapper  # type: ignore[return-value]


def _print_error(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)


def describe_store_error(error: sa.exc.DBAPIError) -> str:
    """The driver's own words, plus what to do when the store has no jobd tables yet."""
    reason = str(error.orig).strip() or type(error.orig).__name__
    if "no such table" in reason or "doesn't exist" in reason:
        return f"the store has no jobd tables ({reason}): run `jobd init` first"
    return f"the store failed: {reason}"


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
