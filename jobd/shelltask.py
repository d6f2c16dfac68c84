"""The built-in shell task: run an operator-configured command line under supervision.

This is how jobd runs what cron used to run — a PHP script, a shell
pipeline, a binary. The command, working directory, environment and timeout
come only from config files (``ShellTaskSpec``), never from job arguments: a
job row can be written by anyone with store access, so letting it carry a
command would hand out arbitrary code execution.

The command runs in its own process group: a timeout or a cancellation
signals the whole group, so a ``sh -c`` wrapper cannot leave its children
running. When the worker is stopping (``ctx.stopping``) the group gets one
SIGTERM and the command may end as it likes: a command that then exits
non-zero goes back to the queue, its attempt given back, like any task that
yields to a stop. The group stays in the worker's session (not a session of its own),
so when the worker dies — killed, or with its master — the command and
everything it started go with it (``jobd.workers.sessions``). Output is
streamed to the logger line by line as it comes, tagged with its stream, and
the last lines are kept for the error.

Like a cron line, a command may name the shell that runs it (cron's
``SHELL=``) and, as a system crontab line does, the user it runs as. Only a
master running as root can switch users: the switch (setgid, setgroups,
setuid) happens in the forked child only, so the worker keeps its identity.
Anywhere else a command for another user is refused, never run as the wrong
one.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Annotated, Any, ClassVar, Protocol

from jobd.config_checks import After, Before
from jobd.durations import parse_duration
from jobd.errors import PermanentFailure, TaskFailed

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
#: Output lines an error message quotes (the log has all of them).
LAST_LINES_IN_ERROR = 5
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_STREAM_TAG = re.compile(r"^\[(?:stdout|stderr)\] ")


def _interpreter_is_a_path(interpreter: str | None) -> str | None:
    if interpreter is not None and not os.path.isabs(interpreter):
        raise ValueError("the interpreter is an absolute path, like /bin/bash")
    return interpreter


def _user_is_a_name(user: str | None) -> str | None:
    if user is not None and not _USER_NAME.fullmatch(user):
        raise ValueError("a user is a login name, like www-data")
    return user


def _command_not_empty(command: str | list[str]) -> str | list[str]:
    if isinstance(command, str) and not command.strip():
        raise ValueError("the command is empty")
    if isinstance(command, list) and (not command or not all(command)):
        raise ValueError("a command list needs a program and no empty arguments")
    return command


def _parse_timeout(value: object) -> object:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError(f"{value!r}: a timeout must be more than zero")
        return timedelta(seconds=seconds)
    return value


@dataclass(frozen=True)
class ShellTaskSpec:
    """A shell task declared in config (``[daemons.NAME.shell.TASK]`` or a schedule entry's ``shell``).

    ``command`` is a string run by ``/bin/sh -c`` (cron semantics) or a list
    run directly without a shell. ``interpreter`` replaces ``/bin/sh`` for a
    string command (cron's ``SHELL=``). ``env`` is added to the worker's
    environment. ``timeout`` accepts durations like ``"30s"`` or ``"1h"``.
    ``user`` runs the command as that user (a system crontab's user column):
    the master must run as root, or as that user.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    command: Annotated[str | list[str], After(_command_not_empty)]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: Annotated[timedelta | None, Before(_parse_timeout)] = None
    interpreter: Annotated[str | None, After(_interpreter_is_a_path)] = None
    user: Annotated[str | None, After(_user_is_a_name)] = None


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


class ShellTaskFailed(TaskFailed):
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
        tail = "\n".join(_STREAM_TAG.sub("", line) for line in last_lines[-LAST_LINES_IN_ERROR:])
        super().__init__(f"command {reason}" + (f": {tail}" if tail else " (no output)"))


class ShellTaskTimedOut(ShellTaskFailed):
    """The command ran past its timeout and its process group was killed."""


class ShellTaskCancelled(ShellTaskFailed):
    """The job was cancelled (e.g. overlap ``replace``) and the process group was killed."""


class ShellTaskStopped(ShellTaskFailed):
    """The worker was stopping, the group got SIGTERM, and the command exited non-zero: run it again later."""


class ShellUserRefused(PermanentFailure):
    """The command must run as another user and this process cannot switch to it.

    Permanent: retrying cannot make the master root or create the user.
    """


def run_shell(
    command: str | list[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | timedelta | None = None,
    logger: LineLogger,
    cancelled: Callable[[], bool] = lambda: False,
    stopping: Callable[[], bool] = lambda: False,
    kill_grace: float = DEFAULT_KILL_GRACE,
    interpreter: str | None = None,
    user: str | None = None,
) -> ShellResult:
    """Run ``command`` to completion and return its result; raise ``ShellTaskFailed`` otherwise.

    Output lines are logged as they come, at INFO, with ``extra={"stream":
    "stdout"|"stderr", "pid": pid}``. On timeout or when ``cancelled()``
    turns true, the process group gets SIGTERM, then SIGKILL after
    ``kill_grace`` seconds. When ``stopping()`` turns true, the group gets
    SIGTERM once and the command is waited for (its timeout still holds);
    exiting non-zero then raises ``ShellTaskStopped``. Processes the command leaves behind in its group
    after exiting are terminated the same way: a finished task owns nothing.
    ``user`` switches identity in the child (``ShellUserRefused`` if this
    process cannot); ``interpreter`` runs a string command instead of ``/bin/sh``.
    """
    argv = [interpreter or SHELL, "-c", command] if isinstance(command, str) else list(command)
    shown = command if isinstance(command, str) else " ".join(command)
    timeout_seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    identity, login_env = user_switch(user, os.geteuid())
    if identity and cwd is None:  # like cron: the user's home, not a folder of jobd's it may not enter
        cwd = login_env["HOME"] if os.path.isdir(login_env["HOME"]) else "/"
    child_env = {**os.environ, **login_env, **(env or {})}
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
            **identity,
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
    stopped = False
    while process.poll() is None:
        if not stopped and stopping():
            stopped = True
            logger.log(logging.INFO, "shell task %s: the worker is stopping; SIGTERM to its process group", shown,
                       extra={"pid": process.pid})
            _signal_group(process.pid, signal.SIGTERM)
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
    if stopped and exit_code != 0:
        raise ShellTaskStopped(shown, exit_code, lines, "was stopped with its worker")
    if exit_code != 0:
        raise ShellTaskFailed(shown, exit_code, lines, _exit_reason(exit_code))
    return ShellResult(pid=process.pid, exit_code=exit_code, duration=duration, last_lines=lines)


def run_shell_task(
    spec: ShellTaskSpec, *, logger: LineLogger, cancelled: Callable[[], bool] = lambda: False,
    stopping: Callable[[], bool] = lambda: False,
) -> ShellResult:
    """``run_shell`` with everything taken from a configured ``ShellTaskSpec``."""
    return run_shell(spec.command, cwd=spec.cwd, env=spec.env, timeout=spec.timeout, logger=logger,
                     cancelled=cancelled, stopping=stopping, interpreter=spec.interpreter, user=spec.user)


def user_switch(user: str | None, effective_uid: int) -> tuple[dict[str, Any], dict[str, str]]:
    """``Popen`` keyword arguments and login variables (HOME, USER, LOGNAME) to run as ``user``.

    Nothing to do when ``user`` is unset or is already who we are; a switch
    needs root (``effective_uid == 0``), else ``ShellUserRefused`` explains it.
    """
    if user is None:
        return {}, {}
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ShellUserRefused(f"the command must run as user {user!r}, which does not exist on this host") from None
    login_env = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}
    if account.pw_uid == effective_uid:
        return {}, login_env
    if effective_uid != 0:
        try:
            me = pwd.getpwuid(effective_uid).pw_name
        except KeyError:
            me = str(effective_uid)
        raise ShellUserRefused(
            f"the command must run as user {user!r}, but jobd runs as {me!r} (uid {effective_uid}) and only root "
            f"can switch users: run the master as root, or run this entry under a master running as {user!r}"
        )
    groups = os.getgrouplist(account.pw_name, account.pw_gid)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": groups}, login_env


def _exit_reason(exit_code: int) -> str:
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by signal {-exit_code} ({name})"
    return f"exited with code {exit_code}"


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
