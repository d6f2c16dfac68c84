"""Rate limits: how many of a daemon's (or a task's) jobs may start per second.

A limit such as ``"50/s"`` with a burst of 50 is two rules, both applied by
every claim: a token bucket that fills with 50 tokens a second up to the
burst (the average: one token per job), and a count of the jobs started in
the current calendar second that may not pass the burst (so no second gets
a full bucket *and* that second's refill). A claim takes at most the fewer
of the bucket's whole tokens and the room left in the second, and none in
the last ``CLOSING_MARGIN`` of a second (see there). Pure arithmetic over
values and an injected ``now``; the store keeps one bucket per key and
applies this under a lock, so the limit holds across every master sharing
the store (``jobd.store.rate_buckets``).
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
#: A claim in the last 100 ms of a second takes nothing: a job starts in its worker after the claim
#: commits and the master hands it over (a few ms on a quiet host, 40-90 ms measured on a loaded one),
#: and one claimed later could start in the next second, on top of that second's burst. Tokens keep
#: accruing meanwhile (a burst holds at least a second's worth), so the average rate loses nothing.
CLOSING_MARGIN = 0.1


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
    """One second's worth of jobs (rounded up: a burst caps every second, so less could never reach the rate), at least one."""
    return max(1.0, float(math.ceil(per_second - 1e-9)))


def burst_problem(per_second: float, burst: float) -> str | None:
    """Why ``burst`` cannot go with ``per_second`` (None: it can)."""
    if burst < 1:
        return f"a burst must be at least 1 (got {burst:g})"
    if burst < per_second - 1e-9:
        return (
            f"a burst of {burst:g} is less than one second's worth of {per_second:g}/s: at most the burst start "
            "in any second, so the rate could never be reached"
        )
    return None


def closing(at: float) -> bool:
    """Whether ``at`` falls in the last ``CLOSING_MARGIN`` of its second, when claims take nothing."""
    return at - math.floor(at) >= 1.0 - CLOSING_MARGIN - 1e-9


def opening(at: float) -> float:
    """The first moment from ``at`` on that is not ``closing``."""
    return float(math.floor(at) + 1) if closing(at) else at


@dataclass(frozen=True)
class Rate:
    """A limit: tokens added per second, and the most jobs that start in any one second (at least one second's tokens)."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"a rate needs a positive rate (got {self.per_second}/s)")
        problem = burst_problem(self.per_second, self.burst)
        if problem is not None:
            raise ValueError(problem)

    @property
    def per_calendar_second(self) -> int:
        """The most jobs started in one calendar second: the burst's whole part."""
        return math.floor(self.burst + 1e-9)


@dataclass(frozen=True)
class Bucket:
    """A key's tokens as of ``updated_at`` (epoch seconds), and how many jobs it let start in calendar ``second``."""

    tokens: float
    updated_at: float
    second: int = 0  # floor of an epoch time: the second ``started`` counts
    started: int = 0

    @classmethod
    def full(cls, rate: Rate, now: float) -> "Bucket":
        return cls(rate.burst, now, math.floor(now), 0)

    def refilled(self, rate: Rate, now: float) -> "Bucket":
        """The bucket at ``now``: tokens added since ``updated_at``, never past the burst; a new second starts at 0.

        A ``now`` earlier than ``updated_at`` (another host's clock runs
        ahead) adds nothing and keeps the later time, so no interval is
        counted twice and a second, once left, is never counted again.
        """
        at = max(now, self.updated_at)
        second = math.floor(at)
        return Bucket(
            min(rate.burst, self.tokens + (at - self.updated_at) * rate.per_second), at, second,
            self.started if second == self.second else 0,
        )

    @property
    def started_this_second(self) -> int:
        """Jobs started in the calendar second of ``updated_at``."""
        return self.started if self.second == math.floor(self.updated_at) else 0

    def available(self, rate: Rate) -> int:
        """How many jobs a claim at ``updated_at`` may take: whole tokens, within the room left in its second."""
        if closing(self.updated_at):
            return 0
        return max(0, min(math.floor(self.tokens + 1e-9), rate.per_calendar_second - self.started_this_second))

    def spent(self, rate: Rate, jobs: int) -> "Bucket":
        if jobs > self.available(rate):
            raise ValueError(
                f"cannot start {jobs} jobs from a bucket holding {self.tokens:.3f} tokens "
                f"with {self.started_this_second} of {rate.per_calendar_second} started this second"
            )
        return Bucket(self.tokens - jobs, self.updated_at, math.floor(self.updated_at), self.started_this_second + jobs)

    def next_start_at(self, rate: Rate) -> float:
        """When a job may start again if nothing else claims: a whole token, room in the second, outside its closing margin."""
        at = self.updated_at
        missing = 1.0 - self.tokens
        if missing > 1e-9:
            at += missing / rate.per_second
        if math.floor(at) == math.floor(self.updated_at) and self.started_this_second >= rate.per_calendar_second:
            at = float(math.floor(self.updated_at) + 1)  # this second is full: the next one
        return opening(at)


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
        """``budget`` within what ``buckets`` (refilled to the claim's ``now``) let start."""
        rates = self.rates()
        total = budget.total
        if DAEMON_KEY in buckets:
            total = min(total, buckets[DAEMON_KEY].available(rates[DAEMON_KEY]))
        per_task = dict(budget.per_task)
        for task, bucket in buckets.items():
            if task != DAEMON_KEY:
                available = bucket.available(rates[task])
                per_task[task] = min(per_task.get(task, available), available)
        return Budget(total=max(0, total), per_task=per_task)

    def spend(self, buckets: Mapping[str, Bucket], taken_tasks: Iterable[str]) -> dict[str, Bucket]:
        """The buckets after a claim took jobs of ``taken_tasks`` (one task name per job)."""
        counts: dict[str, int] = {}
        for task in taken_tasks:
            counts[task] = counts.get(task, 0) + 1
        rates = self.rates()
        after = {}
        for key, bucket in buckets.items():
            jobs = sum(counts.values()) if key == DAEMON_KEY else counts.get(key, 0)
            after[key] = bucket.spent(rates[key], jobs)
        return after

    def next_token_at(self, buckets: Mapping[str, Bucket], waiting_tasks: Iterable[str]) -> float | None:
        """When a job of ``waiting_tasks`` (left queued by a claim) may be taken next; None if the rate does not hold one.

        A job waits for every bucket it counts against (its task's and the
        daemon's) that lets nothing start: it may go once the last of them
        has a token and room in its second again (the next second, if that
        one is full).
        """
        rates = self.rates()
        soonest: float | None = None
        for task in set(waiting_tasks):
            blocking = [key for key in (DAEMON_KEY, task) if key in buckets and buckets[key].available(rates[key]) == 0]
            if not blocking:
                continue  # not held by a rate (the claim was full, or a concurrency cap held it)
            due = max(buckets[key].next_start_at(rates[key]) for key in blocking)
            soonest = due if soonest is None else min(soonest, due)
        return soonest
