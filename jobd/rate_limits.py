"""Rate limits: how many of a daemon's (or a task's) jobs may start per second, as token buckets.

A limit such as ``"50/s"`` fills a bucket with 50 tokens a second, up to
its burst; a claim takes at most ``floor(tokens)`` jobs of the key and
spends one token per job it takes. Pure arithmetic over values and an
injected ``now``; the store keeps one bucket per key and applies this
under a lock, so the limit holds across every master sharing the store
(``jobd.store.rate_buckets``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .concurrency_caps import Budget

#: The bucket of a daemon's limit over all its tasks (task names are never empty).
DAEMON_KEY = ""
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*")
#: The grammar in a sentence, for error messages and the docs.
GRAMMAR = 'a count per second, minute or hour such as "50/s", "300/m" or "1000/h"'


def parse_rate(value: object) -> float:
    """Jobs per second in ``value`` (see ``GRAMMAR``); ``ValueError`` naming the value otherwise."""
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a rate: expected {GRAMMAR}")
    per_second = float(match.group(1)) / _UNIT_SECONDS[match.group(2)]
    if per_second <= 0 or math.isinf(per_second):
        raise ValueError(f"{value!r} is not a rate: the count must be more than zero")
    return per_second


def default_burst(per_second: float) -> float:
    """One second's worth of jobs, at least one."""
    return max(1.0, float(math.floor(per_second)))


@dataclass(frozen=True)
class Rate:
    """A limit: tokens added per second, and the most a bucket holds (jobs that may start at once)."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not self.per_second > 0 or not self.burst >= 1:
            raise ValueError(f"a rate needs a positive rate and a burst of at least 1 (got {self.per_second}/s, burst {self.burst})")


@dataclass(frozen=True)
class Bucket:
    """A key's tokens as of ``updated_at`` (epoch seconds)."""

    tokens: float
    updated_at: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> "Bucket":
        return cls(rate.burst, now)

    def refilled(self, rate: Rate, now: float) -> "Bucket":
        """The bucket at ``now``: tokens added since ``updated_at``, never past the burst.

        A ``now`` earlier than ``updated_at`` (another host's clock runs
        ahead) adds nothing and keeps the later time, so no interval is
        counted twice.
        """
        elapsed = max(0.0, now - self.updated_at)
        return Bucket(min(rate.burst, self.tokens + elapsed * rate.per_second), max(now, self.updated_at))

    @property
    def available(self) -> int:
        """How many jobs a claim may take now."""
        return max(0, math.floor(self.tokens + 1e-9))

    def spent(self, jobs: int) -> "Bucket":
        if jobs > self.available:
            raise ValueError(f"cannot spend {jobs} tokens of a bucket holding {self.tokens:.3f}")
        return Bucket(self.tokens - jobs, self.updated_at)

    def next_token_at(self, rate: Rate) -> float:
        """When the bucket holds a whole token again (``updated_at`` if it holds one now)."""
        missing = 1.0 - self.tokens
        return self.updated_at if missing <= 1e-9 else self.updated_at + missing / rate.per_second


@dataclass(frozen=True)
class RateLimits:
    """A daemon's limit over all its tasks (None: none) and per-task limits."""

    daemon: Rate | None = None
    tasks: Mapping[str, Rate] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.daemon is not None or bool(self.tasks)

    def rates(self) -> dict[str, Rate]:
        """Every limited key (``DAEMON_KEY`` for the daemon's own) with its rate, in a fixed order."""
        keyed = {DAEMON_KEY: self.daemon} if self.daemon is not None else {}
        keyed.update(sorted(self.tasks.items()))
        return keyed

    def narrow(self, budget: Budget, buckets: Mapping[str, Bucket]) -> Budget:
        """``budget`` within the tokens of ``buckets`` (refilled to the claim's ``now``)."""
        total = budget.total
        if DAEMON_KEY in buckets:
            total = min(total, buckets[DAEMON_KEY].available)
        per_task = dict(budget.per_task)
        for task, bucket in buckets.items():
            if task != DAEMON_KEY:
                per_task[task] = min(per_task.get(task, bucket.available), bucket.available)
        return Budget(total=max(0, total), per_task=per_task)

    def spend(self, buckets: Mapping[str, Bucket], taken_tasks: Iterable[str]) -> dict[str, Bucket]:
        """The buckets after a claim took jobs of ``taken_tasks`` (one task name per job)."""
        counts: dict[str, int] = {}
        for task in taken_tasks:
            counts[task] = counts.get(task, 0) + 1
        after = {}
        for key, bucket in buckets.items():
            jobs = sum(counts.values()) if key == DAEMON_KEY else counts.get(key, 0)
            after[key] = bucket.spent(jobs)
        return after

    def next_token_at(self, buckets: Mapping[str, Bucket], waiting_tasks: Iterable[str]) -> float | None:
        """When a job of ``waiting_tasks`` (left queued by a claim) may be taken next; None if the rate does not hold one.

        A job waits for every empty bucket it counts against (its task's and
        the daemon's): it may go once the last of them holds a token.
        """
        rates = self.rates()
        soonest: float | None = None
        for task in set(waiting_tasks):
            blocking = [key for key in (DAEMON_KEY, task) if key in buckets and buckets[key].available == 0]
            if not blocking:
                continue  # not held by a rate (the claim was full, or a concurrency cap held it)
            due = max(buckets[key].next_token_at(rates[key]) for key in blocking)
            soonest = due if soonest is None else min(soonest, due)
        return soonest
