"""The activity store in memcached: shared by every master and worker on every host.

Keys live under a per-deployment namespace (``namespace_for``: derived from
the store URL, since the masters that share a store are one deployment):

==============================  =========================================  =======================
key                             value (JSON)                               TTL
==============================  =========================================  =======================
``NS:masters``                  ids of masters that published (CAS)        1 day, pruned on update
``NS:master:ID``                the master's status snapshot               10 s, refreshed each 1 s
``NS:progress:JOB``             a running job's progress record            10 min, deleted at end
``NS:events:DAEMON``            the last 50 events of the daemon (CAS)     1 day
``NS:count:DAEMON:OUTCOME:MIN`` jobs of that outcome in that minute (incr)  2 h
``NS:queued:SLOT``              queue depths per daemon of one minute (CAS) 2 h, 62 slots reused
``NS:result:SHA256``            a cached task result                       the task's cache_ttl
==============================  =========================================  =======================

Degrades, never breaks: every call has short connect/read timeouts; a
failure is logged at most once a minute, and memcached is then skipped for
a second (doubling up to 8 s) so a dead server never slows a task or the
master's loop. pymemcache's ``HashClient`` spreads keys over several
servers and takes a failed one out of the ring until it answers again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pymemcache.client.hash import HashClient

from .. import defaults
from .base import Record, bucket_of, merged_queued, queued_slot, slot_queued

log = logging.getLogger("jobd.activity")

T = TypeVar("T")
_CAS_ATTEMPTS = 8


def namespace_for(store_url: str) -> str:
    """The key prefix of a deployment: every master sharing a store shares activity."""
    return "jobd:" + hashlib.sha256(store_url.encode()).hexdigest()[:12]


def parse_servers(servers: Sequence[str]) -> list[tuple[str, int]]:
    parsed = []
    for server in servers:
        host, _, port = server.rpartition(":")
        parsed.append((host.strip("[]"), int(port)))
    return parsed


class Breaker:
    """Skip a failing service for a while, and say so rarely.

    After a failure, calls are skipped for ``retry_after`` seconds, doubling
    on each further failure up to ``retry_after_max``; a success resets it.
    The warning is logged at most once per ``warning_interval``.
    """

    def __init__(
        self,
        what: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after: float = defaults.MEMCACHED_RETRY_AFTER_SECONDS,
        retry_after_max: float = defaults.MEMCACHED_RETRY_AFTER_MAX_SECONDS,
        warning_interval: float = defaults.MEMCACHED_WARNING_INTERVAL_SECONDS,
    ) -> None:
        self.what = what
        self.clock = clock
        self.retry_after = retry_after
        self.retry_after_max = retry_after_max
        self.warning_interval = warning_interval
        self.failures = 0
        self.skip_until = 0.0
        self.last_warning: float | None = None
        self.suppressed = 0

    @property
    def open(self) -> bool:
        """True while calls should be skipped."""
        return self.clock() < self.skip_until

    def succeeded(self) -> None:
        if self.failures:
            log.info("%s is reachable again; live activity resumes", self.what)
        self.failures = 0
        self.skip_until = 0.0

    def failed(self, error: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        self.skip_until = now + min(self.retry_after_max, self.retry_after * 2 ** (self.failures - 1))
        if self.last_warning is None or now - self.last_warning >= self.warning_interval:
            more = f" ({self.suppressed} more failures since the last warning)" if self.suppressed else ""
            log.warning("%s unavailable: %s; live activity is not recorded, jobs are unaffected%s", self.what, error, more)
            self.last_warning = now
            self.suppressed = 0
        else:
            self.suppressed += 1


class MemcachedActivity:
    """``Activity`` in memcached (one or several servers through ``HashClient``)."""

    def __init__(self, servers: Sequence[str], namespace: str, *, breaker: Breaker | None = None) -> None:
        self.servers = list(servers)
        self.namespace = namespace
        self.breaker = breaker or Breaker(f"memcached {', '.join(servers)}")
        self._registered_at: dict[str, float] = {}  # master id → when it was last added to the index
        self.client = HashClient(
            parse_servers(servers),
            connect_timeout=defaults.MEMCACHED_CONNECT_TIMEOUT_SECONDS,
            timeout=defaults.MEMCACHED_TIMEOUT_SECONDS,
            retry_attempts=1,
            retry_timeout=defaults.MEMCACHED_RETRY_AFTER_SECONDS,
            dead_timeout=defaults.MEMCACHED_RETRY_AFTER_SECONDS,
            ignore_exc=False,
            default_noreply=False,
        )

    # -- plumbing ---------------------------------------------------------

    def key(self, *parts: object) -> str:
        return ":".join([self.namespace, *(str(part) for part in parts)])

    def _call(self, default: T, operation: Callable[[], T]) -> T:
        """Run one memcached operation; on any failure return ``default`` (display data only)."""
        if self.breaker.open:
            return default
        try:
            result = operation()
        except Exception as error:  # pymemcache raises OSError, MemcacheError, timeouts…
            self.breaker.failed(error)
            self._registered_at.clear()  # a restarted memcached lost the index: add ourselves again
            return default
        self.breaker.succeeded()
        return result

    @staticmethod
    def _encode(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), default=str).encode()

    @staticmethod
    def _decode(raw: Any) -> Any:
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _update(self, key: str, change: Callable[[Any], Any], ttl: int) -> bool:
        """Read-modify-write with CAS, retried a few times against concurrent writers."""

        def attempt() -> bool:
            for _ in range(_CAS_ATTEMPTS):
                raw, token = self.client.gets(key)
                if raw is None:
                    if self.client.add(key, self._encode(change(None)), expire=ttl, noreply=False):
                        return True
                    continue
                if self.client.cas(key, self._encode(change(self._decode(raw))), token, expire=ttl, noreply=False):
                    return True
            return False

        return self._call(False, attempt)

    # -- masters ----------------------------------------------------------

    def publish_master(self, master_id: str, snapshot: Record) -> None:
        self._call(None, lambda: self.client.set(
            self.key("master", master_id), self._encode(snapshot), expire=defaults.ACTIVITY_MASTER_TTL_SECONDS, noreply=True,
        ))
        now = time.monotonic()
        last = self._registered_at.get(master_id)
        due = last is None or now - last >= defaults.ACTIVITY_MASTER_INDEX_REFRESH_SECONDS
        if due and not self.breaker.open and self.register_master(master_id):
            # Re-added now and then: the index may have been evicted or memcached restarted.
            self._registered_at[master_id] = now

    def register_master(self, master_id: str) -> bool:
        """Add ``master_id`` to the index of masters, pruning those whose snapshot expired."""
        live: set[str] = set(self._call({}, lambda: self.client.get_many(
            [self.key("master", known) for known in self._master_ids()]
        )))

        def change(ids: Any) -> list[str]:
            kept = [known for known in (ids or []) if self.key("master", known) in live and known != master_id]
            return [*kept, master_id]

        return self._update(self.key("masters"), change, defaults.ACTIVITY_INDEX_TTL_SECONDS)

    def forget_master(self, master_id: str) -> None:
        self._registered_at.pop(master_id, None)
        self._call(None, lambda: self.client.delete(self.key("master", master_id), noreply=True))
        self._update(self.key("masters"), lambda ids: [known for known in (ids or []) if known != master_id],
                     defaults.ACTIVITY_INDEX_TTL_SECONDS)

    def _master_ids(self) -> list[str]:
        ids = self._decode(self._call(None, lambda: self.client.get(self.key("masters"))))
        return [str(known) for known in ids] if isinstance(ids, list) else []

    def masters(self) -> list[Record]:
        keys = [self.key("master", known) for known in self._master_ids()]
        if not keys:
            return []
        found: dict[str, Any] = self._call({}, lambda: self.client.get_many(keys))
        snapshots = [self._decode(found.get(key)) for key in keys]
        return [snapshot for snapshot in snapshots if isinstance(snapshot, dict)]

    # -- progress ---------------------------------------------------------

    def set_progress(self, job_id: int, record: Record) -> None:
        # noreply: a worker does not wait for memcached's answer
        self._call(None, lambda: self.client.set(
            self.key("progress", job_id), self._encode(record), expire=defaults.ACTIVITY_PROGRESS_TTL_SECONDS, noreply=True,
        ))

    def clear_progress(self, job_id: int) -> None:
        self._call(None, lambda: self.client.delete(self.key("progress", job_id), noreply=True))

    def progress_of(self, job_ids: Iterable[int]) -> dict[int, Record]:
        keys = {self.key("progress", job_id): int(job_id) for job_id in job_ids}
        if not keys:
            return {}
        found: dict[str, Any] = self._call({}, lambda: self.client.get_many(list(keys)))
        records = {keys[key]: self._decode(raw) for key, raw in found.items() if key in keys}
        return {job_id: record for job_id, record in records.items() if isinstance(record, dict)}

    # -- events and counters ----------------------------------------------

    def add_events(self, daemon: str, events: Sequence[Record]) -> None:
        if not events:
            return
        kept = defaults.ACTIVITY_EVENTS_KEPT
        self._update(self.key("events", daemon), lambda ring: [*(ring or []), *events][-kept:],
                     defaults.ACTIVITY_EVENTS_TTL_SECONDS)

    def events(self, daemon: str) -> list[Record]:
        ring = self._decode(self._call(None, lambda: self.client.get(self.key("events", daemon))))
        return [event for event in ring if isinstance(event, dict)] if isinstance(ring, list) else []

    def count(self, daemon: str, outcome: str, amount: int, now: float) -> None:
        key = self.key("count", daemon, outcome, bucket_of(now))

        def increment() -> None:
            if self.client.incr(key, amount, noreply=False) is None:
                if not self.client.add(key, str(amount).encode(), expire=defaults.ACTIVITY_COUNTER_TTL_SECONDS, noreply=False):
                    self.client.incr(key, amount, noreply=False)  # another master added it first

        self._call(None, increment)

    def counts(self, daemon: str, outcome: str, buckets: Sequence[int]) -> dict[int, int]:
        keys = {self.key("count", daemon, outcome, bucket): bucket for bucket in buckets}
        found: dict[str, Any] = self._call({}, lambda: self.client.get_many(list(keys)))
        values = {}
        for key, raw in found.items():
            try:
                values[keys[key]] = int(raw)
            except (KeyError, TypeError, ValueError):
                continue
        return values

    def record_queued(self, bucket: int, queued: dict[str, int]) -> None:
        self._update(self.key("queued", queued_slot(bucket)), lambda slot: merged_queued(slot, bucket, queued),
                     defaults.ACTIVITY_QUEUED_TTL_SECONDS)

    def queued_history(self, buckets: Sequence[int]) -> dict[int, dict[str, int]]:
        keys = {self.key("queued", queued_slot(bucket)): bucket for bucket in buckets}
        found: dict[str, Any] = self._call({}, lambda: self.client.get_many(list(keys)))
        values = {}
        for key, raw in found.items():
            if key in keys:
                depths = slot_queued(self._decode(raw), keys[key])
                if depths is not None:
                    values[keys[key]] = depths
        return values

    # -- result cache -----------------------------------------------------

    def put_result(self, key: str, record: Record, ttl: float) -> bool:
        data = self._encode(record)
        if len(data) > defaults.RESULT_CACHE_MAX_BYTES or ttl <= 0:
            return False
        return bool(self._call(False, lambda: self.client.set(
            self.key("result", key), data, expire=max(1, round(ttl)), noreply=False,
        )))

    def get_result(self, key: str) -> Record | None:
        record = self._decode(self._call(None, lambda: self.client.get(self.key("result", key))))
        return record if isinstance(record, dict) else None

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
