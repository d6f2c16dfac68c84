"""Which tasks each daemon serves, found by importing its task code.

Workers and the CLI import task modules in-process. The master never runs
task code, not even a module's top level, so it asks a short-lived
subprocess for the same inventory (``python -m jobd.inventory CONFIG``),
which also proves every task path imports before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import JobdConfig, load_config, load_schedule
from .config_checks import as_json_data
from .errors import ConfigError, UnknownTask
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

    def to_dict(self) -> dict[str, Any]:
        return {"options": self.options.to_dict(), "parameters": self.parameters, "code": self.code}

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> TaskInfo:
        return cls(name, TaskOptions(**data["options"]), data["parameters"], data["code"])

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


def load_inventory(config: JobdConfig) -> Inventory:
    """The inventory of every daemon, importing task code in this process.

    Also proves every schedule entry names a task its daemon serves.
    """
    schedule = load_schedule(config)  # read the schedule files once, not once per daemon
    inventory = {
        daemon: {name: TaskInfo.of(definition) for name, definition in load_daemon_tasks(config, daemon, schedule).items()}
        for daemon in config.daemons
    }
    schedule.check_references({daemon: set(tasks) for daemon, tasks in inventory.items()})
    return inventory


def inventory_in_subprocess(config_path: Path, timeout: float = 120.0) -> Inventory:
    """The inventory, computed by importing task code in a throwaway interpreter."""
    completed = subprocess.run(
        [sys.executable, "-m", "jobd.inventory", str(config_path)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if completed.returncode != 0:
        try:
            problem = json.loads(_last_line(completed.stdout))
        except ValueError:
            raise ConfigError(str(config_path), None, f"task code failed to load: {completed.stderr.strip()[-2000:]}") from None
        raise ConfigError(problem["source"], problem["key"], problem["reason"])
    return decode_inventory(_last_line(completed.stdout))


def encode_inventory(inventory: Inventory) -> str:
    """The inventory as JSON text, for another process of this jobd (``decode_inventory``)."""
    return json.dumps({daemon: {name: info.to_dict() for name, info in tasks.items()} for daemon, tasks in inventory.items()})


def decode_inventory(text: str) -> Inventory:
    data = json.loads(text)
    return {daemon: {name: TaskInfo.from_dict(name, info) for name, info in tasks.items()} for daemon, tasks in data.items()}


def require_task(inventory: Inventory, daemon: str, task: str) -> TaskInfo:
    """The task's info, or ``UnknownTask`` naming what the daemon does serve."""
    tasks = inventory.get(daemon, {})
    if task not in tasks:
        known = ", ".join(sorted(tasks)) or "none"
        raise UnknownTask(f"daemon {daemon!r} has no task {task!r} (its tasks: {known})")
    return tasks[task]


def _main(argv: list[str]) -> int:
    try:
        config = load_config(argv[1])
        inventory = load_inventory(config)
    except ConfigError as error:
        print(json.dumps({"source": error.source, "key": error.key, "reason": error.reason}))
        return 2
    print(encode_inventory(inventory))
    return 0


def _last_line(output: str) -> str:
    """The JSON answer is the last line: task modules may print while they import."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else ""


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
