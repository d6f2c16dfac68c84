"""The master's own entry point: a process that holds the master and none of the CLI.

``jobd start`` checks everything in the operator's terminal (pid file,
config, task imports, store, catalogue) with the command line's libraries
loaded — typer, rich and what they pull in. Then it replaces itself with
this module (``exec``: the same pid, so systemd's main pid, the pid file and
a caller waiting on the process see no difference), handing over the
config as it was checked, with its schedule and task inventory, through an
anonymous file (``jobd.checked_config``). The master then runs in an
interpreter that never imported the CLI, nor pydantic, nor task code: tens
of megabytes less for as long as the host runs.

    python -m jobd.ops.master_main CONFIG [--checked-fd N] [--store-fd N] [--ready-fd N]

Without ``--checked-fd`` it reads CONFIG and runs the preflight itself. ``--store-fd``: the
store's driver arguments (``jobd.store.handover``); without it the master
works them out, loading SQLAlchemy to do so. ``--ready-fd``:
the pipe a detaching ``jobd start`` waits on ("ok", or "error: …").
Errors end the process with the CLI's exit codes and a one-line message.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..checked_config import CheckedConfig, decode_checked
from ..config import load_config
from ..errors import ExitCode, JobdError, exit_code_for
from ..store.diagnosis import describe_store_error
from ..store.errors import is_store_error
from ..store.handover import StoreHandover, decode_handover
from .runner import preflight, run_foreground

def read_handed(fd: int) -> str:
    """What ``runner.exec_master`` wrote to the file ``fd`` (read from its start; closed after)."""
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        handle.seek(0)
        return handle.read()


def read_checked(fd: int) -> CheckedConfig:
    """The checked config ``runner.exec_master`` wrote to the file ``fd``."""
    return decode_checked(read_handed(fd))


def read_store(fd: int) -> StoreHandover:
    """The store handover ``runner.exec_master`` wrote to the file ``fd``."""
    try:
        return decode_handover(read_handed(fd))
    except ValueError as error:
        raise JobdError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobd.ops.master_main", description="Run a jobd master in this process.")
    parser.add_argument("config", help="the jobd.toml to run")
    parser.add_argument("--checked-fd", type=int, help="a file holding the checked config, schedule and tasks (from jobd start)")
    parser.add_argument("--store-fd", type=int, help="a file holding the store's driver arguments (from jobd start)")
    parser.add_argument("--ready-fd", type=int, help="a pipe to say 'ok' or 'error: …' on once the master is up")
    options = parser.parse_args(argv)
    try:
        store = read_store(options.store_fd) if options.store_fd is not None else None  # refused before anything is done
        if options.checked_fd is not None:
            checked = read_checked(options.checked_fd)  # checked by jobd start: no pydantic, no task code here
        else:
            checked = preflight(load_config(options.config))
    except Exception as error:
        return _failed(error, options.ready_fd)
    try:
        return run_foreground(checked, ready_fd=options.ready_fd, store=store)  # it answers on the ready pipe itself
    except Exception as error:
        return _failed(error, None)


def _failed(error: Exception, ready_fd: int | None) -> int:
    """Say why the master did not run where its starter looks (stderr, the ready pipe); the CLI's exit code.

    Only jobd's own errors and the store's are answered so; anything else is a bug, raised as it is.
    """
    if not isinstance(error, JobdError) and not is_store_error(error):
        raise error
    if isinstance(error, JobdError):
        message, code = str(error), exit_code_for(error)
    else:
        message, code = describe_store_error(error), ExitCode.UNAVAILABLE
    sys.stderr.write(f"error: {message}\n")
    if ready_fd is not None:
        try:
            os.write(ready_fd, f"error: {message}\n".encode())
            os.close(ready_fd)
        except OSError:
            pass  # the starter is gone
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
