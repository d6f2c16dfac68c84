"""The activity store in the master's memory: the embedded default.

With no memcached configured, the master keeps activity here and serves it
over the control socket (``activity`` operation), so ``jobd top`` works on
a single host with zero set-up. The master keeps one even when memcached is
configured: it is the fallback view while memcached is down. Entries expire
like memcached's (same TTLs, injected clock) so both behave alike.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import defaults
from .base import Record, bucket_of, merged_queued, queued_slot, slot_queued


class _Expiring:
    """A dict whose entries vanish ``ttl`` seconds after they were written."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[Any, tuple[float, Any]] = {}

    def put(self, key: Any, value: Any, ttl: float) -> None:
        self._items[key] = (self._clock() + ttl, value)

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        return item[1]

    def pop(self, key: Any) -> None:
        self._items.pop(key, None)

    def keys(self) -> list[Any]:
        return [key for key in list(self._items) if self.get(key) is not None]


class MemoryActivity:
    """``Activity`` in one process's memory (not shared; not thread-safe: the master is one thread)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._masters = _Expiring(clock)
        self._progress = _Expiring(clock)
        self._events: dict[str, deque[Record]] = {}
        self._counters = _Expiring(clock)
        self._results = _Expiring(clock)
        self._queued: dict[int, Record] = {}  # ring slot -> {"bucket", "queued"}

    def publish_master(self, master_id: str, snapshot: Record) -> None:
        self._masters.put(master_id, snapshot, defaults.ACTIVITY_MASTER_TTL_SECONDS)

    def forget_master(self, master_id: str) -> None:
        self._masters.pop(master_id)

    def masters(self) -> list[Record]:
        return [self._masters.get(key) for key in self._masters.keys()]

    def set_progress(self, job_id: int, record: Record) -> None:
        self._progress.put(int(job_id), dict(record), defaults.ACTIVITY_PROGRESS_TTL_SECONDS)

    def clear_progress(self, job_id: int) -> None:
        self._progress.pop(int(job_id))

    def progress_of(self, job_ids: Iterable[int]) -> dict[int, Record]:
        found = {}
        for job_id in job_ids:
            record = self._progress.get(int(job_id))
            if record is not None:
                found[int(job_id)] = record
        return found

    def add_events(self, daemon: str, events: Sequence[Record]) -> None:
        ring = self._events.setdefault(daemon, deque(maxlen=defaults.ACTIVITY_EVENTS_KEPT))
        ring.extend(events)

    def events(self, daemon: str) -> list[Record]:
        return list(self._events.get(daemon, ()))

    def count(self, daemon: str, outcome: str, amount: int, now: float) -> None:
        key = (daemon, outcome, bucket_of(now))
        self._counters.put(key, (self._counters.get(key) or 0) + amount, defaults.ACTIVITY_COUNTER_TTL_SECONDS)

    def counts(self, daemon: str, outcome: str, buckets: Sequence[int]) -> dict[int, int]:
        found = {}
        for bucket in buckets:
            value = self._counters.get((daemon, outcome, bucket))
            if value is not None:
                found[bucket] = int(value)
        return found

    def record_queued(self, bucket: int, queued: dict[str, int]) -> None:
        slot = queued_slot(bucket)
        self._queued[slot] = merged_queued(self._queued.get(slot), bucket, queued)

    def queued_history(self, buckets: Sequence[int]) -> dict[int, dict[str, int]]:
        found = {}
        for bucket in buckets:
            value = slot_queued(self._queued.get(queued_slot(bucket)), bucket)
            if value is not None:
                found[bucket] = value
        return found

    def put_result(self, key: str, record: Record, ttl: float) -> bool:
        self._results.put(key, dict(record), ttl)
        return True

    def get_result(self, key: str) -> Record | None:
        record = self._results.get(key)
        return dict(record) if record is not None else None

    def close(self) -> None:
        pass
