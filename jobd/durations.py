"""Durations as operators write them, in jobd.toml and in schedule files alike.

One grammar everywhere, so a value that works in one file works in the
other:

* a number is seconds: ``30``, ``2.5``, or the same as a string (``"30"``);
* otherwise parts of a number and a unit, largest unit first, each unit at
  most once, spaces between parts allowed: ``"250ms"``, ``"30s"``, ``"5m"``,
  ``"1h30m"``, ``"1h 30m"``, ``"2d"``. Units are ``d h m s ms`` in any case
  (``"1H"`` is an hour).

Schedule files add one rule on top (``whole_seconds``): ticks live on
cron's one-second grid, so a sub-second interval would promise a precision
jobd does not deliver.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

#: Units from the largest; a string's parts must follow this order.
_UNIT_SECONDS = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)\s*", re.IGNORECASE)

#: The grammar in a sentence, for every error message and the docs.
GRAMMAR = 'a number of seconds (30) or parts with units d, h, m, s, ms like "90s", "5m" or "1h 30m"'


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (see the module's grammar); ``ValueError`` otherwise.

    The message names the value once and states the grammar, so callers
    pass it on as it is (they must not append the value again).
    """
    seconds = _seconds(value)
    if seconds is None:
        raise ValueError(f"{_shown(value)} is not a duration: expected {GRAMMAR}")
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{_shown(value)} is not a duration: it must be zero or more seconds")
    return seconds


def parse_whole_seconds(value: object, *, allow_zero: bool = True) -> timedelta:
    """``parse_duration`` for schedule files: whole seconds only, and optionally not zero."""
    seconds = parse_duration(value)
    if seconds != int(seconds):
        raise ValueError(f"{_shown(value)} is not a whole number of seconds: schedules tick on a one-second grid")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"{_shown(value)}: the duration must be more than zero")
    return timedelta(seconds=int(seconds))


def format_duration(duration: timedelta) -> str:
    """The shortest form ``parse_duration`` reads back, for whole seconds: 5400 s → ``"1h30m"``."""
    remaining = int(duration.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, remaining = divmod(remaining, int(_UNIT_SECONDS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):  # bool is an int subclass: `timeout = true` is a mistake
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    if not text:
        return None
    units = list(_UNIT_SECONDS)
    total, position, previous = 0.0, 0, -1
    for match in _PART.finditer(text):
        rank = units.index(match[2].lower())
        if match.start() != position or rank <= previous:
            return None  # a gap of garbage, a repeated unit, or units out of order
        total += float(match[1]) * _UNIT_SECONDS[units[rank]]
        position, previous = match.end(), rank
    return total if position == len(text) else None


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
