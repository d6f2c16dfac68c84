"""The master's side of activity: events, counters and its status snapshot.

The master learns of every job start and end, so it records the events
ring and the throughput counters; workers write their jobs' progress to
memcached themselves (``activity.progress``). Writes to memcached are
batched: events and counters accumulate and are flushed with the status
snapshot once a second (sooner after a job started or ended, at most every
0.25 s), so a master finishing a thousand jobs a second still makes a
handful of memcached calls per second. The master's own ``MemoryActivity``
gets everything at once: it is what the control socket serves.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .. import defaults
from ..job import Job
from .base import Activity, Record, bucket_of
from .history import QueuedRing
from .memory import MemoryActivity
from .results import cache_record, result_key
from .view import read_view


def progress_record(
    *, job_id: int, daemon: str, task: str, attempt: int, progress: dict[str, Any], worker_pid: int, host: str
) -> Record:
    """A running job's progress as stored in the activity store (same shape from every writer)."""
    return {
        "job_id": job_id, "daemon": daemon, "task": task, "attempt": attempt,
        "worker_pid": worker_pid, "host": host, **progress,
    }


class ActivityRecorder:
    """Feeds the master's local activity and, if configured, the shared one (memcached)."""

    def __init__(
        self,
        master_id: str,
        shared: Activity | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.master_id = master_id
        self.local = MemoryActivity(wall_clock)
        self.shared = shared
        self.clock = clock
        self.wall_clock = wall_clock
        self.host = socket.gethostname()
        self._pending_events: dict[str, list[Record]] = {}
        self._pending_counts: Counter[tuple[str, str, float]] = Counter()
        self._last_publish: float | None = None
        self._changed = True
        self._queued = QueuedRing()

    # -- what happened ----------------------------------------------------

    def job_started(self, daemon: str, job_id: int, task: str, attempt: int, worker_pid: int) -> None:
        self._event(daemon, {"kind": "started", "job_id": job_id, "task": task, "attempt": attempt, "worker_pid": worker_pid})

    def job_ended(self, daemon: str, job_id: int, task: str, attempt: int, state: str, error: str | None = None) -> None:
        """Record an attempt's end; ``state`` is the job's new state (succeeded, retrying, dead, cancelled)."""
        kind = "failed" if state == "retrying" else state
        self._event(daemon, {"kind": kind, "job_id": job_id, "task": task, "attempt": attempt, "error": error})
        outcome = {"succeeded": "succeeded", "retrying": "failed", "dead": "dead"}.get(state)
        if outcome:
            now = self.wall_clock()
            self.local.count(daemon, outcome, 1, now)
            self._pending_counts[(daemon, outcome, now)] += 1
            if outcome == "dead":  # a dead job's last attempt failed too
                self.local.count(daemon, "failed", 1, now)
                self._pending_counts[(daemon, "failed", now)] += 1
        self.local.clear_progress(job_id)

    def progress(self, daemon: str, job_id: int, task: str, attempt: int, worker_pid: int, progress: dict[str, Any]) -> None:
        """A progress report that came over the pipe (the worker wrote memcached itself)."""
        self.local.set_progress(job_id, progress_record(
            job_id=job_id, daemon=daemon, task=task, attempt=attempt, progress=progress, worker_pid=worker_pid, host=self.host,
        ))

    def remember_result(self, job: Job, result: Any, cache_ttl: float | None) -> None:
        """Cache a succeeded job's result if its task opted in (``cache_ttl``); after the store has it."""
        if not cache_ttl or cache_ttl <= 0:
            return
        key = result_key(job.task, job.args)
        record = cache_record(job.id, result, self.wall_clock())
        self.local.put_result(key, record, cache_ttl)
        if self.shared is not None:
            self.shared.put_result(key, record, cache_ttl)

    def view(self, daemon: str | None = None) -> Record:
        """The dashboard's data from this master's own memory (the ``activity`` operation), with the last hour.

        The last hour (a few hundred numbers) is always included: it costs
        dictionary lookups here, and a freshly started ``jobd web`` draws its
        charts from it.
        """
        return read_view(self.local, source="master", now=self.wall_clock(), daemon=daemon, last_hour=True)

    def _event(self, daemon: str, event: Record) -> None:
        event = {"at": self.wall_clock(), "daemon": daemon, "host": self.host, "master": self.master_id, **event}
        self.local.add_events(daemon, [event])
        self._pending_events.setdefault(daemon, []).append(event)
        self._changed = True

    # -- publishing -------------------------------------------------------

    def due(self) -> bool:
        if self._last_publish is None:
            return True
        elapsed = self.clock() - self._last_publish
        if elapsed >= defaults.ACTIVITY_SNAPSHOT_INTERVAL_SECONDS:
            return True
        return self._changed and elapsed >= defaults.ACTIVITY_SNAPSHOT_MIN_INTERVAL_SECONDS

    def publish(self, snapshot: Record) -> None:
        """Publish the master's snapshot and flush batched events and counters."""
        self._last_publish = self.clock()
        self._changed = False
        snapshot = {**snapshot, "published_at": self.wall_clock()}
        self.local.publish_master(self.master_id, snapshot)
        if self._queued.due(snapshot["published_at"]):  # once a minute
            self._queued.record(snapshot, snapshot["published_at"], [self.local] if self.shared is None else [self.local, self.shared])
        if self.shared is None:
            self._pending_events.clear()
            self._pending_counts.clear()
            return
        self.shared.publish_master(self.master_id, snapshot)
        events, self._pending_events = self._pending_events, {}
        for daemon, batch in events.items():
            self.shared.add_events(daemon, batch)
        merged: Counter[tuple[str, str, int]] = Counter()
        for (daemon, outcome, when), amount in self._pending_counts.items():
            merged[(daemon, outcome, bucket_of(when))] += amount
        self._pending_counts.clear()
        for (daemon, outcome, bucket), amount in merged.items():
            self.shared.count(daemon, outcome, amount, bucket * defaults.ACTIVITY_COUNTER_BUCKET_SECONDS)

    def stop(self) -> None:
        self.local.forget_master(self.master_id)
        if self.shared is not None:
            self.shared.forget_master(self.master_id)
            self.shared.close()
