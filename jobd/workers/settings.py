"""What a worker is told when it starts: plain data, worked out by the master from its config.

A worker used to be given the whole ``JobdConfig`` and to find its tasks the
way the CLI does, so unpickling its start-up arguments loaded pydantic and
the config's validation, and finding its tasks loaded the schedule parser,
APScheduler and SQLAlchemy: tens of megabytes of every worker's own memory
that no task used. ``WorkerSettings`` carries only what a worker reads —
already validated by the master — and ``load_tasks`` imports the task code
from it (``jobd.task_code``, the same code the inventory runs). Only a
daemon that serves tasks needing more (shell commands, the migrations
runner) makes its workers load it. A shell task's spec is a plain
dataclass too (``jobd.shelltask``): such a daemon's workers load no pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cpu_policy import workers_set_normal_policy
from ..output_caps import OutputCaps
from ..store.driver_sql import DriverTarget
from ..task_code import add_python_path, import_tasks, shell_task_definition
from ..tasks import TaskDefinition

if TYPE_CHECKING:
    from ..config import JobdConfig
    from ..schedules import Schedule


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker reads at start; pickled once at spawn."""

    daemon: str
    owner: str  # the master's id: a submit's job is run only if the store says it is this master's
    store: DriverTarget
    store_url: str  # display only; the worker connects through ``store``
    socket: Path  # the master's control socket: the ledger's and the hand-off socket's folder
    log_level: str
    caps: OutputCaps
    memcached: tuple[str, ...]
    source: str  # the config file, for errors naming it
    python_path: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    task_paths: dict[str, str] = field(default_factory=dict)
    shell_tasks: dict[str, Any] = field(default_factory=dict)  # task name → ShellTaskSpec
    migrations_config: JobdConfig | None = None  # only for the daemon that runs tenant migrations
    problem: str | None = None  # the config could not be turned into settings: the worker reports it and exits
    normal_cpu_policy: bool = False  # the master put itself under SCHED_BATCH: the worker sets the normal policy back
    log_channel: Connection | None = None  # this worker's own pipe for log records; set by the launcher


def settings_for(
    config: JobdConfig, daemon: str, owner: str, schedule: Schedule, store: DriverTarget,
) -> WorkerSettings:
    """The settings of ``daemon``'s workers under ``config`` (called by the master, which has it loaded)."""
    settings = config.daemon(daemon)
    shell = dict(settings.shell)
    for task_name, (shell_daemon, spec) in schedule.shell_tasks().items():
        if shell_daemon == daemon and spec is not None:
            shell[task_name] = spec
    migrations = config.migrations is not None and config.migrations.daemon == daemon
    return WorkerSettings(
        daemon=daemon, owner=owner, store=store, store_url=config.store, socket=config.socket,
        log_level=config.log_level, caps=config.output_caps(daemon), memcached=tuple(config.memcached),
        source=str(config.source), python_path=tuple(str(path) for path in config.python_path),
        modules=tuple(settings.modules), task_paths=dict(settings.tasks), shell_tasks=shell,
        migrations_config=config if migrations else None, normal_cpu_policy=workers_set_normal_policy(),
    )


def load_tasks(settings: WorkerSettings) -> dict[str, TaskDefinition]:
    """Import the daemon's task code and return its tasks by name; ConfigError if it fails."""
    add_python_path(settings.python_path)
    served = import_tasks(settings.source, settings.daemon, settings.modules, settings.task_paths)
    for task_name, spec in settings.shell_tasks.items():
        served[task_name] = shell_task_definition(task_name, spec)
    if settings.migrations_config is not None:
        from ..migrations.task import MIGRATE_TASK, migrate_task_definition  # the runner needs the store engine

        served[MIGRATE_TASK] = migrate_task_definition(settings.migrations_config)
    return served
