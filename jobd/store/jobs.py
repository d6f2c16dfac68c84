"""The jobs table as a queue: insert, claim, finish, retry, cancel, inspect.

Every state written here comes from ``jobd.states.transition`` and every
UPDATE is guarded by the state it leaves (and, for a running job, by the
attempt and owner that claimed it), so a late message from a worker or a
master that lost its job can never overwrite newer truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from .. import defaults
from ..errors import InvalidArgs, InvalidTransition, UnknownJob
from ..job import Job, encode_args, encode_json
from ..states import CLAIMABLE, FINAL, JobState, phrase, sources_of, transition
from ..concurrency_caps import Budget, ConcurrencyCaps
from ..rate_limits import RateLimits
from .cursor_sql import DirectStatement, direct_transaction
from .rate_buckets import RateBuckets
from .row_decoding import decode_row
from .schema import UNDATED_WHERE
from .engine import READ_ONLY
from .job_window import created_conditions, id_range_for_created
from .state_lookup import in_states


PROMOTE_INTERVAL_SECONDS = 0.1


class _ClaimStatements:
    """The claim's statements, built once with bound parameters.

    Claims run many times a second; building SQLAlchemy expressions each time
    was most of the master's CPU. Parameters: claim_daemon, claim_now,
    claim_limit, claim_owner (and claim_ids for MySQL's second step).
    """

    def __init__(self, jobs: sa.Table) -> None:
        now: sa.BindParameter[float] = sa.bindparam("claim_now", type_=sa.Double())
        due = sa.and_(
            jobs.c.daemon == sa.bindparam("claim_daemon"),
            jobs.c.state == str(JobState.QUEUED),
            sa.or_(jobs.c.run_at.is_(None), jobs.c.run_at <= now),
        )
        limit = sa.bindparam("claim_limit", type_=sa.Integer())
        choose = sa.select(jobs.c.id).where(due).order_by(jobs.c.priority.desc(), jobs.c.id).limit(limit)
        claimed = {
            "state": str(JobState.RUNNING),
            "attempts": counted_attempt(jobs),
            "owner": sa.bindparam("claim_owner"),
            "started_at": now,
            "updated_at": now,
            "worker_pid": None,
            "cancel_requested": False,
        }
        self.claim_returning = jobs.update().where(jobs.c.id.in_(choose.scalar_subquery())).values(**claimed).returning(*jobs.c)
        # A job a submit claimed for this master (``jobd.handoff``): only if it is still running and ours.
        self.handed = sa.select(jobs).where(
            jobs.c.id == sa.bindparam("handed_id"),
            jobs.c.owner == sa.bindparam("claim_owner"),
            jobs.c.state == str(JobState.RUNNING),
        )
        self.lock_due = (
            sa.select(jobs)
            # Right after a bulk insert InnoDB's statistics can steer the
            # optimizer to a filesort of every queued job: name the index.
            .with_hint(jobs, f"FORCE INDEX ({jobs.name}_ready)", "mysql")
            .where(due)
            .order_by(jobs.c.priority.desc(), jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        self.mark_claimed = jobs.update().where(jobs.c.id.in_(sa.bindparam("claim_ids", expanding=True))).values(**claimed)
        # Scheduled and retrying jobs whose time has come become queued (see JobQueue._promote_due).
        self.promotions = [
            jobs.update().where(jobs.c.state == str(waiting), jobs.c.run_at <= now).values(state=str(transition(waiting, JobState.QUEUED)))
            for waiting in (JobState.SCHEDULED, JobState.RETRYING)
        ]
        # Scheduled or retrying rows an application wrote without a run_at are due now
        # (a NULL run_at means "due now" everywhere else). The condition is written as the
        # SQLite partial index jobs_undated's, so the statement reads that index alone.
        self.promotions.append(jobs.update().where(sa.text(UNDATED_WHERE)).values(state=str(JobState.QUEUED)))


def counted_attempt(jobs: sa.Table) -> sa.ColumnElement[int]:
    """``attempts + 1`` for a claim, never past the column's limit (MySQL refuses the overflow,
    which failed the whole claim): a row found at the limit is ended dead by the master."""
    limit = defaults.MAX_ATTEMPTS_COUNTER
    return sa.case((jobs.c.attempts < limit, jobs.c.attempts + 1), else_=limit)


def counted_attempt_of(attempts: Any) -> int:
    """What ``counted_attempt`` writes, for a row read before the UPDATE (MySQL's claim)."""
    try:
        value = int(attempts or 0)
    except (TypeError, ValueError):
        return 1
    return value + 1 if value < defaults.MAX_ATTEMPTS_COUNTER else defaults.MAX_ATTEMPTS_COUNTER


class _DirectStatements:
    """The submit's and the claim's statements, compiled for direct execution (``direct.py``).

    They sit on the submit-to-start path; everything else goes through
    SQLAlchemy connections as usual.
    """

    def __init__(self, engine: sa.Engine, jobs: sa.Table, claim: _ClaimStatements) -> None:
        self.engine = engine
        self.jobs = jobs
        self._inserts: dict[tuple[str, ...], DirectStatement] = {}
        self.find_unique = DirectStatement(engine, sa.select(jobs.c.id).where(jobs.c.unique_key == sa.bindparam("unique_key")))
        self.promotions = [DirectStatement(engine, statement) for statement in claim.promotions]
        self.handed = DirectStatement(engine, claim.handed, returns=jobs.c)
        if engine.dialect.name == "mysql":
            self.lock_due = DirectStatement(engine, claim.lock_due, returns=jobs.c)
            self.mark_claimed = DirectStatement(engine, claim.mark_claimed)
        else:
            self.claim_returning = DirectStatement(engine, claim.claim_returning, returns=jobs.c)

    def insert(self, columns: tuple[str, ...]) -> DirectStatement:
        """The INSERT of a row with these columns (``NewJob.row`` always has the same ones)."""
        statement = self._inserts.get(columns)
        if statement is None:
            statement = self._inserts[columns] = DirectStatement(self.engine, self.jobs.insert(), column_keys=columns)
        return statement


@dataclass(frozen=True)
class Outcome:
    """How one running attempt ended, ready to be written (see ``JobQueue.apply_outcomes``)."""

    job_id: int
    attempt: int
    state: JobState
    values: dict[str, Any]


@dataclass(frozen=True)
class NewJob:
    """What a submitter asks for; validated before it reaches the store."""

    daemon: str
    task: str
    args: dict[str, Any]
    priority: int = 0
    run_at: float | None = None
    unique_key: str | None = None
    fire_key: str | None = None
    origin: str = "intent"
    max_attempts: int | None = None
    handed_to: str | None = None  # a master this job is claimed for as it is inserted (``jobd.handoff``)

    @cached_property
    def encoded_args(self) -> str:
        """The args as stored (``InvalidArgs`` if they are not JSON); encoded once per job."""
        return encode_args(self.args)

    def row(self, now: float) -> dict[str, Any]:
        encoded = self.encoded_args
        # A character is at most 4 bytes in UTF-8: most args need no encoding to be measured.
        if len(encoded) * 4 > defaults.MAX_ARGS_BYTES and len(encoded.encode()) > defaults.MAX_ARGS_BYTES:
            raise InvalidArgs(f"args of {self.task!r} exceed {defaults.MAX_ARGS_BYTES} bytes")
        due_later = self.run_at is not None and self.run_at > now
        if self.handed_to is not None:
            if due_later or self.unique_key is not None:
                raise ValueError("only a job due now and without a unique key is handed to a master")
            return {
                **self._common_row(encoded, now),
                "state": str(JobState.RUNNING), "attempts": 1, "owner": self.handed_to, "started_at": now,
            }
        return {**self._common_row(encoded, now), "state": str(JobState.SCHEDULED if due_later else JobState.QUEUED)}

    def _common_row(self, encoded: str, now: float) -> dict[str, Any]:
        return {
            "daemon": self.daemon,
            "task": self.task,
            "args": encoded,
            "priority": self.priority,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "run_at": self.run_at,
            "unique_key": self.unique_key,
            "fire_key": self.fire_key,
            "origin": self.origin,
            "created_at": now,
            "updated_at": now,
        }


class JobQueue:
    """Queue operations over the jobs table of one store."""

    def __init__(
        self, engine: sa.Engine, table: sa.Table, locks: sa.Table, *, submit_engine: sa.Engine | None = None,
        rate_buckets: sa.Table,
    ) -> None:
        self.engine = engine
        self.rate_buckets = RateBuckets(engine, rate_buckets, table)
        self._next_tokens: dict[str, float | None] = {}  # daemon → when a rate lets its waiting jobs go (last claim)
        self.submit_engine = submit_engine  # autocommit connections for a submit's own statements (MySQL)
        self.table = table
        self.locks = locks
        self.is_mysql = engine.dialect.name == "mysql"
        self._next_promotion = float("-inf")
        self._claim_statements = _ClaimStatements(table)
        # A submit in the caller's transaction: built once, executed with the row
        # as parameters (``insert().values(**row)`` spent more time building and
        # cache-keying the expression than SQLite spent writing the row).
        self._insert_row = table.insert()
        self._find_unique = sa.select(table.c.id).where(table.c.unique_key == sa.bindparam("unique_key"))
        self._direct_statements: _DirectStatements | None = None

    @property
    def _direct(self) -> _DirectStatements:
        """Compiled on first use: most processes that open a store never submit or claim."""
        if self._direct_statements is None:
            # The dialect learns the server (MariaDB or MySQL, its version) on the
            # first connection: compile after it, as SQLAlchemy's own cache does.
            self.engine.connect().close()
            self._direct_statements = _DirectStatements(self.engine, self.table, self._claim_statements)
        return self._direct_statements

    # -- submitting -------------------------------------------------------

    def insert(self, job: NewJob, *, connection: sa.Connection | None = None, now: float | None = None) -> int:
        """Commit ``job`` (or add it to the caller's transaction) and return its id.

        With a ``unique_key`` already held by an unfinished job, the existing
        job's id is returned and nothing is written.
        """
        now = time.time() if now is None else now
        row = job.row(now)
        if connection is not None:
            return self._insert_on(connection, job, row)
        direct = self._direct
        # A submit's own statements: the fast path. The INSERT is the only write
        # (a unique key's lookup only reads; the unique index catches a race).
        # Without a unique key it is the only statement: committed as it runs
        # (MySQL's autocommit engine; on SQLite its own transaction), one call
        # to the database instead of BEGIN, INSERT, COMMIT. Durable when it returns.
        engine = self.submit_engine or self.engine
        single = self.submit_engine is not None or job.unique_key is None
        with direct_transaction(engine, autocommit=single) as own:
            if job.unique_key is not None:
                found = own.execute(direct.find_unique, {"unique_key": job.unique_key}).fetchone()
                if found is not None:
                    return int(found[0])
            return int(own.execute(direct.insert(tuple(row)), row).lastrowid)

    def _insert_on(self, connection: sa.Connection, job: NewJob, row: dict[str, Any]) -> int:
        if job.unique_key is not None:
            existing = connection.execute(self._find_unique, {"unique_key": job.unique_key}).scalar()
            if existing is not None:
                return int(existing)
        result = connection.execute(self._insert_row, row)
        primary_key = result.inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    def insert_many(self, jobs: Sequence[NewJob], *, now: float | None = None) -> int:
        """Commit many jobs in one transaction (no unique keys); return how many."""
        now = time.time() if now is None else now
        rows = [job.row(now) for job in jobs]
        if any(job.unique_key for job in jobs):
            raise ValueError("insert_many does not take unique keys; use insert")
        with self.engine.begin() as connection:
            for start in range(0, len(rows), 1000):
                connection.execute(self.table.insert(), rows[start : start + 1000])
        return len(rows)

    # -- claiming ---------------------------------------------------------

    def claim(
        self, daemon: str, limit: int, owner: str, *, now: float | None = None, caps: ConcurrencyCaps | None = None,
        promote: bool = True, rates: RateLimits | None = None,
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
        """
        if limit <= 0:
            return []
        from_clock, now = now is None, time.time() if now is None else now
        if (caps is not None and caps.active) or (rates is not None and rates.active):
            return self._claim_capped(daemon, limit, owner, now, caps or ConcurrencyCaps(), rates or RateLimits(), from_clock)
        params = {"claim_daemon": daemon, "claim_now": now, "claim_limit": limit, "claim_owner": owner}
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

    # -- finishing --------------------------------------------------------

    def succeed(self, job_id: int, attempt: int, owner: str, result: Any, *, now: float | None = None) -> bool:
        """Record a successful attempt; False if the job is no longer this owner's."""
        return self._finish(job_id, attempt, owner, JobState.SUCCEEDED, now, result=encode_json(result))

    def fail(
        self,
        job_id: int,
        attempt: int,
        owner: str,
        *,
        error: str,
        traceback: str | None,
        retry_at: float | None,
        now: float | None = None,
    ) -> bool:
        """Record a failed attempt: ``retrying`` until ``retry_at``, or ``dead`` if None."""
        target = JobState.RETRYING if retry_at is not None else JobState.DEAD
        return self._finish(job_id, attempt, owner, target, now, error=error, traceback=traceback, run_at=retry_at)

    def cancelled(self, job_id: int, attempt: int, owner: str, *, error: str, now: float | None = None) -> bool:
        """Record that a running job ended because it was cancelled."""
        return self._finish(job_id, attempt, owner, JobState.CANCELLED, now, error=error)

    def _finish(self, job_id: int, attempt: int, owner: str, target: JobState, now: float | None, **values: Any) -> bool:
        now = time.time() if now is None else now
        transition(JobState.RUNNING, target)
        jobs = self.table
        values.update(state=str(target), updated_at=now, worker_pid=None)
        if target in FINAL:
            values.update(finished_at=now, unique_key=None)
        if target is JobState.RETRYING:
            values.update(owner=None)
        with self.engine.begin() as connection:
            updated = connection.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == str(JobState.RUNNING),
                    jobs.c.attempts == attempt,
                    jobs.c.owner == owner,
                )
                .values(**values)
            ).rowcount
        return bool(updated)

    def apply_outcomes(self, owner: str, outcomes: Sequence[Outcome], *, now: float | None = None) -> int:
        """Write many attempts' outcomes in one transaction; return how many were written.

        Outcomes with the same state and values (a burst of successes returning
        nothing, say) share one UPDATE. Each row is guarded like ``succeed``/
        ``fail``: only an attempt this owner still holds is changed.
        """
        now = time.time() if now is None else now
        jobs = self.table
        groups: dict[tuple[JobState, Any], list[Outcome]] = {}
        for outcome in outcomes:
            transition(JobState.RUNNING, outcome.state)
            groups.setdefault((outcome.state, _group_key(outcome.values)), []).append(outcome)
        written = 0
        with self.engine.begin() as connection:
            for (target, _), members in groups.items():
                values = {**members[0].values, "state": str(target), "updated_at": now, "worker_pid": None}
                if target in FINAL:
                    values.update(finished_at=now, unique_key=None)
                if target is JobState.RETRYING:
                    values.update(owner=None)
                written += int(connection.execute(
                    jobs.update()
                    .where(
                        # The id list first: SQLite then looks rows up by rowid instead of
                        # scanning every job this owner runs for the (id, attempt) pairs.
                        jobs.c.id.in_([o.job_id for o in members]),
                        sa.tuple_(jobs.c.id, jobs.c.attempts).in_([(o.job_id, o.attempt) for o in members]),
                        jobs.c.state == str(JobState.RUNNING),
                        jobs.c.owner == owner,
                    )
                    .values(**values)
                ).rowcount)
        return written

    def save_checkpoint(self, job_id: int, attempt: int, checkpoint: Any) -> bool:
        """Persist a running job's checkpoint; False if that attempt no longer runs."""
        jobs = self.table
        with self.engine.begin() as connection:
            updated = connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempts == attempt, jobs.c.state == str(JobState.RUNNING))
                .values(checkpoint=encode_json(checkpoint), updated_at=time.time())
            ).rowcount
        return bool(updated)

    def save_progress(self, progress_by_job: dict[int, dict[str, Any]]) -> None:
        """Persist the latest progress of running jobs (display data; best effort)."""
        if not progress_by_job:
            return
        jobs = self.table
        with self.engine.begin() as connection:
            for job_id, progress in progress_by_job.items():
                connection.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == str(JobState.RUNNING))
                    .values(progress=encode_json(progress))
                )

    def requeue(self, job_ids: Iterable[int], owner: str | None, *, refund_attempt: bool, now: float | None = None) -> int:
        """Put running jobs back in the queue (drain, or recovery of a dead master's jobs).

        ``refund_attempt`` gives back the attempt a drain interrupted, so a
        graceful stop never uses up a job's retries; recovery after a crash
        keeps it counted. The checkpoint is kept either way.
        """
        ids = list(job_ids)
        if not ids:
            return 0
        jobs = self.table
        guard = [jobs.c.owner == owner] if owner is not None else []
        with self.engine.begin() as connection:
            return self._requeue_on(connection, ids, guard, refund_attempt=refund_attempt, now=now)

    def _requeue_on(
        self, connection: sa.Connection, ids: list[int], guard: list[Any], *, refund_attempt: bool, now: float | None,
    ) -> int:
        """The re-queue UPDATE of ``requeue``, inside the caller's transaction, with its extra ``guard`` conditions."""
        now = time.time() if now is None else now
        transition(JobState.RUNNING, JobState.QUEUED)
        jobs = self.table
        values: dict[str, Any] = {
            "state": str(JobState.QUEUED),
            "owner": None,
            "worker_pid": None,
            "updated_at": now,
        }
        if refund_attempt:
            values["attempts"] = sa.case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0)
        update = jobs.update().where(jobs.c.id.in_(ids), jobs.c.state == str(JobState.RUNNING), *guard).values(**values)
        return int(connection.execute(update).rowcount)

    def requeue_owned_by(self, owners: Sequence[str], *, now: float | None = None) -> list[int]:
        """Re-queue every running job of the given (dead) masters; return their ids."""
        if not owners:
            return []
        return self._requeue_where(self.table.c.owner.in_(owners), now=now)

    def requeue_orphans(self, live_masters: sa.Select[tuple[str]], *, now: float | None = None) -> list[int]:
        """Re-queue running jobs whose owner is not a live master (attempt stays counted).

        One query covers a master another master just declared dead, one whose
        recovery was interrupted, and a row whose master was pruned.
        """
        jobs = self.table
        return self._requeue_where(sa.or_(jobs.c.owner.is_(None), jobs.c.owner.not_in(live_masters)), now=now)

    def _requeue_where(self, orphaned: Any, *, now: float | None) -> list[int]:
        """Find the running jobs ``orphaned`` names and re-queue them in the same transaction.

        Finding and re-queueing in two transactions let two masters recovering
        one dead master's jobs at once both act: the second re-queued a job the
        first had already claimed again, and both ran it. Here the rows stay
        locked (MySQL ``FOR UPDATE``; SQLite's write transaction) from the
        look-up to the UPDATE, and the UPDATE checks ``orphaned`` once more.
        """
        jobs = self.table
        query = sa.select(jobs.c.id).where(*in_states(jobs, [JobState.RUNNING], self.engine.dialect.name), orphaned)
        with self.engine.begin() as connection:
            if self.is_mysql:
                query = query.with_for_update(skip_locked=True)
            ids = list(connection.execute(query).scalars())
            if ids:
                self._requeue_on(connection, ids, [orphaned], refund_attempt=False, now=now)
        return ids

    def prune_finished(self, *, older_than: float, batch: int = 1000) -> list[int]:
        """Delete one batch of finished jobs that ended before ``older_than``; return their ids."""
        jobs = self.table
        with self.engine.begin() as connection:
            ids = list(connection.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.state.in_([str(state) for state in FINAL]), jobs.c.finished_at < older_than)
                .order_by(jobs.c.id)
                .limit(batch)
            ).scalars())
            if ids:
                connection.execute(jobs.delete().where(jobs.c.id.in_(ids)))
        return ids

    # -- operator actions -------------------------------------------------

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        """Cancel a waiting job at once, or flag a running one for its master to stop."""
        now = time.time() if now is None else now
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(connection, job_id, lock=True)
            if job.state is JobState.RUNNING:
                connection.execute(jobs.update().where(jobs.c.id == job_id).values(cancel_requested=True, updated_at=now))
            else:
                target = transition(job.state, JobState.CANCELLED)
                connection.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == str(job.state))
                    .values(state=str(target), finished_at=now, updated_at=now, unique_key=None)
                )
            return self._get_on(connection, job_id)

    def retry(self, job_id: int, *, now: float | None = None) -> Job:
        """Queue a dead or cancelled job again, with a fresh set of attempts."""
        now = time.time() if now is None else now
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(connection, job_id, lock=True)
            if job.state not in sources_of(JobState.QUEUED) - {JobState.RUNNING, JobState.RETRYING, JobState.SCHEDULED}:
                raise InvalidTransition(f"job {job_id} {phrase(job.state)}; only dead or cancelled jobs can be retried")
            connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == str(job.state))
                .values(
                    state=str(JobState.QUEUED), attempts=0, run_at=None, finished_at=None,
                    cancel_requested=False, updated_at=now,
                )
            )
            return self._get_on(connection, job_id)

    def delete(self, job_id: int) -> Job:
        """Delete one finished job (its log lines are the caller's: ``job_logs.delete_for``)."""
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(connection, job_id, lock=True)
            if job.state not in FINAL:
                raise InvalidTransition(f"job {job_id} {phrase(job.state)}; only finished jobs can be deleted (cancel it first)")
            connection.execute(jobs.delete().where(jobs.c.id == job_id, jobs.c.state == str(job.state)))
            return job

    def dead_matching(
        self, action: str, *, daemon: str | None = None, task: str | None = None, created_after: float | None = None,
        created_before: float | None = None, batch: int = defaults.BULK_ACTION_BATCH, most: int = defaults.BULK_ACTION_MAX,
        now: float | None = None,
    ) -> tuple[list[int], bool]:
        """Retry (``"retry"``) or delete (``"delete"``) the dead jobs matching a filter, a batch per transaction.

        Walks the key upward from where the last batch ended, so a retried job
        that dies again meanwhile is not taken twice; every UPDATE/DELETE is
        guarded by ``state = 'dead'``. Returns the ids changed and whether
        matching jobs were left (``most`` reached).
        """
        if action not in ("retry", "delete"):
            raise InvalidArgs(f"unknown bulk action {action!r}")
        now = time.time() if now is None else now
        jobs = self.table
        dead = str(JobState.DEAD)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            window = id_range_for_created(connection, jobs, created_after, created_before) if (
                created_after is not None or created_before is not None) else (0, 2**63 - 1)
        changed: list[int] = []
        if window is None:
            return changed, False
        cursor, top = window[0] - 1, window[1]
        filters = [jobs.c.state == dead, jobs.c.id <= top, *created_conditions(jobs, created_after, created_before)]
        if daemon:
            filters.append(jobs.c.daemon == daemon)
        if task:
            filters.append(jobs.c.task == task)
        while len(changed) < most:
            with self.engine.begin() as connection:
                query = sa.select(jobs.c.id).where(jobs.c.id > cursor, *filters).order_by(jobs.c.id).limit(min(batch, most - len(changed)))
                if self.is_mysql:
                    query = query.with_for_update()  # the ids returned are the rows changed
                ids = list(connection.execute(query).scalars())
                if not ids:
                    return changed, False
                cursor = ids[-1]
                guarded = [jobs.c.id.in_(ids), jobs.c.state == dead]
                if action == "retry":
                    connection.execute(jobs.update().where(*guarded).values(
                        state=str(transition(JobState.DEAD, JobState.QUEUED)), attempts=0, run_at=None, finished_at=None,
                        cancel_requested=False, updated_at=now))
                else:
                    connection.execute(jobs.delete().where(*guarded))
            changed += ids
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            left = connection.execute(sa.select(jobs.c.id).where(jobs.c.id > cursor, *filters).limit(1)).first() is not None
        return changed, left

    def cancel_requests(self, owner: str) -> list[int]:
        """Running jobs of ``owner`` that an operator asked to cancel."""
        jobs = self.table
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return list(
                connection.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.owner == owner, jobs.c.state == str(JobState.RUNNING), jobs.c.cancel_requested.is_(True)
                    )
                ).scalars()
            )

    def mark_dead_unrunnable(self, job_id: int, attempt: int, owner: str, reason: str) -> bool:
        """A claimed job that can never run (unknown task, args not JSON): dead at once."""
        return self.fail(job_id, attempt, owner, error=reason, traceback=None, retry_at=None)

    def out_of_attempts(self, job_id: int, attempt: int, owner: str, reason: str) -> bool:
        """A claimed job whose allowed attempts were all used before this claim: dead, uncharged for the claim.

        Its stored ``attempts`` goes back to the attempts it really had, so it
        never exceeds ``max_attempts``.
        """
        return self._finish(job_id, attempt, owner, JobState.DEAD, None, error=reason, traceback=None, run_at=None, attempts=attempt - 1)

    # -- inspecting -------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return self._get_on(connection, job_id)

    def _get_on(self, connection: sa.Connection, job_id: int, *, lock: bool = False) -> Job:
        query = sa.select(self.table).where(self.table.c.id == job_id)
        if lock and self.is_mysql:
            query = query.with_for_update()
        row = connection.execute(query).mappings().first()
        if row is None:
            raise UnknownJob(f"no job with id {job_id}")
        return row_to_job(row)

    def list(
        self,
        *,
        states: Sequence[JobState | str] = (),  # any stored value (``jobd jobs --state``)
        daemon: str | None = None,
        task: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[Job]:
        """Most recent jobs first, filtered; ``before_id`` pages on by key (no offset, no count).

        A creation-time window becomes a primary-key range (``job_window``), so it walks the key, not the table.
        """
        jobs = self.table
        query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        if created_after is not None or created_before is not None:
            with self.engine.connect().execution_options(**READ_ONLY) as connection:
                window = id_range_for_created(connection, jobs, created_after, created_before)
            if window is None:
                return []
            query = query.where(jobs.c.id.between(*window), *created_conditions(jobs, created_after, created_before))
        if daemon:
            query = query.where(jobs.c.daemon == daemon)
            if states:
                query = query.where(jobs.c.state.in_([str(state) for state in states]))
        elif states:
            query = query.where(*in_states(jobs, states, self.engine.dialect.name))
        if task:
            query = query.where(jobs.c.task == task)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return [row_to_job(row) for row in connection.execute(query).mappings()]

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per daemon and state: ``{daemon: {state: n}}``."""
        jobs = self.table
        query = sa.select(jobs.c.daemon, jobs.c.state, sa.func.count()).group_by(jobs.c.daemon, jobs.c.state)
        result: dict[str, dict[str, int]] = {}
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            for daemon, state, count in connection.execute(query):
                result.setdefault(daemon, {})[state] = int(count)
        return result

    def due_stats(self, *, now: float | None = None) -> dict[str, tuple[int, float | None]]:
        """Per daemon: how many jobs are due and waiting, and since when the oldest is due (metrics)."""
        now = time.time() if now is None else now
        jobs = self.table
        due_since = sa.func.coalesce(jobs.c.run_at, jobs.c.created_at)
        query = (
            sa.select(jobs.c.daemon, sa.func.count(), sa.func.min(due_since))
            .where(
                *in_states(jobs, CLAIMABLE, self.engine.dialect.name),
                sa.or_(jobs.c.run_at.is_(None), jobs.c.run_at <= now),
            )
            .group_by(jobs.c.daemon)
        )
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return {daemon: (int(count), oldest) for daemon, count, oldest in connection.execute(query)}

    def queue_depth(self, daemon: str) -> tuple[int, float | None]:
        """How many of ``daemon``'s jobs are queued (due, waiting for a worker), and since when the oldest."""
        jobs = self.table
        query = sa.select(sa.func.count(), sa.func.min(jobs.c.created_at)).where(
            jobs.c.daemon == daemon, jobs.c.state == str(JobState.QUEUED)
        )
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            count, oldest = connection.execute(query).one()
        return int(count), oldest


def row_to_job(row: Any) -> Job:
    """Decode a jobs row; never raises: a row jobd cannot use says why (``row_decoding``)."""
    return decode_row(row)


def _group_key(values: dict[str, Any]) -> Any:
    """Outcomes writing equal values share one UPDATE; the values are strings, numbers or None."""
    key = tuple(sorted(values.items()))
    try:
        hash(key)
        return key
    except TypeError:  # an unhashable value: group by its JSON instead
        return encode_json(values)
