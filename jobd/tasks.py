"""Task registration: only registered callables can ever run.

A task is a Python callable registered under a name, either with the
``@jobd.task("mailing.send_campaign")`` decorator in a module a daemon lists
under ``modules``, or by a ``name = "package.module:function"`` entry in a
daemon's ``[daemons.NAME.tasks]`` table. Nothing from outside can name
arbitrary code: a job only carries a task *name*, looked up here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .names import TASK_NAME_PATTERN
from .task_signature import ArgsCheck

TaskFunction = Callable[..., Any]


@dataclass(frozen=True)
class TaskOptions:
    """Per-task overrides of the daemon's limits (None: use the daemon's)."""

    timeout: float | None = None
    max_attempts: int | None = None
    cache_ttl: float | None = None


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    function: TaskFunction
    options: TaskOptions = field(default_factory=TaskOptions)

    @property
    def module(self) -> str:
        return str(getattr(self.function, "__module__", ""))

    @cached_property
    def signature(self) -> inspect.Signature:
        """The function's signature, read once: every submit and every attempt checks args against it."""
        return inspect.signature(self.function)

    @cached_property
    def args_check(self) -> ArgsCheck:
        return ArgsCheck(self.signature)

    def check_args(self, args: dict[str, Any]) -> None:
        """Raise ``InvalidArgs`` unless ``args`` fit the function's keyword parameters."""
        self.args_check.check(self.name, args)


_registry: dict[str, TaskDefinition] = {}


def task(
    name: str | None = None,
    *,
    timeout: float | None = None,
    max_attempts: int | None = None,
    cache_ttl: float | None = None,
) -> Callable[[TaskFunction], TaskFunction]:
    """Register the decorated function as a task.

    The function is called as ``function(ctx, **args)``: ``ctx`` is the job's
    ``TaskContext``, ``args`` the job's JSON arguments as keywords::

        @jobd.task("mailing.send_campaign", timeout=3600)
        def send_campaign(ctx, campaign_id: int) -> dict: ...
    """

    def register(function: TaskFunction) -> TaskFunction:
        task_name = name or f"{function.__module__}.{function.__qualname__}"
        if not TASK_NAME_PATTERN.match(task_name):
            raise ValueError(f"{task_name!r} is not a valid task name")
        options = TaskOptions(timeout=timeout, max_attempts=max_attempts, cache_ttl=cache_ttl)
        _registry[task_name] = TaskDefinition(task_name, function, options)
        function.__jobd_task__ = _registry[task_name]  # type: ignore[attr-defined]
        return function

    return register


def registered() -> dict[str, TaskDefinition]:
    """Every task registered so far in this process."""
    return dict(_registry)


def definition_for_callable(name: str, function: TaskFunction) -> TaskDefinition:
    """A definition for a plain callable named in config (keeps decorator options if any)."""
    decorated = getattr(function, "__jobd_task__", None)
    options = decorated.options if isinstance(decorated, TaskDefinition) else TaskOptions()
    return TaskDefinition(name, function, options)
