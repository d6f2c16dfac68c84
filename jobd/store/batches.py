"""Batches in the store: their rows, their members, and the counters kept in step with members' endings.

The counters change in the same transaction as the member's own row, from
every place a job's final state is written (``BatchCounterSql.record``, called
once per transaction by ``JobQueue``): a crash, a retried write or two masters
finishing members at once can neither lose nor double a count. A callback
job is inserted by the transaction whose conditional UPDATE moved the batch
on (``state`` open → complete, ``failure_job_id`` NULL → set): that UPDATE
matches once, so the callback exists exactly once, and only if that
transaction commits.

Lock order, to keep masters from deadlocking on MySQL: a transaction touches
members' job rows first and the batch's row after (endings, cancel, adding
members all do), batch rows in id order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..batch_record import Batch, BatchState, Callback, batch_transition
from ..errors import InvalidArgs, InvalidTransition
from ..states import CLAIMABLE, JobState, transition
from .batch_counter_sql import BatchCounterSql
from .batch_shelf import BatchShelf
from .engine import statements_on
from .sql_runner import SqlRunner

if TYPE_CHECKING:
    from .jobs import NewJob

class BatchBook(BatchShelf):
    """Creating, sealing and cancelling batches (SQLAlchemy Core), as well as reading them (``BatchShelf``)."""

    def __init__(self, runner: SqlRunner, engine: sa.Engine, batches: sa.Table, jobs: sa.Table) -> None:
        super().__init__(runner)
        self.engine = engine
        self.batches = batches
        self.jobs = jobs
        self._insert_returning_ids = jobs.insert().returning(jobs.c.id, sort_by_parameter_order=True)

    def create(
        self, name: str, *, on_complete: Callback | None = None, on_failure: Callback | None = None,
        connection: sa.Connection | None = None, now: float | None = None,
    ) -> int:
        """A new open, unsealed batch; its id."""
        now = time.time() if now is None else now
        row = {
            "name": name, "state": str(BatchState.OPEN), "sealed": False, "total": 0, "succeeded": 0, "dead": 0, "cancelled": 0,
            "on_complete": json.dumps(on_complete.to_dict()) if on_complete else None,
            "on_failure": json.dumps(on_failure.to_dict()) if on_failure else None,
            "created_at": now, "updated_at": now,
        }
        with _transaction(self.engine, connection) as own:
            primary_key = own.execute(self.batches.insert().values(**row)).inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    def add_members(
        self, batch_id: int, jobs: Sequence[NewJob], *, by_member: int | None = None,
        connection: sa.Connection | None = None, now: float | None = None,
    ) -> list[int]:
        """Insert ``jobs`` as members of the batch and count them, in one transaction; their ids.

        Unique keys are refused: a duplicate would be counted yet never run
        as a member. The rows go in as multi-row INSERTs with ``RETURNING``
        (SQLite 3.35+, MariaDB 10.5+), ids in the order of ``jobs``.
        """
        now = time.time() if now is None else now
        if any(job.unique_key is not None or job.handed_to is not None for job in jobs):
            raise InvalidArgs("batch members take no unique key")
        rows = [replace(job, batch_id=batch_id).row(now) for job in jobs]
        with _transaction(self.engine, connection) as own:
            ids = [int(job_id) for job_id in own.execute(self._insert_returning_ids, rows).scalars()]
            self.count_added(own, batch_id, len(ids), by_member=by_member, now=now)
        return ids

    def count_added(self, connection: sa.Connection, batch_id: int, added: int, *, by_member: int | None, now: float) -> None:
        """Count ``added`` members just inserted in this transaction; refuse (roll back) if the batch takes none.

        An open batch takes members until it is sealed; after that only from
        one of its own running members (a fan-out from a task).
        """
        batches, jobs = self.batches, self.jobs
        takes = [batches.c.state == str(BatchState.OPEN)]
        if by_member is None:
            takes.append(batches.c.sealed.is_(False))
        else:
            member = connection.execute(sa.select(jobs.c.state, jobs.c.batch_id).where(jobs.c.id == by_member)).first()
            if member is None or member.batch_id != batch_id or member.state != str(JobState.RUNNING):
                raise InvalidTransition(f"job {by_member} is not a running member of batch {batch_id}; only those add to it")
        updated = connection.execute(
            batches.update().where(batches.c.id == batch_id, *takes).values(total=batches.c.total + added, updated_at=now)
        ).rowcount
        if not updated:
            batch = self._get_on(connection, batch_id)
            why = "sealed: only its running members add to it" if batch.state is BatchState.OPEN else str(batch.state)
            raise InvalidTransition(f"batch {batch_id} ({batch.name!r}) takes no more members: it is {why}")

    def seal(self, batch_id: int, *, connection: sa.Connection | None = None, now: float | None = None) -> Batch:
        """No more members but from its running ones; it completes once every member has finished (maybe now)."""
        now = time.time() if now is None else now
        with _transaction(self.engine, connection) as own:
            own.execute(
                self.batches.update().where(self.batches.c.id == batch_id, self.batches.c.state == str(BatchState.OPEN))
                .values(sealed=True, updated_at=now)
            )
            BatchCounterSql(statements_on(own)).settle(batch_id, now)
            return self._get_on(own, batch_id)

    def cancel(self, batch_id: int, *, connection: sa.Connection | None = None, now: float | None = None) -> Batch:
        """Cancel the batch: its waiting members now, its running ones asked to stop; no callback runs."""
        now = time.time() if now is None else now
        jobs, batches = self.jobs, self.batches
        with _transaction(self.engine, connection) as own:
            batch = self._get_on(own, batch_id)
            batch_transition(batch.state, BatchState.CANCELLED)
            members = jobs.c.batch_id == batch_id
            cancelled = 0
            for waiting in sorted(CLAIMABLE):
                cancelled += int(own.execute(
                    jobs.update().where(members, jobs.c.state == str(waiting))
                    .values(state=str(transition(waiting, JobState.CANCELLED)), finished_at=now, updated_at=now,
                            unique_key=None, error=f"batch {batch_id} was cancelled")
                ).rowcount)
            own.execute(
                jobs.update().where(members, jobs.c.state == str(JobState.RUNNING)).values(cancel_requested=True, updated_at=now)
            )
            updated = own.execute(
                batches.update().where(batches.c.id == batch_id, batches.c.state == str(BatchState.OPEN))
                .values(state=str(BatchState.CANCELLED), cancelled=batches.c.cancelled + cancelled, finished_at=now, updated_at=now)
            ).rowcount
            if not updated:  # completed meanwhile (its last member ended between the read and here): undo all
                raise InvalidTransition(f"batch {batch_id} completed before it could be cancelled")
            return self._get_on(own, batch_id)

    def _get_on(self, connection: sa.Connection, batch_id: int) -> Batch:
        return self._reads(statements_on(connection)).batch(batch_id)


class _transaction:
    """The caller's transaction when it gives one (it commits or rolls back), else one of our own."""

    def __init__(self, engine: sa.Engine, connection: sa.Connection | None) -> None:
        self.engine = engine
        self.given = connection
        self._own: Any = None

    def __enter__(self) -> sa.Connection:
        if self.given is not None:
            return self.given
        self._own = self.engine.begin()
        return self._own.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._own is not None:
            self._own.__exit__(*exc)

