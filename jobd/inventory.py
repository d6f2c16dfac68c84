"""Which tasks each daemon serves, found by importing its task code.

Workers and the CLI import task modules in-process. The master never runs
task code, not even a module's top level, so it is given the inventory a
short-lived subprocess worked out (``jobd.checked_config``), which also
proves every task path imports before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .config import JobdConfig, load_schedule
from .config_checks import as_json_data
from .errors import UnknownTask
from .migrations.task import MIGRATE_TASK, migrate_task_definition
from .schedules import Schedule
from .task_code import add_python_path as add_paths, import_tasks, shell_task_definition
from .task_signature import ParameterData, signature_to_data
from .tasks import TaskDefinition, TaskOptions


@dataclass(frozen=True)
class TaskInfo:
    """What the master, and an application submitting, need to know of a task without importing it.

    ``parameters`` is the task's signature as data (``jobd.task_signature``;
    None if Python cannot read it), ``code`` names the code that runs it: its
    module, function and a digest of the module's source, or a shell task's spec.
    """

    name: str
    options: TaskOptions
    parameters: list[ParameterData] | None = None
    code: str = ""

    @classmethod
    def of(cls, definition: TaskDefinition) -> TaskInfo:
        try:
            parameters: list[ParameterData] | None = signature_to_data(definition.signature)
        except (TypeError, ValueError):  # a callable Python has no signature for: the worker's bind decides
            parameters = None
        return cls(definition.name, definition.options, parameters, code_identity(definition))


Inventory = dict[str, dict[str, TaskInfo]]  # daemon → task name → info


def add_python_path(config: JobdConfig) -> None:
    add_paths(config.python_path)


def load_daemon_tasks(config: JobdConfig, daemon: str, schedule: Schedule | None = None) -> dict[str, TaskDefinition]:
    """Import a daemon's task code and return its tasks by name; ConfigError if it fails."""
    add_python_path(config)
    settings = config.daemon(daemon)
    served = import_tasks(str(config.source), daemon, settings.modules, settings.tasks)
    for task_name, spec in settings.shell.items():
        served[task_name] = shell_task_definition(task_name, spec)
    schedule = load_schedule(config) if schedule is None else schedule
    for task_name, (shell_daemon, spec) in schedule.shell_tasks().items():
        if shell_daemon == daemon and spec is not None:
            served[task_name] = shell_task_definition(task_name, spec)
    if config.migrations is not None and config.migrations.daemon == daemon:
        served[MIGRATE_TASK] = migrate_task_definition(config)
    return served


def code_identity(definition: TaskDefinition) -> str:
    """What a task runs, as a short string that changes when its code does: module, function, source digest."""
    spec = getattr(definition.function, "__jobd_shell_spec__", None)
    if spec is not None:
        return "shell:" + _digest(json.dumps(as_json_data(spec)).encode())
    module = sys.modules.get(definition.module)
    where = f"{definition.module}:{getattr(definition.function, '__qualname__', '')}"
    path = getattr(module, "__file__", None)
    source = _file_digest(str(path)) if path else None
    return f"{where}:{source}" if source else where


@lru_cache(maxsize=1024)
def _file_digest(path: str) -> str | None:
    """A module's source digest, read once per inventory process however many tasks the module holds."""
    try:
        return _digest(Path(path).read_bytes())
    except OSError:
        return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def load_inventory(config: JobdConfig, schedule: Schedule | None = None) -> Inventory:
    """The inventory of every daemon, importing task code in this process.

    Also proves every schedule entry names a task its daemon serves
    (``schedule``: the config's, if already read).
    """
    schedule = load_schedule(config) if schedule is None else schedule  # read once, not once per daemon
    inventory = {
        daemon: {name: TaskInfo.of(definition) for name, definition in load_daemon_tasks(config, daemon, schedule).items()}
        for daemon in config.daemons
    }
    schedule.check_references({daemon: set(tasks) for daemon, tasks in inventory.items()})
    return inventory


def require_task(inventory: Inventory, daemon: str, task: str) -> TaskInfo:
    """The task's info, or ``UnknownTask`` naming what the daemon does serve."""
    tasks = inventory.get(daemon, {})
    if task not in tasks:
        known = ", ".join(sorted(tasks)) or "none"
        raise UnknownTask(f"daemon {daemon!r} has no task {task!r} (its tasks: {known})")
    return tasks[task]
