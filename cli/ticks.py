"""How a schedule tick reads on screen: in its entry's own time zone, labelled, with the year when it matters.

A schedule entry says ``Europe/Warsaw``: its ticks are shown on that wall
clock (``05:00 CET``), never silently in the host's zone. The date is
dropped for a tick later today, the year for a tick later this year, so a
yearly entry reads ``2027-01-01 05:00 CET`` and its three next ticks differ
(they would all read ``01-01 05:00`` without years). Pure: ``now`` is an
argument, so tests pin it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def tick_label(epoch: float, zone: str | None, now: float) -> str:
    """``epoch`` on ``zone``'s wall clock with the zone's abbreviation; the host's zone when ``zone`` is unset.

    ``HH:MM`` (``HH:MM:SS`` when the seconds are not zero) alone for today,
    ``MM-DD HH:MM`` later this year, ``YYYY-MM-DD HH:MM`` otherwise; "today"
    and "this year" are those of ``now`` in the same zone.
    """
    tz = _zone(zone)
    moment = dt.datetime.fromtimestamp(epoch, tz)
    today = dt.datetime.fromtimestamp(now, tz)
    clock = "%H:%M" if moment.second == 0 else "%H:%M:%S"
    if moment.date() == today.date():
        shape = clock
    elif moment.year == today.year:
        shape = f"%m-%d {clock}"
    else:
        shape = f"%Y-%m-%d {clock}"
    return f"{moment.strftime(shape)} {moment.strftime('%Z') or _offset(moment)}"


def _zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return dt.datetime.now().astimezone().tzinfo  # the host's zone, labelled like any other
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone.utc


def _offset(moment: dt.datetime) -> str:
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
