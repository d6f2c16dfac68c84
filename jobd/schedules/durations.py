"""Durations as operators write them in schedule files: ``"30s"``, ``"5m"``, ``"1h30m"``.

Whole seconds only: ticks live on a one-second grid (cron's resolution), so
sub-second intervals would promise a precision jobd does not deliver. A bare
integer is read as seconds so that ``jitter = 0`` reads naturally.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (86_400, 3_600, 60, 1)


def parse_duration(value: str | int, *, allow_zero: bool = True) -> timedelta:
    """Parse ``"1d2h30m15s"`` (units in that order, each optional) or an int of seconds.

    Raises ``ValueError`` with a message fit for an operator: negative values,
    unknown units and an empty string are refused rather than guessed at.
    """
    if isinstance(value, bool):  # bool is an int subclass: `jitter = true` is a mistake
        raise ValueError(f"expected a duration like '30s' or '1h30m', got {value!r}")
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip().lower()
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            hint = " (durations cannot be negative)" if text.startswith("-") else ""
            raise ValueError(
                f"expected a duration like '30s', '5m', '1h30m' or '2d', got {value!r}{hint}"
            )
        seconds = sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_SECONDS) if part)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"the duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """The inverse of ``parse_duration`` for whole seconds: ``5400 s`` → ``"1h30m"``."""
    remaining = int(duration.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit_seconds, unit in zip(_UNIT_SECONDS, "dhms"):
        count, remaining = divmod(remaining, unit_seconds)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
