"""Claiming due jobs for a master: plain, under concurrency caps, or handed to it by a submit."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ...concurrency_caps import Budget, ConcurrencyCaps
from ...rate_limits import RateLimits
from ...job import Job
from ...states import JobState
from ..job_claim_sql import counted_attempt_of
from ..sql_statements import Statements, is_duplicate_key
from .base import JobsTable
from .records import row_to_job

#: At most this often (seconds of a claim's ``now``), a process's claims promote scheduled and retrying jobs that came due.
PROMOTE_INTERVAL_SECONDS = 0.1


class Claiming(JobsTable):
    """Taking due jobs for an owner."""

    def claim(
        self, daemon: str, limit: int, owner: str, *, now: float | None = None, caps: ConcurrencyCaps | None = None,
        promote: bool = True, rates: RateLimits | None = None, min_priority: int | None = None,
    ) -> list[Job]:
        """Take up to ``limit`` due jobs of ``daemon`` for ``owner``; highest priority first.

        The claimed jobs are ``running`` with their attempt counted before this
        returns, so a crash after the claim is recovered as an orphan, never lost.
        With ``caps``, no more of the daemon's (or a task's) jobs run at once
        across all masters than the caps allow; with ``rates``, no more start
        than the rate limits let start (``next_token_at`` then says when the
        jobs left waiting may go; without ``now``, the rate limits read the
        clock once they hold their lock). ``promote=False`` leaves the
        promotion of scheduled and retrying jobs that came due to a later claim
        (a claim for a job just submitted, which is queued already).
        ``min_priority`` takes only jobs of at least that priority: a master
        whose prefetch is full claims a more urgent job past it (not with
        caps or rate limits, which prefetch nothing).
        """
        if limit <= 0:
            return []
        from_clock, now = now is None, time.time() if now is None else now
        if (caps is not None and caps.active) or (rates is not None and rates.active):
            return self._claim_capped(daemon, limit, owner, now, caps or ConcurrencyCaps(), rates or RateLimits(), from_clock)
        claim = self._claim_sql
        with self.runner.write() as sql:
            if promote and self._promotion_due(now):
                for promotion, timed in claim.promotions:
                    sql.run(promotion, (now,) if timed else ())
            if self.is_mysql:
                # Two round trips: lock the rows we take (skipping rows other
                # masters hold), then mark them; the claimed values are known.
                locked = sql.rows(claim.lock_due, claim.lock_due_values(daemon, now, limit, min_priority))
                if not locked:
                    return []
                ids = [row["id"] for row in locked]
                sql.run(claim.mark_claimed(len(ids)), claim.mark_claimed_values(ids, owner, now))
                rows: list[Mapping[str, Any]] = [
                    {**row, "state": str(JobState.RUNNING), "attempts": counted_attempt_of(row["attempts"]), "owner": owner,
                     "started_at": now, "updated_at": now, "worker_pid": None, "cancel_requested": False}
                    for row in locked
                ]
            else:
                rows = list(sql.rows(claim.claim_returning, claim.claim_values(daemon, now, limit, owner, min_priority)))
        claimed = [row_to_job(row) for row in rows]
        claimed.sort(key=lambda job: (-job.priority, job.id))
        return claimed

    def handed(self, job_ids: Sequence[int], owner: str) -> list[Job]:
        """The jobs among ``job_ids`` that a submit claimed for ``owner`` and that are still its own, running.

        A hand-off datagram names a job; only the store says whose it is
        (``jobd.handoff``). One primary-key read per job, no write.
        """
        rows: list[Mapping[str, Any]] = []
        with self.runner.read() as sql:
            for job_id in job_ids:
                rows.extend(sql.rows(self._claim_sql.handed, (job_id, owner)))
        return [row_to_job(row) for row in rows]

    def owned_running(self, owner: str, *, started_before: float) -> list[int]:
        """Ids of ``owner``'s running jobs that started before ``started_before`` (``JobReads.owned_running``)."""
        with self.runner.read() as sql:
            return self._reads(sql).owned_running(owner, started_before)

    def next_token_at(self, daemon: str) -> float | None:
        """When the last claim for ``daemon`` left due jobs waiting for a rate limit's next token: that time (epoch)."""
        return self._next_tokens.get(daemon)

    def _claim_capped(
        self, daemon: str, limit: int, owner: str, now: float, caps: ConcurrencyCaps, rates: RateLimits, from_clock: bool,
    ) -> list[Job]:
        """Claim under global caps and rate limits: claimers of this daemon serialise on a mutex row and its buckets.

        Counting running jobs, spending tokens and claiming new ones happen
        under one lock, so two masters can never both see "one slot free"
        (or "one token left") and both take it.
        """
        claim = self._claim_sql
        with self.runner.write() as sql:
            self._promote_due(sql, now)
            budget = Budget(limit)
            if caps.active:
                self._lock_mutex(sql, f"claim:{daemon}")
                running = {str(row["task"]): int(row["n"]) for row in sql.rows(claim.running_per_task(), (daemon,))}
                budget = caps.slots(limit, running)
            buckets = self.rate_buckets.hold(sql, daemon, rates, now, reread_clock=from_clock) if rates.active else {}
            # A claimer claims at the buckets' time (its clock read again under their lock, or another host's
            # later clock): the jobs' started_at is then the time their tokens and their second were counted at.
            now = max([now, *(bucket.updated_at for bucket in buckets.values())])
            budget = rates.narrow(budget, buckets)
            if budget.total <= 0 and not buckets:
                return []
            # MySQL: a claimer outside this lock (another config, a hand-off) may hold some; they are skipped.
            found = sql.rows(claim.candidates(), (daemon, now, max(budget.total * 4, 50)))
            candidates = [(int(row["id"]), str(row["task"])) for row in found]
            ids = budget.choose(candidates)
            if buckets:
                taken = set(ids)
                spent = rates.spend(buckets, (task for job_id, task in candidates if job_id in taken))
                self.rate_buckets.save(sql, daemon, spent)
                self._next_tokens[daemon] = rates.next_token_at(spent, (task for job_id, task in candidates if job_id not in taken))
            if not ids:
                return []
            sql.run(claim.mark_claimed(len(ids)), claim.mark_claimed_values(ids, owner, now))
            rows = sql.rows(claim.rows_of(len(ids)), tuple(ids))
        claimed = [row_to_job(row) for row in rows]
        claimed.sort(key=lambda job: (-job.priority, job.id))
        return claimed

    def _promote_due(self, sql: Statements, now: float) -> None:
        """Move scheduled and retrying jobs whose time has come to ``queued``.

        Claims then read one state in index order (daemon, state, priority,
        id) and stop after LIMIT rows, instead of sorting every waiting job.
        Done at most every ``PROMOTE_INTERVAL`` seconds of ``now`` per process.
        """
        if self._promotion_due(now):
            for promotion, timed in self._claim_sql.promotions:
                sql.run(promotion, (now,) if timed else ())

    def _promotion_due(self, now: float) -> bool:
        if now < self._next_promotion:
            return False
        self._next_promotion = now + PROMOTE_INTERVAL_SECONDS
        return True

    def _lock_mutex(self, sql: Statements, name: str) -> None:
        """Hold the row ``name`` of the locks table until the transaction ends."""
        select, insert = self._claim_sql.mutex()
        if not sql.rows(select, (name,)):
            try:
                sql.run(insert, (name,))
            except Exception as error:
                if not is_duplicate_key(error):
                    raise  # another claimer made it first: its row is locked (waited for) below
            sql.rows(select, (name,))
