"""When an entry fires: pure functions from a trigger and an instant to UTC instants.

APScheduler 3 triggers do the calendar and interval arithmetic. Around them
this module pins down what APScheduler leaves loose (verified against 3.11):

* **Cron across DST.** APScheduler fires a daily ``30 2 * * *`` twice on a
  fall-back night (02:30 summer time and 02:30 winter time) and, on a
  spring-forward night, returns the non-existent 02:30 as an instant that
  is really 03:30. jobd instead evaluates cron expressions on wall-clock
  time and resolves ticks explicitly:

  - an expression pinned to certain hours (``30 2 * * *``, ``0 */6 * * *``)
    fires **once per wall-clock tick**: a repeated tick fires at its first
    occurrence only; a skipped tick fires once at the first instant after
    the gap (the transition; several skipped ticks collapse into that one);
  - an expression that matches in every hour (``30 * * * *``,
    ``*/5 * * * *``) fires at **every instant whose local reading
    matches**: it keeps running through the repeated hour and simply has no
    ticks in the skipped one. This is how Vixie cron treats wildcard jobs;
    firing such a schedule "once per wall time" would stop a minutely job
    for a whole hour every autumn.

* **Intervals** (``every``) are elapsed time, anchored at the Unix epoch:
  ``every = "5m"`` fires at :00, :05, … UTC on every host and after every
  restart (APScheduler's default anchor is "now", which would make fire
  times — and so fire keys — differ between masters).
* **Results** are always timezone-aware UTC; arguments must be aware.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from jobd.schedules.cron import CronCalendar, compile_cron
from jobd.schedules.localtime import (
    UTC,
    first_offset_change,
    instant_of,
    offset_at,
    overlap_end_if_repeating,
    resolve_wall_time,
    wall_time,
)

if TYPE_CHECKING:  # APScheduler is imported where a rule is built (reading a schedule), or arrives with a
    # schedule already read (a master's): a master whose schedule is empty never loads it.
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from jobd.schedules.entry import ScheduleEntry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
#: Transitions a single search may cross; far more than any year holds.
_MAX_TRANSITIONS_PER_SEARCH = 64


@dataclass(frozen=True)
class CronRule:
    """Fire on the wall-clock times a cron expression names, in the entry's zone."""

    calendar: CronCalendar

    def describe(self) -> str:
        return f"cron {self.calendar.expression!r}"


@dataclass(frozen=True)
class EveryRule:
    """Fire every ``interval`` of elapsed time, on a grid anchored at the Unix epoch."""

    interval: timedelta
    trigger: IntervalTrigger = field(compare=False)  # derived from the interval

    def describe(self) -> str:
        from jobd.durations import format_duration

        return f"every {format_duration(self.interval)}"


@dataclass(frozen=True)
class AtRule:
    """Fire once, at ``instant`` (UTC)."""

    instant: datetime
    trigger: DateTrigger = field(compare=False)  # derived from the instant

    def describe(self) -> str:
        return f"at {self.instant.isoformat()}"


Rule = CronRule | EveryRule | AtRule


class RandomSource(Protocol):
    """What ``apply_jitter`` needs from a random generator (``random.Random`` fits)."""

    def random(self) -> float: ...


def cron_rule(expression: str) -> CronRule:
    """Compile a cron expression (``ValueError`` if invalid)."""
    return CronRule(compile_cron(expression))


def every_rule(interval: timedelta) -> EveryRule:
    """An interval rule; ``interval`` must be a positive whole number of seconds."""
    if interval <= timedelta(0) or interval % _ONE_SECOND:
        raise ValueError(f"an interval must be a positive whole number of seconds, got {interval}")
    from apscheduler.triggers.interval import IntervalTrigger

    trigger = IntervalTrigger(seconds=int(interval.total_seconds()), start_date=_EPOCH, timezone=UTC)
    return EveryRule(interval=interval, trigger=trigger)


def at_rule(moment: datetime, zone: ZoneInfo) -> AtRule:
    """A one-off rule. A naive ``moment`` is wall-clock time in ``zone``.

    A naive time in a DST gap or overlap resolves like a cron tick does:
    first instant after the gap, first of the two occurrences.
    """
    from apscheduler.triggers.date import DateTrigger

    instant = moment.astimezone(UTC) if moment.tzinfo else resolve_wall_time(zone, moment)
    return AtRule(instant=instant, trigger=DateTrigger(run_date=instant, timezone=UTC))


def next_fire_time(entry: ScheduleEntry, after: datetime) -> datetime | None:
    """The entry's first tick strictly after ``after``, in UTC; ``None`` if it never fires again."""
    _require_aware(after, "after")
    rule = entry.rule
    if isinstance(rule, CronRule):
        return _next_cron_tick(rule.calendar, entry.zone, after.astimezone(UTC))
    if isinstance(rule, EveryRule):
        # Ticks lie on whole seconds: the next one after `after` is the first
        # one at or after the next whole second, which keeps APScheduler's
        # float arithmetic on exact integers.
        probe = _EPOCH + timedelta(seconds=int((after - _EPOCH) // _ONE_SECOND) + 1)
        fire_time = rule.trigger.get_next_fire_time(None, probe)
        return fire_time.astimezone(UTC) if fire_time else None
    return rule.instant if rule.instant > after else None


def fire_times_between(
    entry: ScheduleEntry, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """The entry's ticks in ``(start, end]``, oldest first, at most ``limit`` of them."""
    _require_aware(end, "end")
    ticks: list[datetime] = []
    for tick in _ticks_after(entry, start):
        if tick > end or len(ticks) >= limit:
            break
        ticks.append(tick)
    return ticks


def next_fire_times(entry: ScheduleEntry, now: datetime, count: int = 3) -> list[datetime]:
    """The entry's next ``count`` ticks after ``now`` (for ``jobd schedules``)."""
    ticks: list[datetime] = []
    for tick in _ticks_after(entry, now):
        if len(ticks) >= count:
            break
        ticks.append(tick)
    return ticks


def previous_fire_time(
    entry: ScheduleEntry, at_or_before: datetime, *, after: datetime
) -> datetime | None:
    """The entry's latest tick in ``(after, at_or_before]``, or ``None``.

    APScheduler only searches forward, so this searches backward with the
    forward function: gallop back from ``at_or_before`` until a window holds
    a tick, then bisect on the window's start (``next_fire_time`` is monotone
    in its argument). Costs about ``2·log2(distance in µs)`` forward searches.
    """
    _require_aware(at_or_before, "at_or_before")
    first = next_fire_time(entry, after)
    if first is None or first > at_or_before:
        return None
    # Find a window start `low` with a tick in (low, at_or_before].
    high = at_or_before  # invariant: no tick in (high, at_or_before] is earlier than the answer
    span = _ONE_SECOND
    while True:
        low = max(after, at_or_before - span)
        tick = next_fire_time(entry, low)
        if tick is not None and tick <= at_or_before:
            break
        high, span = low, span * 2
    # Bisect for the largest start whose next tick is still <= at_or_before.
    while high - low > _ONE_MICROSECOND:
        middle = low + (high - low) / 2
        candidate = next_fire_time(entry, middle)
        if candidate is not None and candidate <= at_or_before:
            low, tick = middle, candidate
        else:
            high = middle
    return tick


def apply_jitter(fire_time: datetime, jitter_seconds: float, rng: RandomSource) -> datetime:
    """Delay ``fire_time`` by a uniform random amount in ``[0, jitter_seconds)``.

    Jitter moves when the job may run (its ``run_at``), never which tick it
    belongs to: the fire key is computed from the un-jittered tick.
    """
    if jitter_seconds <= 0:
        return fire_time
    return fire_time + timedelta(seconds=jitter_seconds * rng.random())


def _ticks_after(entry: ScheduleEntry, start: datetime) -> Iterator[datetime]:
    tick = next_fire_time(entry, start)
    while tick is not None:
        yield tick
        tick = next_fire_time(entry, tick)


def _next_cron_tick(calendar: CronCalendar, zone: ZoneInfo, after: datetime) -> datetime | None:
    """Walk the zone's constant-offset segments from ``after`` to the next tick.

    Within a segment a wall time maps to one instant by a fixed shift. At a
    transition the walk continues in the next segment from the wall time
    where that segment's readings start to count: the gap's end for
    spring-forward; for fall-back, the start of the repeated range
    (every-hour schedules) or its end (once-per-wall-time schedules).
    """
    once_per_wall_time = not calendar.every_hour
    offset = offset_at(zone, after)
    lower = wall_time(after, offset)
    inclusive = False
    if once_per_wall_time:
        overlap_end = overlap_end_if_repeating(zone, after)
        if overlap_end is not None:  # the repeated wall times already had their first occurrence
            lower, inclusive = overlap_end, True
    for _ in range(_MAX_TRANSITIONS_PER_SEARCH):
        wall = calendar.next_wall_time(lower, inclusive=inclusive)
        if wall is None:
            return None
        candidate = instant_of(wall, offset)
        change = first_offset_change(zone, after, candidate)
        if change is None:
            return candidate
        new_offset = offset_at(zone, change)
        if new_offset > offset:  # spring forward: wall times [change+offset, change+new_offset) never happen
            if once_per_wall_time and wall < wall_time(change, new_offset):
                return change
            lower = wall_time(change, new_offset)
        else:  # fall back: wall times [change+new_offset, change+offset) happen again
            lower = wall_time(change, new_offset if calendar.every_hour else offset)
        inclusive = True
        after, offset = change, new_offset
    raise RuntimeError(f"no tick found for {calendar.expression!r} within {_MAX_TRANSITIONS_PER_SEARCH} offset changes")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
