"""A schedule entry as the rest of jobd sees it, and a schedule: entries keyed by name.

These are validated, immutable values. The file format (and its validation)
lives in ``files``; the trigger arithmetic in ``triggers``; the decisions
about missed ticks and overlaps in ``policy``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from jobd.errors import ConfigError
from jobd.schedules.triggers import Rule
from jobd.shelltask import ShellTaskSpec

#: Task names of shell entries start with this; it cannot clash with a dotted Python path.
SHELL_TASK_PREFIX = "shell:"


class MisfirePolicy(str, Enum):
    """What to do with ticks that passed while no master was ticking."""

    SKIP = "skip"  # fire none of them (a tick due within the grace window still fires)
    RUN_ONCE = "run_once"  # fire one job for all of them: the latest
    CATCH_UP = "catch_up"  # fire each of them, the most recent max_catch_up ones


class OverlapPolicy(str, Enum):
    """What to do when a tick comes while the entry's previous job still runs."""

    FORBID = "forbid"  # skip this tick
    ALLOW = "allow"  # run both
    REPLACE = "replace"  # cancel the running job, then run this one


@dataclass(frozen=True)
class ScheduleEntry:
    """One scheduled task: what to run, when, and how to treat misses and overlaps.

    ``name`` is the entry's stable id: fire keys, persisted last fire times
    and ``jobd pause NAME`` refer to it. ``source``/``line`` say where it was
    declared, for error messages raised after loading (unknown task).
    ``max_attempts`` is carried to every job the entry fires; ``None`` leaves
    the limit to the task or the daemon (a crontab import writes 1: cron
    never retried).
    Two entries are equal when they are defined alike (where they were
    written aside), so a reload can tell changed entries from unchanged ones.
    """

    name: str
    daemon: str
    task: str
    args: Mapping[str, Any]
    rule: Rule
    zone: ZoneInfo
    misfire: MisfirePolicy
    misfire_grace: timedelta
    max_catch_up: int
    overlap: OverlapPolicy
    jitter: timedelta
    enabled: bool
    max_attempts: int | None = None
    shell: ShellTaskSpec | None = None
    source: str = field(default="<memory>", compare=False)
    line: int | None = field(default=None, compare=False)

    @property
    def is_shell(self) -> bool:
        """True for entries running a configured command line instead of a registered task."""
        return self.shell is not None

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


class Schedule(Mapping[str, ScheduleEntry]):
    """An immutable collection of entries keyed by name (names are unique across files)."""

    def __init__(self, entries: Collection[ScheduleEntry] = ()) -> None:
        by_name: dict[str, ScheduleEntry] = {}
        for entry in entries:
            if entry.name in by_name:
                first = by_name[entry.name]
                raise ConfigError(
                    entry.location,
                    f"entry '{entry.name}'",
                    f"the name is already used by an entry in {first.location}; entry names must be unique",
                )
            by_name[entry.name] = entry
        self._entries = MappingProxyType(by_name)

    def __getitem__(self, name: str) -> ScheduleEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Schedule({sorted(self._entries)})"

    def __reduce__(self) -> tuple[type[Schedule], tuple[list[ScheduleEntry]]]:
        """Pickled as its entries (a master is handed its schedule read: ``jobd.checked_config``)."""
        return (Schedule, (list(self._entries.values()),))

    def merged_with(self, other: Schedule) -> Schedule:
        """Both schedules' entries; a name in both is a ``ConfigError``."""
        return Schedule([*self.values(), *other.values()])

    def for_daemon(self, daemon: str) -> list[ScheduleEntry]:
        return [entry for entry in self.values() if entry.daemon == daemon]

    def shell_tasks(self) -> dict[str, tuple[str, ShellTaskSpec]]:
        """The implicit tasks of shell entries: task name → (daemon, spec), to register."""
        return {
            entry.task: (entry.daemon, entry.shell)
            for entry in self.values()
            if entry.shell is not None
        }

    def check_references(self, tasks_by_daemon: Mapping[str, Collection[str]]) -> None:
        """Raise ``ConfigError`` for an entry naming an unknown daemon or task.

        The caller (config loading) passes the configured daemons and the task
        names each serves. Shell entries bring their own task, so only their
        daemon is checked.
        """
        for entry in self.values():
            if entry.daemon not in tasks_by_daemon:
                known = ", ".join(sorted(tasks_by_daemon)) or "none"
                raise ConfigError(
                    entry.location,
                    f"entry '{entry.name}'.daemon",
                    f"no daemon named '{entry.daemon}' is configured (known: {known})",
                )
            if not entry.is_shell and entry.task not in tasks_by_daemon[entry.daemon]:
                raise ConfigError(
                    entry.location,
                    f"entry '{entry.name}'.task",
                    f"daemon '{entry.daemon}' has no task '{entry.task}'; "
                    f"register it or list it under the daemon's tasks",
                )
