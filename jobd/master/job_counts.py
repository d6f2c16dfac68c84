"""Job counts for the live snapshot, read by a thread so the master loop never waits for the scan.

Counting jobs per daemon and state reads the whole jobs table: 30–70 ms
with a million queued on SQLite, during which the loop started nothing. A
job submitted meanwhile waited that long, about once every refresh. Here a
stale count starts one read in a thread (SQLite and MariaDB both let other
threads run meanwhile) and the snapshot shows the previous count until it
is back. ``jobd status`` still asks fresh counts, on the loop: an operator
asked, and waits anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("jobd.master")

Counts = dict[str, dict[str, int]]


class BackgroundCounts:
    def __init__(self, read: Callable[[], Counts], clock: Callable[[], float]) -> None:
        self.read = read
        self.clock = clock
        self.latest: tuple[float, Counts] | None = None  # when read (clock), and the counts
        self._reading: threading.Thread | None = None
        self._lock = threading.Lock()

    def get(self, max_age: float) -> Counts | None:
        """The last counts read; a read in the background starts if they are older than ``max_age`` (None: none yet)."""
        with self._lock:
            latest = self.latest
        if (latest is None or self.clock() - latest[0] > max_age) and (self._reading is None or not self._reading.is_alive()):
            self._reading = threading.Thread(target=self._refresh, name="jobd-job-counts", daemon=True)
            self._reading.start()
        return latest[1] if latest is not None else None

    def store(self, counts: Counts) -> None:
        """Counts read on the loop itself (``jobd status``): the freshest there are."""
        with self._lock:
            self.latest = (self.clock(), counts)

    def _refresh(self) -> None:
        started = self.clock()
        try:
            counts = self.read()
        except Exception:  # the loop finds the store down by itself; the snapshot keeps the last counts
            log.debug("could not count jobs for the live snapshot", exc_info=True)
            return
        with self._lock:
            if self.latest is None or self.latest[0] < started:
                self.latest = (started, counts)
