"""The built-in shell task: run an operator-configured command line under supervision.

This is how jobd runs what cron used to run — a PHP script, a shell
pipeline, a binary. The command, working directory, environment and timeout
come only from config files (``ShellTaskSpec``), never from job arguments: a
job row can be written by anyone with store access, so letting it carry a
command would hand out arbitrary code execution.

The command runs in its own process group: a timeout or a cancellation
signals the whole group, so a ``sh -c`` wrapper cannot leave its children
running. The group stays in the worker's session (not a session of its own),
so when the worker dies — killed, or with its master — the command and
everything it started go with it (``jobd.workers.sessions``). Output is
streamed to the logger line by line as it comes, tagged with its stream, and
the last lines are kept for the error.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobd.errors import JobdError

#: How many trailing output lines an error carries.
LAST_LINES_KEPT = 20
#: Time between SIGTERM and SIGKILL of the process group.
DEFAULT_KILL_GRACE = 5.0
#: How often the cancellation callback and the deadline are checked.
POLL_INTERVAL = 0.05
#: Longest line logged as one record; longer output is split.
MAX_LINE_BYTES = 64 * 1024
#: String commands run through this shell, like cron's default SHELL.
SHELL = "/bin/sh"


class ShellTaskSpec(BaseModel):
    """A shell task declared in config (``[tasks.NAME]`` or a schedule entry's ``shell``).

    ``command`` is a string run by ``/bin/sh -c`` (cron semantics) or a list
    run directly without a shell. ``env`` is added to the worker's
    environment. ``timeout`` accepts durations like ``"30s"`` or ``"1h"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: timedelta | None = None

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, command: str | list[str]) -> str | list[str]:
        if isinstance(command, str) and not command.strip():
            raise ValueError("the command is empty")
        if isinstance(command, list) and (not command or not all(command)):
            raise ValueError("a command list needs a program and no empty arguments")
        return command

    @field_validator("timeout", mode="before")
    @classmethod
    def _parse_timeout(cls, value: object) -> object:
        from jobd.schedules.durations import parse_duration

        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return parse_duration(value, allow_zero=False)
        return value


class LineLogger(Protocol):
    """The part of ``logging.Logger`` (or a ``LoggerAdapter``) the runner uses."""

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True)
class ShellResult:
    """A command that exited 0."""

    pid: int
    exit_code: int
    duration: float
    last_lines: tuple[str, ...]


class ShellTaskFailed(JobdError):
    """The command exited non-zero, timed out or was cancelled.

    ``returncode`` is the command's exit status, negative when the process
    was killed by a signal (``-15`` SIGTERM, ``-9`` SIGKILL), as
    ``subprocess`` reports it. (``exit_code`` stays the ``jobd`` CLI's exit
    code, as for every ``JobdError``.)
    """

    def __init__(self, command: str, returncode: int, last_lines: tuple[str, ...], reason: str) -> None:
        self.command = command
        self.returncode = returncode
        self.last_lines = last_lines
        self.reason = reason
        tail = "\n".join(last_lines[-5:])
        super().__init__(f"{command!r} {reason}" + (f"; last output:\n{tail}" if tail else ""))


class ShellTaskTimedOut(ShellTaskFailed):
    """The command ran past its timeout and its process group was killed."""


class ShellTaskCancelled(ShellTaskFailed):
    """The job was cancelled (e.g. overlap ``replace``) and the process group was killed."""


def run_shell(
    command: str | list[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | timedelta | None = None,
    logger: LineLogger,
    cancelled: Callable[[], bool] = lambda: False,
    kill_grace: float = DEFAULT_KILL_GRACE,
) -> ShellResult:
    """Run ``command`` to completion and return its result; raise ``ShellTaskFailed`` otherwise.

    Output lines are logged as they come, at INFO, with ``extra={"stream":
    "stdout"|"stderr", "pid": pid}``. On timeout or when ``cancelled()``
    turns true, the process group gets SIGTERM, then SIGKILL after
    ``kill_grace`` seconds. Processes the command leaves behind in its group
    after exiting are terminated the same way: a finished task owns nothing.
    """
    argv = [SHELL, "-c", command] if isinstance(command, str) else list(command)
    shown = command if isinstance(command, str) else " ".join(command)
    timeout_seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    child_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603 - the command comes from operator config
            argv,
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # its own group, inside the worker's session
        )
    except OSError as error:  # no such program or cwd, not executable: like a shell's 127
        raise ShellTaskFailed(shown, 127, (), f"could not be started: {error.strerror}: {error.filename}") from None
    last_lines: deque[str] = deque(maxlen=LAST_LINES_KEPT)
    assert process.stdout is not None and process.stderr is not None
    readers = [
        _start_reader(process.stdout, "stdout", process.pid, logger, last_lines),
        _start_reader(process.stderr, "stderr", process.pid, logger, last_lines),
    ]
    stop_reason: str | None = None
    while process.poll() is None:
        if timeout_seconds is not None and time.monotonic() - started >= timeout_seconds:
            stop_reason = f"timed out after {timeout_seconds:g}s"
        elif cancelled():
            stop_reason = "was cancelled"
        if stop_reason:
            logger.log(logging.WARNING, "shell task %s: %s; killing its process group", shown, stop_reason,
                       extra={"pid": process.pid})
            _terminate_group(process, kill_grace)
            break
        try:
            process.wait(timeout=POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass
    exit_code = process.wait()
    if _group_alive(process.pid):
        logger.log(logging.WARNING, "shell task %s left processes behind; terminating them", shown,
                   extra={"pid": process.pid})
        _terminate_group(process, kill_grace)
    for reader in readers:
        reader.join(timeout=kill_grace)
    duration = time.monotonic() - started
    lines = tuple(last_lines)
    if stop_reason and stop_reason.startswith("timed out"):
        raise ShellTaskTimedOut(shown, exit_code, lines, stop_reason)
    if stop_reason:
        raise ShellTaskCancelled(shown, exit_code, lines, stop_reason)
    if exit_code != 0:
        raise ShellTaskFailed(shown, exit_code, lines, f"exited with code {exit_code}")
    return ShellResult(pid=process.pid, exit_code=exit_code, duration=duration, last_lines=lines)


def run_shell_task(
    spec: ShellTaskSpec, *, logger: LineLogger, cancelled: Callable[[], bool] = lambda: False
) -> ShellResult:
    """``run_shell`` with everything taken from a configured ``ShellTaskSpec``."""
    return run_shell(spec.command, cwd=spec.cwd, env=spec.env, timeout=spec.timeout,
                     logger=logger, cancelled=cancelled)


def _start_reader(
    stream: IO[bytes], name: str, pid: int, logger: LineLogger, last_lines: deque[str]
) -> threading.Thread:
    def pump() -> None:
        with stream:
            for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                last_lines.append(f"[{name}] {line}")
                logger.log(logging.INFO, "[%s] %s", name, line, extra={"stream": name, "pid": pid})

    thread = threading.Thread(target=pump, name=f"shelltask-{pid}-{name}", daemon=True)
    thread.start()
    return thread


def _terminate_group(process: subprocess.Popen[bytes], kill_grace: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``kill_grace``."""
    group = process.pid  # process_group=0 made the child its group's leader
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + kill_grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader so it does not count as alive
        if not _group_alive(group):
            return
        time.sleep(POLL_INTERVAL)
    _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    """True while a live (non-zombie) process of the group exists.

    Zombies are ignored: a killed grandchild is reparented to PID 1 and may
    linger as a zombie where PID 1 does not reap (containers), yet it runs
    nothing. Without ``/proc`` this falls back to ``killpg(group, 0)``.
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group and fields[0] != b"Z":
            return True
    return False
