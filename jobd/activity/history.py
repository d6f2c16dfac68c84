"""The last hour, minute by minute: what the dashboard's charts start from.

Jobs finished per minute come from the throughput counters every master
already keeps (``count``: succeeded and failed attempts, as ``jobs_per_minute``
adds them); queue depth from the ring the master's ``QueuedRing`` writes
once a minute. Both are pure reads over the ``Activity`` interface, so a
freshly started ``jobd web`` draws an hour of history from memcached or from
the master's memory alike. Only complete minutes are given: the current one
is still filling up, and the live samples cover it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import defaults
from .base import Activity, Record, bucket_of, buckets_for

HOUR = 3600.0
FINISHED_OUTCOMES = ("succeeded", "failed")  # a dead job's last attempt is counted as failed too


def finished_points(per_bucket: dict[int, int], now: float) -> list[list[float]]:
    """``[minute_end, jobs]`` for every complete minute of the hour from the first one with data (none: zero)."""
    current = bucket_of(now)
    complete = [bucket for bucket in buckets_for(now, HOUR) if bucket < current]
    seen = [bucket for bucket in complete if bucket in per_bucket]
    if not seen:
        return []
    size = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
    return [[float((bucket + 1) * size), float(per_bucket.get(bucket, 0))] for bucket in complete if bucket >= seen[0]]


def queued_points(per_bucket: dict[int, dict[str, int]], now: float, names: Iterable[str] | None = None) -> list[list[float]]:
    """``[minute_start, queued]`` for the minutes of the hour the ring has, this one included (gaps stay gaps)."""
    wanted = None if names is None else set(names)
    current = bucket_of(now)
    size = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
    return [
        [float(bucket * size), float(sum(value for name, value in depths.items() if wanted is None or name in wanted))]
        for bucket, depths in sorted(per_bucket.items()) if bucket <= current
    ]


def last_hour(activity: Activity, names: Iterable[str], now: float, counts: dict[str, dict[str, dict[int, int]]] | None = None) -> Record:
    """``{"finished": [[t, n]...], "queued": [[t, n]...]}`` for the daemons ``names`` over the last hour.

    ``counts`` (daemon → outcome → bucket → n) are hour counters already read
    by the caller; missing ones are read here.
    """
    names = list(names)
    buckets = buckets_for(now, HOUR)
    finished: dict[int, int] = {}
    for name in names:
        for outcome in FINISHED_OUTCOMES:
            found = (counts or {}).get(name, {}).get(outcome)
            if found is None:
                found = activity.counts(name, outcome, buckets)
            for bucket, value in found.items():
                finished[bucket] = finished.get(bucket, 0) + value
    return {
        "finished": finished_points(finished, now),
        "queued": queued_points(activity.queued_history(buckets), now, names),
    }


class QueuedRing:
    """Records queue depth once a minute, from the snapshot the master publishes anyway.

    One small write per minute (a fixed ring of per-minute slots in the
    activity store): nothing is counted for it, the depths are the ones
    the status snapshot already carries.
    """

    def __init__(self) -> None:
        self._last_bucket: int | None = None

    def due(self, now: float) -> bool:
        return bucket_of(now) != self._last_bucket

    def record(self, snapshot: Record, now: float, stores: Iterable[Activity]) -> None:
        """Write this minute's depths (queued + scheduled, as the dashboard counts them) if not yet written."""
        bucket = bucket_of(now)
        if bucket == self._last_bucket:
            return
        depths = snapshot_queued(snapshot)
        if depths is None:
            return  # no counts in this snapshot: try again with the next one
        self._last_bucket = bucket
        for store in stores:
            store.record_queued(bucket, depths)


def snapshot_queued(snapshot: Record) -> dict[str, int] | None:
    """Per daemon: queued + scheduled jobs in a master's status snapshot, or None if it has no counts."""
    daemons = snapshot.get("daemons") or {}
    depths = {}
    for name, pool in daemons.items():
        counts = (pool or {}).get("counts")
        if counts is None:
            continue
        depths[str(name)] = int(counts.get("queued", 0)) + int(counts.get("scheduled", 0))
    return depths if depths or not daemons else None
