"""Durations as operators write them in config: ``30``, ``"30s"``, ``"5m"``, ``"1h30m"``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds or a string such as ``"1h30m"``.

    Raises ``ValueError`` with a message fit for a config error.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, \"30s\", \"5m\" or \"1h\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            position, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != position:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if position != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration; write e.g. 30, \"30s\", \"5m\", \"1h30m\""
                )
    else:
        raise ValueError("expected a duration such as 30, \"30s\", \"5m\" or \"1h\"")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds
