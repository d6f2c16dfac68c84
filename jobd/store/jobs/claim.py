"""Claiming due jobs for a master: plain, under concurrency caps, or handed to it by a submit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ...concurrency_caps import Budget, ConcurrencyCaps
from ...rate_limits import RateLimits
from ...job import Job
from ...states import JobState
from ..cursor_sql import direct_transaction
from ..engine import READ_ONLY
from .base import JobsTable
from .records import row_to_job
from .statements import NO_PRIORITY_BOUND, PROMOTE_INTERVAL_SECONDS, counted_attempt, counted_attempt_of


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
        params = {
            "claim_daemon": daemon, "claim_now": now, "claim_limit": limit, "claim_owner": owner,
            "claim_min_priority": NO_PRIORITY_BOUND if min_priority is None else min_priority,
        }
        statements = self._direct
        with direct_transaction(self.engine) as transaction:
            if promote and self._promotion_due(now):
                for promotion in statements.promotions:
                    transaction.execute(promotion, {"claim_now": now})
            if self.is_mysql:
                # Two round trips: lock the rows we take (skipping rows other
                # masters hold), then mark them; the claimed values are known.
                locked = statements.lock_due.rows(transaction.execute(statements.lock_due, params))
                if not locked:
                    return []
                transaction.execute(statements.mark_claimed, {**params, "claim_ids": [row["id"] for row in locked]})
                rows: list[dict[str, Any]] = [
                    {**row, "state": str(JobState.RUNNING), "attempts": counted_attempt_of(row["attempts"]), "owner": owner,
                     "started_at": now, "updated_at": now, "worker_pid": None, "cancel_requested": False}
                    for row in locked
                ]
            else:
                rows = statements.claim_returning.rows(transaction.execute(statements.claim_returning, params))
        claimed = [row_to_job(row) for row in rows]
        claimed.sort(key=lambda job: (-job.priority, job.id))
        return claimed

    def handed(self, job_ids: Sequence[int], owner: str) -> list[Job]:
        """The jobs among ``job_ids`` that a submit claimed for ``owner`` and that are still its own, running.

        A hand-off datagram names a job; only the store says whose it is
        (``jobd.handoff``). One primary-key read per job, no write.
        """
        statement = self._direct.handed
        rows: list[dict[str, Any]] = []
        # MySQL: on the autocommit engine, so the read costs no COMMIT round trip.
        engine = self.submit_engine or self.engine
        with direct_transaction(engine, read_only=True, autocommit=self.submit_engine is not None) as transaction:
            for job_id in job_ids:
                rows.extend(statement.rows(transaction.execute(statement, {"handed_id": job_id, "claim_owner": owner})))
        return [row_to_job(row) for row in rows]

    def owned_running(self, owner: str, *, started_before: float) -> list[int]:
        """Ids of ``owner``'s running jobs that started before ``started_before``."""
        jobs = self.table
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return [int(job_id) for job_id in connection.execute(
                sa.select(jobs.c.id).where(
                    jobs.c.owner == owner, jobs.c.state == str(JobState.RUNNING), jobs.c.started_at < started_before,
                )
            ).scalars()]

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
        jobs = self.table
        with self.engine.begin() as connection:
            self._promote_due(connection, now)
            budget = Budget(limit)
            if caps.active:
                self._lock_mutex(connection, f"claim:{daemon}")
                running: dict[str, int] = dict(
                    connection.execute(
                        sa.select(jobs.c.task, sa.func.count())
                        .where(jobs.c.daemon == daemon, jobs.c.state == str(JobState.RUNNING))
                        .group_by(jobs.c.task)
                    ).all()
                )
                budget = caps.slots(limit, {task: int(count) for task, count in running.items()})
            buckets = self.rate_buckets.hold(connection, daemon, rates, now, reread_clock=from_clock) if rates.active else {}
            # A claimer claims at the buckets' time (its clock read again under their lock, or another host's
            # later clock): the jobs' started_at is then the time their tokens and their second were counted at.
            now = max([now, *(bucket.updated_at for bucket in buckets.values())])
            budget = rates.narrow(budget, buckets)
            if budget.total <= 0 and not buckets:
                return []
            due = (
                sa.select(jobs.c.id, jobs.c.task)
                .where(
                    jobs.c.daemon == daemon,
                    jobs.c.state == str(JobState.QUEUED),
                    sa.or_(jobs.c.run_at.is_(None), jobs.c.run_at <= now),
                )
                .order_by(jobs.c.priority.desc(), jobs.c.id)
                .limit(max(budget.total * 4, 50))
            )
            if self.is_mysql:  # a claimer outside this lock (another config, a hand-off) may hold some
                due = due.with_for_update(skip_locked=True)
            candidates = [(int(row[0]), str(row[1])) for row in connection.execute(due).all()]
            ids = budget.choose(candidates)
            if buckets:
                taken = set(ids)
                spent = rates.spend(buckets, (task for job_id, task in candidates if job_id in taken))
                self.rate_buckets.save(connection, daemon, spent)
                self._next_tokens[daemon] = rates.next_token_at(spent, (task for job_id, task in candidates if job_id not in taken))
            if not ids:
                return []
            connection.execute(
                jobs.update().where(jobs.c.id.in_(ids)).values(
                    state=str(JobState.RUNNING), attempts=counted_attempt(jobs), owner=owner, started_at=now,
                    updated_at=now, worker_pid=None, cancel_requested=False,
                )
            )
            rows = connection.execute(sa.select(jobs).where(jobs.c.id.in_(ids))).mappings().all()
        claimed = [row_to_job(row) for row in rows]
        claimed.sort(key=lambda job: (-job.priority, job.id))
        return claimed

    def _promote_due(self, connection: sa.Connection, now: float) -> None:
        """Move scheduled and retrying jobs whose time has come to ``queued``.

        Claims then read one state in index order (daemon, state, priority,
        id) and stop after LIMIT rows, instead of sorting every waiting job.
        Done at most every ``PROMOTE_INTERVAL`` seconds of ``now`` per process.
        """
        if self._promotion_due(now):
            for promotion in self._claim_statements.promotions:
                connection.execute(promotion, {"claim_now": now})

    def _promotion_due(self, now: float) -> bool:
        if now < self._next_promotion:
            return False
        self._next_promotion = now + PROMOTE_INTERVAL_SECONDS
        return True

    def _lock_mutex(self, connection: sa.Connection, name: str) -> None:
        """Hold the row ``name`` of the locks table until the transaction ends."""
        locks = self.locks
        query = sa.select(locks.c.name).where(locks.c.name == name)
        if self.is_mysql:
            query = query.with_for_update()
        if connection.execute(query).first() is None:
            try:
                with connection.begin_nested():
                    connection.execute(locks.insert().values(name=name))
            except sa.exc.IntegrityError:
                pass
            connection.execute(query)
