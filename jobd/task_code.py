"""Importing a daemon's task code: the tasks it serves, by name.

Shared by the inventory (``jobd.inventory``: the CLI, ``jobd.submit`` and the
master's throwaway subprocess) and by workers, which get the same inputs as
plain data (``jobd.workers.settings``) and so need neither the config's
validation nor the schedule parser to find their tasks.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .tasks import TaskDefinition, TaskOptions, definition_for_callable, registered

if TYPE_CHECKING:
    from .shelltask import ShellTaskSpec


def add_python_path(paths: Iterable[object]) -> None:
    """Put the config's ``python_path`` folders first on ``sys.path`` (in their order)."""
    for path in reversed(list(paths)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def import_tasks(source: str, daemon: str, modules: Iterable[str], task_paths: Mapping[str, str]) -> dict[str, TaskDefinition]:
    """The tasks of ``modules`` (their ``@jobd.task`` functions) and of ``task_paths``; ConfigError naming the key."""
    imported = [
        _import(source, f"daemons.{daemon}.modules[{index}]", module_name) for index, module_name in enumerate(modules)
    ]
    module_names = {module.__name__ for module in imported}
    served = {name: definition for name, definition in registered().items() if definition.module in module_names}
    for task_name, path in task_paths.items():
        module_name, _, attribute = path.partition(":")
        module = _import(source, f"daemons.{daemon}.tasks.{task_name}", module_name)
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part, None)
        if not callable(target):
            raise ConfigError(
                source, f"daemons.{daemon}.tasks.{task_name}",
                f"{path!r}: module {module_name!r} has no callable {attribute!r}",
            )
        served[task_name] = definition_for_callable(task_name, target)
    return served


def shell_task_definition(name: str, spec: ShellTaskSpec) -> TaskDefinition:
    """A built-in task that runs an operator-configured command line (never one from job args)."""

    def run_command(ctx: Any) -> dict[str, Any]:
        # Imported here: only a daemon that serves shell tasks loads the runner.
        from .shelltask import ShellTaskStopped, run_shell_task

        try:
            result = run_shell_task(spec, logger=ctx.logger, cancelled=lambda: ctx.cancelled, stopping=lambda: ctx.stopping)
        except ShellTaskStopped:
            ctx.stop_early(save=False)  # back to the queue, attempt given back: the command starts over next time
        return {"exit_code": result.exit_code, "duration": round(result.duration, 3)}

    run_command.__jobd_shell_spec__ = spec  # type: ignore[attr-defined]  # its code identity (jobd.inventory)
    return TaskDefinition(name, run_command, TaskOptions(timeout=(spec.timeout.total_seconds() + 10) if spec.timeout else None))


def _import(source: str, key: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # any import-time failure of user code
        last = traceback.format_exception_only(error)[-1].strip()
        raise ConfigError(source, key, f"cannot import {module_name!r}: {last}") from None
