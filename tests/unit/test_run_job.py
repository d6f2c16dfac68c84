"""How one attempt ends, whatever the task's code raises: ``run_job`` describes it and never raises.

A worker ignores SIGINT and leads its own session, so a ``KeyboardInterrupt``
or a ``SystemExit`` can only come from the task's own code: it fails that
job like any other exception, with its text and traceback, and the worker
goes on to the next job.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from jobd.tasks import definition_for_callable
from jobd.workers import protocol
from jobd.workers.worker import run_job


class Flag:
    is_set = False


def attempt(function: Any) -> protocol.JobFinished:
    tasks = {"t.raises": definition_for_callable("t.raises", function)}
    message = protocol.RunJob(job_id=7, attempt=1, task="t.raises", args={}, checkpoint=None)
    return run_job(message, tasks, "main", None, None, Flag())  # type: ignore[arg-type]


def raise_keyboard_interrupt(ctx: Any) -> None:
    raise KeyboardInterrupt("stop everything")


def call_sys_exit(ctx: Any) -> None:
    sys.exit(3)


def raise_value_error(ctx: Any) -> None:
    raise ValueError("no such customer")


@pytest.mark.parametrize(("function", "error"), [
    (raise_value_error, "ValueError: no such customer"),
    (raise_keyboard_interrupt, "KeyboardInterrupt: stop everything"),
    (call_sys_exit, "SystemExit: 3"),
], ids=["ValueError", "KeyboardInterrupt", "SystemExit"])
def test_whatever_a_task_raises_fails_its_job_with_the_exceptions_text(function: Any, error: str) -> None:
    finished = attempt(function)
    assert (finished.outcome, finished.error, finished.permanent) == ("failed", error, False)
    assert finished.traceback is not None and error.split(":")[0] in finished.traceback
