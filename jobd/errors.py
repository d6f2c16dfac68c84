"""The errors jobd reports to people, and the exit code each one maps to.

Every error a user can act on is a ``JobdError``: its message names the
file, key, task, daemon or tenant involved and says what to do. The CLI maps
the class to an exit code in one place (``exit_code_for``), so scripts can
tell "you asked for something invalid" (2) from "jobd could not do it" (1).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every ``jobd`` command."""

    OK = 0
    FAILURE = 1  # the operation ran and failed (a job ended dead, a tenant failed)
    BAD_INPUT = 2  # the request was invalid; nothing was changed
    UNAVAILABLE = 3  # a service jobd needs (store, master, memcached) is unreachable
    NOT_RUNNING = 4  # the master is not running (e.g. `jobd stop` with nothing to stop)
    LEASE_LOST = 5  # the master was declared dead by another master (frozen past its lease) and exited
    TIMED_OUT = 6  # a wait ran out (`jobd trigger --wait --timeout`): the job may still finish later


class JobdError(Exception):
    """Base of every error jobd reports to a person."""

    exit_code: ExitCode = ExitCode.FAILURE


class BadInput(JobdError):
    """The request itself was invalid; nothing was changed."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(BadInput):
    """A config or schedule file is invalid. The message names file, key and reason."""

    def __init__(self, source: str, key: str | None, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")


class UnknownTask(BadInput):
    """A job names a task that is not registered for its daemon."""


class UnknownDaemon(BadInput):
    """A command names a daemon that the config does not define."""


class InvalidArgs(BadInput):
    """Job arguments are not a JSON object (or not JSON at all)."""


class UnknownJob(BadInput):
    """No job has the given id."""


class UnknownBatch(BadInput):
    """No batch has the given id."""


class InvalidTransition(JobdError):
    """A job or worker was asked to move to a state it cannot reach from its current one."""


class PermanentFailure(JobdError):
    """Raised by a task when a retry cannot help: the job ends dead at once, with this message.

    For failures that need a person (a migration step that fails on the
    tenant's data), so the backoff does not retry them into a storm.
    """


class WaitTimedOut(JobdError):
    """A command waited as long as it was told to; what it waited for may still happen."""

    exit_code = ExitCode.TIMED_OUT


class TaskFailed(JobdError):
    """Raised by a task for a failure its message fully explains: the attempt fails (and is
    retried as usual) with this message and no traceback.

    A shell command exiting 2 is such a failure: the operator needs its exit
    code and last output lines, not the Python stack of jobd's runner.
    """


class StoreUnavailable(JobdError):
    """The durable store cannot be reached or is not initialised."""

    exit_code = ExitCode.UNAVAILABLE


class MasterNotRunning(JobdError):
    """No master answers on the control socket."""

    exit_code = ExitCode.NOT_RUNNING


class MasterAlreadyRunning(JobdError):
    """A master is already running with this config (pid file held)."""


class ProtocolError(BadInput):
    """A control-socket request or reply is malformed, oversized or of an unknown version."""


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code the CLI uses for ``error``."""
    if isinstance(error, JobdError):
        return error.exit_code
    return ExitCode.FAILURE
