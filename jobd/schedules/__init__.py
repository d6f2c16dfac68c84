"""Schedules that replace cron: entries, triggers, misfire/overlap policies, crontab import.

Everything here is pure: no clock is read, no file is written (``files``
reads the schedule files it is given). The master wires it to the store:

* ``load_schedule_files`` / ``parse_schedule_table`` → a ``Schedule``
  (then ``Schedule.check_references`` against the configured daemons/tasks);
* every loop, per entry: ``plan_ticks(entry, last_fire, now)`` → insert one
  job per tick with ``fire_key`` unique, ``run_at = apply_jitter(tick, …)``,
  after ``overlap_decision``; persist ``plan.cursor`` in the same transaction;
* ``next_fire_times`` for ``jobd schedules``; ``import_crontab`` for
  ``jobd schedules import``.
"""

from typing import TYPE_CHECKING, Any

from jobd.schedules.entry import MisfirePolicy, OverlapPolicy, Schedule, ScheduleEntry
from jobd.schedules.policy import TickPlan, fire_key, overlap_decision, plan_ticks, ticks_to_fire
from jobd.schedules.triggers import (
    apply_jitter,
    fire_times_between,
    next_fire_time,
    next_fire_times,
    previous_fire_time,
)

if TYPE_CHECKING:
    from jobd.schedules.crontab import ImportResult, UnconvertedLine, import_crontab
    from jobd.schedules.files import load_schedule_files, parse_schedule_table, parse_schedule_text

#: Names read from a module only when asked for: reading files and crontabs validates with
#: pydantic, which a master, handed its schedule already read, never loads.
_ON_DEMAND = {
    "ImportResult": "crontab", "UnconvertedLine": "crontab", "import_crontab": "crontab",
    "load_schedule_files": "files", "parse_schedule_table": "files", "parse_schedule_text": "files",
}


def __getattr__(name: str) -> Any:
    module = _ON_DEMAND.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ImportResult",
    "MisfirePolicy",
    "OverlapPolicy",
    "Schedule",
    "ScheduleEntry",
    "TickPlan",
    "UnconvertedLine",
    "apply_jitter",
    "fire_key",
    "fire_times_between",
    "import_crontab",
    "load_schedule_files",
    "next_fire_time",
    "next_fire_times",
    "overlap_decision",
    "parse_schedule_table",
    "parse_schedule_text",
    "plan_ticks",
    "previous_fire_time",
    "ticks_to_fire",
]
