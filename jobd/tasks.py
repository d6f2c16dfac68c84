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
from .errors import InvalidArgs

TaskFunction = Callable[..., Any]


@dataclass(frozen=True)
class TaskOptions:
    """Per-task overrides of the daemon's limits (None: use the daemon's)."""

    timeout: float | None = None
    max_attempts: int | None = None
    cache_ttl: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "max_attempts": self.max_attempts, "cache_ttl": self.cache_ttl}


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
    def _keywords(self) -> tuple[frozenset[str], frozenset[str], bool, frozenset[str]] | None:
        """(names args may use, names args must give, whether any other name is accepted too,
        names args may never use: the parameter that receives ctx).

        None when the signature is unusual enough (ctx not positional, a
        required positional-only parameter) to leave every check to ``bind``.
        """
        parameters = list(self.signature.parameters.values())
        if not parameters or parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            return None
        rest = parameters[1:] if parameters[0].kind is not inspect.Parameter.VAR_POSITIONAL else parameters
        if any(p.kind is p.POSITIONAL_ONLY and p.default is p.empty for p in rest):
            return None
        by_keyword = [p for p in rest if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return (
            frozenset(p.name for p in by_keyword),
            frozenset(p.name for p in by_keyword if p.default is p.empty),
            any(p.kind is p.VAR_KEYWORD for p in rest),
            frozenset(p.name for p in parameters[:1] if p.kind is p.POSITIONAL_OR_KEYWORD),
        )

    def check_args(self, args: dict[str, Any]) -> None:
        """Raise ``InvalidArgs`` unless ``args`` fit the function's keyword parameters."""
        keywords = self._keywords
        if keywords is not None:
            allowed, required, any_name, taken = keywords
            names = args.keys()
            if (any_name or names <= allowed) and required <= names and taken.isdisjoint(names):
                return  # what Signature.bind accepts, decided with two set comparisons
        try:
            self.signature.bind(None, **args)
        except TypeError as error:
            raise InvalidArgs(f"task {self.name!r} does not accept these args: {error}") from None


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
