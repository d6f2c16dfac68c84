"""Local wall-clock time versus instants, across UTC-offset changes (DST).

``zoneinfo`` answers "what offset applies at this instant" but does not list
transitions. Schedules need them: a wall-clock tick inside a spring-forward
gap has no instant, one inside a fall-back overlap has two. This module finds
the transition instants by probing offsets, which is exact to the second
(every real transition falls on a whole second) and cheap (one probe per day
searched, then a binary search inside the day).

Assumption, true of every zone in the tz database's modern data: two offset
changes are never less than a day apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import floor
from zoneinfo import ZoneInfo

UTC = timezone.utc
_PROBE_STEP_SECONDS = 86_400
#: The longest a fall-back overlap lasts anywhere (real ones are 30 min to 2 h).
_LONGEST_SHIFT = timedelta(hours=3)


def offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    """The zone's UTC offset in force at ``instant`` (an aware datetime)."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def wall_time(instant: datetime, offset: timedelta) -> datetime:
    """The naive wall-clock reading of ``instant`` under ``offset``."""
    return (instant.astimezone(UTC) + offset).replace(tzinfo=None)


def instant_of(wall: datetime, offset: timedelta) -> datetime:
    """The UTC instant at which a clock running at ``offset`` reads ``wall``."""
    return (wall - offset).replace(tzinfo=UTC)


def first_offset_change(zone: ZoneInfo, after: datetime, until: datetime) -> datetime | None:
    """The first instant in ``(after, until]`` whose offset differs from the offset at ``after``."""
    start_offset = offset_at(zone, after)
    low = floor(after.timestamp())  # offset(low) == start_offset: no change lies within a second
    end = floor(until.timestamp())
    while low < end:
        high = min(low + _PROBE_STEP_SECONDS, end)
        if _offset_at_second(zone, high) != start_offset:
            # one change inside (low, high]: find the first second that shows it
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_at_second(zone, middle) != start_offset:
                    high = middle
                else:
                    low = middle
            return datetime.fromtimestamp(high, UTC)
        low = high
    return None


def overlap_end_if_repeating(zone: ZoneInfo, instant: datetime) -> datetime | None:
    """If ``instant`` is the *second* pass through a fall-back overlap, the wall time ending it.

    At a fall-back transition clocks go from, say, 03:00 back to 02:00, so the
    wall times 02:00–02:59 are read twice. For an instant in the second pass
    this returns the naive wall time (03:00) at which wall-clock readings
    become new again; otherwise ``None``.
    """
    earlier = instant - _LONGEST_SHIFT
    change = first_offset_change(zone, earlier, instant)
    if change is None:
        return None
    before, after = offset_at(zone, earlier), offset_at(zone, change)
    overlap_end = wall_time(change, before)
    if after < before and wall_time(instant, after) < overlap_end:
        return overlap_end
    return None


def resolve_wall_time(zone: ZoneInfo, wall: datetime) -> datetime:
    """The instant a once-per-wall-time schedule uses for naive ``wall`` in ``zone``.

    An ordinary wall time has one instant. A repeated one (fall-back) takes
    its first occurrence. A skipped one (spring-forward gap) takes the first
    instant after the gap, i.e. the transition itself — the way cron runs a
    job whose time was skipped as soon as the clock has jumped.
    """
    first = datetime(*wall.timetuple()[:6], wall.microsecond, tzinfo=zone, fold=0)
    second = first.replace(fold=1)
    first_instant, second_instant = first.astimezone(UTC), second.astimezone(UTC)
    exists = first_instant.astimezone(zone).replace(tzinfo=None) == wall
    if exists:
        return min(first_instant, second_instant)
    # In a gap fold=1 uses the later offset, which lands before the transition.
    change = first_offset_change(zone, min(first_instant, second_instant), max(first_instant, second_instant))
    assert change is not None, "a non-existent wall time always lies in a transition gap"
    return change


def _offset_at_second(zone: ZoneInfo, timestamp: int) -> timedelta:
    offset = datetime.fromtimestamp(timestamp, zone).utcoffset()
    assert offset is not None
    return offset
