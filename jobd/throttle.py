"""A rate limiter over an injected clock: "at most once per interval"."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """``ready()`` is True at most once per ``interval`` seconds of ``clock``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False
