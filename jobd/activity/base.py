"""What an activity store must do: hold live display data that may be lost.

The activity store answers "what is every master, worker and job doing
right now, and what just happened" — masters' status snapshots, running
jobs' progress, a short ring of recent events per daemon, throughput
counters — plus the result cache. It is a cache, never the truth: every
write may be dropped (memcached down, an eviction, a restart) and readers
must cope with missing entries. Nothing a job needs to finish goes here.

Two implementations sit side by side: ``memcached.MemcachedActivity``
(shared by every master on every host) and ``memory.MemoryActivity``
(inside the master; the embedded default, served over the control socket).
``tests/test_activity_contract.py`` runs the same tests against both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from .. import defaults

Record = dict[str, Any]  # plain JSON data: it crosses memcached and the control socket

#: Outcomes counted per daemon and minute (the "throughput counters").
COUNTED_OUTCOMES = ("succeeded", "failed", "dead")


class Activity(Protocol):
    """The activity store's interface. Writes never raise; reads return what is there."""

    def publish_master(self, master_id: str, snapshot: Record) -> None:
        """Replace ``master_id``'s status snapshot; it expires unless refreshed."""

    def forget_master(self, master_id: str) -> None:
        """Remove a stopping master's snapshot at once."""

    def masters(self) -> list[Record]:
        """Every live master's latest snapshot (any order)."""

    def set_progress(self, job_id: int, record: Record) -> None:
        """Replace a running job's progress record."""

    def clear_progress(self, job_id: int) -> None:
        """Forget a job's progress (it ended)."""

    def progress_of(self, job_ids: Iterable[int]) -> dict[int, Record]:
        """Progress records of these jobs; jobs without one are left out."""

    def add_events(self, daemon: str, events: Sequence[Record]) -> None:
        """Append events (oldest first) to the daemon's ring of the last few."""

    def events(self, daemon: str) -> list[Record]:
        """The daemon's recent events, oldest first."""

    def count(self, daemon: str, outcome: str, amount: int, now: float) -> None:
        """Add ``amount`` to the daemon's counter of ``outcome`` for the minute of ``now``."""

    def counts(self, daemon: str, outcome: str, buckets: Sequence[int]) -> dict[int, int]:
        """Counter values per bucket number (missing buckets are left out)."""

    def record_queued(self, bucket: int, queued: dict[str, int]) -> None:
        """Remember the daemons' queue depths in minute ``bucket`` (merged into that minute's slot of a fixed ring)."""

    def queued_history(self, buckets: Sequence[int]) -> dict[int, dict[str, int]]:
        """Queue depths per daemon for those minutes that have one (the ring keeps about the last hour)."""

    def put_result(self, key: str, record: Record, ttl: float) -> bool:
        """Cache a task's result record under ``key`` for ``ttl`` seconds; False if not stored."""

    def get_result(self, key: str) -> Record | None:
        """A fresh cached result record, or None."""

    def close(self) -> None:
        """Release connections."""


def bucket_of(now: float) -> int:
    """The counter bucket (minute number since the epoch) that ``now`` falls in."""
    return int(now // defaults.ACTIVITY_COUNTER_BUCKET_SECONDS)


def buckets_for(now: float, window_seconds: float) -> list[int]:
    """Bucket numbers covering the ``window_seconds`` before ``now`` (oldest first)."""
    last = bucket_of(now)
    count = max(1, math.ceil(window_seconds / defaults.ACTIVITY_COUNTER_BUCKET_SECONDS))
    return list(range(last - count, last + 1))


def total_in_window(counts: dict[int, int], now: float, window_seconds: float) -> float:
    """Events in the last ``window_seconds``: full buckets, plus the oldest one pro rata.

    Buckets are whole minutes, so "the last 60 seconds" straddles two of
    them; counting the older one by the fraction still inside the window
    keeps jobs/min smooth instead of dropping to zero every minute.
    """
    size = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
    start = now - window_seconds
    total = 0.0
    for bucket, value in counts.items():
        begin, end = bucket * size, (bucket + 1) * size
        inside = max(0.0, min(end, now) - max(begin, start))
        span = min(end, now) - begin
        if span <= 0:
            continue
        total += value * min(1.0, inside / span) if begin < start else value
    return total


def queued_slot(bucket: int) -> int:
    """The ring slot of minute ``bucket``: a fixed set of keys, each reused an hour later."""
    return bucket % defaults.ACTIVITY_QUEUED_SLOTS


def merged_queued(previous: Any, bucket: int, queued: dict[str, int]) -> Record:
    """A ring slot after recording ``queued`` for ``bucket``: same minute merges (masters own different daemons)."""
    kept = previous.get("queued") if isinstance(previous, dict) and previous.get("bucket") == bucket else None
    return {"bucket": bucket, "queued": {**(kept if isinstance(kept, dict) else {}), **queued}}


def slot_queued(slot: Any, bucket: int) -> dict[str, int] | None:
    """The depths a slot holds for ``bucket``, or None if it holds another minute (or nothing readable)."""
    if not isinstance(slot, dict) or slot.get("bucket") != bucket or not isinstance(slot.get("queued"), dict):
        return None
    return {str(name): int(value) for name, value in slot["queued"].items()}
