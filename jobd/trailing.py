"""A throttle with a trailing edge, and the one timer thread per process that fires it.

``ctx.progress`` is throttled to one report per interval. A plain throttle
drops what comes inside the window, so a task that reports and then blocks
(a long network call) leaves a stale report on display until its next call,
maybe for minutes. ``TrailingThrottle`` keeps the latest report of the
window instead and hands it out once the window ends: still at most one
report per interval (the write volume is bounded as before), but the last
one is never lost. It is pure (``now`` is an argument); ``Flusher`` is the
I/O part, a single daemon thread per process that calls back at a deadline,
so no job needs a thread of its own.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TrailingThrottle(Generic[T]):
    """At most one item per ``interval``; the latest one held back is due when the window ends."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None  # when the last item went out
        self._pending: T | None = None
        self._closed = False

    def offer(self, item: T, now: float, *, force: bool = False) -> T | None:
        """The item to send now (this one), or None: it is kept until ``due`` (replacing an older one)."""
        if self._closed:
            return None
        if force or self._last is None or now >= self._last + self.interval:
            self._last, self._pending = now, None
            return item
        self._pending = item
        return None

    def due(self, now: float) -> T | None:
        """The held-back item if its window has ended (it goes out now), else None."""
        if self._pending is None or self._closed or self._last is None or now < self._last + self.interval:
            return None
        item, self._pending, self._last = self._pending, None, now
        return item

    def next_due(self) -> float | None:
        """When the held-back item is due (``due`` agrees exactly), or None if nothing is held back."""
        if self._pending is None or self._closed or self._last is None:
            return None
        return self._last + self.interval

    def close(self) -> None:
        """The job ended: drop what is held back, and take nothing more."""
        self._closed, self._pending = True, None


class Flusher:
    """One daemon thread that runs callbacks after a delay (a process's trailing edges)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._queue, (time.monotonic() + max(0.0, delay), next(self._order), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jobd-progress-flusher", daemon=True)
                self._thread.start()
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    self._lock.wait(None if not self._queue else self._queue[0][0] - time.monotonic())
                _when, _order, callback = heapq.heappop(self._queue)
            try:
                callback()  # outside the lock: a callback may schedule again
            except Exception:  # a callback's failure must not end the process's flushing
                pass


_process_flusher: tuple[int, Flusher] | None = None


def process_flusher() -> Flusher:
    """This process's flusher, started on first use (a forked child gets its own)."""
    global _process_flusher
    if _process_flusher is None or _process_flusher[0] != os.getpid():
        _process_flusher = (os.getpid(), Flusher())
    return _process_flusher[1]
