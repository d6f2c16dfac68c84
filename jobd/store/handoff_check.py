"""Whether a hand-off datagram names a job its receiver may run: the store decides, not the datagram.

A ``run`` datagram (``jobd.handoff``) only names a job. Sent by anyone who
may write to the socket, or replayed after the job ended, it used to be run
as described: a job that does not exist ran, and one that had succeeded ran
again. Before a job handed this way starts, its row must say it is
``running``, owned by the receiving master, on its first attempt (a submit
inserts it so; any later attempt was claimed, never handed) and of the
receiver's daemon. One primary-key read on the submit-to-start path,
measured in docs/faults.md.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..states import JobState
from .cursor_sql import DirectStatement, direct_transaction

#: A handed job is inserted on its first attempt (``NewJob.row`` with ``handed_to``).
HANDED_ATTEMPT = 1


class HandoffCheck:
    """The guarded read, compiled once for a store's engine (a worker keeps one)."""

    def __init__(self, engine: sa.Engine, jobs: sa.Table, *, autocommit_engine: sa.Engine | None = None) -> None:
        """``autocommit_engine`` (MySQL: the store's submit engine): the read needs no COMMIT round trip."""
        self.engine = autocommit_engine or engine
        self.autocommit = autocommit_engine is not None
        engine.connect().close()  # the dialect learns the server first (see JobQueue._direct)
        self._statement = DirectStatement(engine, sa.select(jobs.c.id).where(
            jobs.c.id == sa.bindparam("job_id"),
            jobs.c.state == str(JobState.RUNNING),
            jobs.c.owner == sa.bindparam("owner"),
            jobs.c.attempts == HANDED_ATTEMPT,
            jobs.c.daemon == sa.bindparam("daemon"),
        ))

    def runnable(self, job_id: int, owner: str, daemon: str) -> bool:
        """True if the store holds ``job_id`` as ``owner``'s running first attempt for ``daemon``."""
        with direct_transaction(self.engine, read_only=True, autocommit=self.autocommit) as transaction:
            # fetchall, not fetchone: the statement must end here, or SQLite keeps a read
            # transaction open on this connection and WAL checkpoints cannot finish.
            found = transaction.execute(self._statement, {"job_id": job_id, "owner": owner, "daemon": daemon}).fetchall()
        return bool(found)
