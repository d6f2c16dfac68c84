"""jobd's cron dialect, compiled onto APScheduler's ``CronTrigger``.

APScheduler does the calendar arithmetic; this module only fixes the three
places where ``CronTrigger.from_crontab`` does not mean what a crontab means:

* **Day-of-week numbering.** Cron counts 0 (or 7) = Sunday; APScheduler 3
  counts 0 = Monday. ``from_crontab("0 9 * * 1")`` fires on *Tuesdays*. We
  expand the weekday field ourselves (numbers, names, ranges, steps, lists)
  and hand APScheduler its own numbers.
* **Day-of-month OR day-of-week.** When both fields are restricted, cron
  fires on days matching *either*; ``CronTrigger`` requires *both*. We
  compile such an expression to two calendars and take the earlier tick.
  A field counts as unrestricted when it starts with ``*`` (so ``*/2`` too):
  that is Vixie cron's and cronie's rule, the crons people migrate from.
* **Seconds.** A 6-field expression has a leading seconds field.

A calendar is evaluated on *naive wall-clock* times (the triggers run in
UTC, which has no DST): turning wall-clock ticks into instants in a real
time zone is the job of ``localtime`` and ``triggers``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where an expression is compiled: a master with no cron entry never loads APScheduler
    from apscheduler.triggers.cron import CronTrigger

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_ITEM = re.compile(r"(?P<first>\*|[0-7]|[a-z]{3})(?:-(?P<last>[0-7]|[a-z]{3}))?(?:/(?P<step>\d+))?")
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class CronCalendar:
    """A compiled cron expression: which naive wall-clock times it names.

    ``every_hour`` is true when the expression matches in all 24 hours of a
    day (``30 * * * *``, ``*/5 * * * *``). Such schedules are periodic
    within the day, and across a DST change they keep to real elapsed time
    (see ``triggers``); schedules pinned to certain hours keep to the wall
    clock instead.
    """

    expression: str
    calendars: tuple[CronTrigger, ...] = field(compare=False)  # derived from the expression
    every_hour: bool = field(compare=False)

    def next_wall_time(self, wall: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first wall-clock time the expression names after ``wall`` (naive).

        With ``inclusive`` a match at ``wall`` itself counts. ``None`` when the
        expression never matches again (e.g. ``0 0 30 2 *``).
        """
        start = wall if inclusive else wall + _ONE_MICROSECOND
        start_utc = start.replace(tzinfo=timezone.utc)
        candidates = [
            fire_time
            for calendar in self.calendars
            if (fire_time := calendar.get_next_fire_time(None, start_utc)) is not None
        ]
        if not candidates:
            return None
        earliest: datetime = min(candidates)
        return earliest.replace(tzinfo=None)


def compile_cron(expression: str) -> CronCalendar:
    """Compile a 5-field (or 6-field, seconds first) cron expression.

    Raises ``ValueError`` naming the offending field; nothing is guessed.
    """
    fields = expression.split()
    if len(fields) == 5:
        second = "0"
        minute, hour, day, month, weekday = fields
    elif len(fields) == 6:
        second, minute, hour, day, month, weekday = fields
    else:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday) "
            f"or 6 with a leading seconds field; got {len(fields)} in {expression!r}"
        )
    from apscheduler.triggers.cron import CronTrigger

    scheduler_weekdays = _weekdays_for_apscheduler(weekday)
    day_restricted = not day.startswith("*")
    weekday_restricted = not weekday.startswith("*")

    def calendar(day_field: str, weekday_field: str) -> CronTrigger:
        try:
            return CronTrigger(
                second=second,
                minute=minute,
                hour=hour,
                day=day_field,
                month=month,
                day_of_week=weekday_field,
                timezone=timezone.utc,
            )
        except ValueError as error:
            raise ValueError(f"invalid cron expression {expression!r}: {error}") from None

    calendars: tuple[CronTrigger, ...]
    if day_restricted and weekday_restricted:
        calendars = (calendar(day, "*"), calendar("*", scheduler_weekdays))
    else:
        calendars = (calendar(day, scheduler_weekdays),)
    if all(_never_matches(trigger) for trigger in calendars):
        raise ValueError(f"cron expression {expression!r} never fires (no such date)")
    hour_field = calendars[0].fields[CronTrigger.FIELD_NAMES.index("hour")]
    every_hour = all(
        hour_field.get_next_value(datetime(2000, 1, 1, hour)) == hour for hour in range(24)
    )
    return CronCalendar(expression=expression, calendars=calendars, every_hour=every_hour)


def _weekdays_for_apscheduler(field: str) -> str:
    """Translate a cron weekday field (0/7 = Sunday) into APScheduler's (0 = Monday)."""
    days: set[int] = set()
    for item in field.lower().split(","):
        match = _WEEKDAY_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(
                f"invalid weekday field {field!r}: use 0-7 (0 and 7 are Sunday), "
                f"sun-sat, ranges, steps and lists"
            )
        first, last, step = match["first"], match["last"], match["step"]
        if first == "*":
            if last is not None:
                raise ValueError(f"invalid weekday field {field!r}: '*' cannot start a range")
            low, high = 0, 6
        else:
            low = _weekday_number(first, field)
            # cronie reads "N/step" as "N-7/step"; a bare N is a single day
            high = _weekday_number(last, field) if last else (7 if step else low)
        if high < low:
            raise ValueError(f"invalid weekday range {item!r} in {field!r}: start after end")
        step_size = int(step) if step else 1
        if step_size < 1:
            raise ValueError(f"invalid weekday field {field!r}: a step must be at least 1")
        days.update(day % 7 for day in range(low, high + 1, step_size))
    if len(days) == 7:
        return "*"
    return ",".join(str((day - 1) % 7) for day in sorted(days))


def _weekday_number(token: str, field: str) -> int:
    if token.isdigit():
        return int(token)
    if token in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(token)
    raise ValueError(f"invalid weekday {token!r} in {field!r}")


def _never_matches(trigger: CronTrigger) -> bool:
    """True for calendars like Feb 30th, which APScheduler would search until year 9999."""
    # Every real date pattern recurs within 28 years (400-year cycles aside,
    # which only matter for Feb 29 on century years); 30 years is enough.
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    first = trigger.get_next_fire_time(None, start)
    return first is None or first > start.replace(year=2030)
