"""The claim's and the submit's statements, built once with bound parameters.

Claims run many times a second; building SQLAlchemy expressions each time
was most of the master's CPU.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ... import defaults
from ...states import JobState, transition
from ..cursor_sql import DirectStatement
from ..schema import UNDATED_WHERE


PROMOTE_INTERVAL_SECONDS = 0.1


NO_PRIORITY_BOUND = -(2**31)  # the lowest value of the INTEGER priority column: every job qualifies


class ClaimStatements:
    """The claim's statements, built once with bound parameters.

    Claims run many times a second; building SQLAlchemy expressions each time
    was most of the master's CPU. Parameters: claim_daemon, claim_now,
    claim_limit, claim_owner, claim_min_priority (``NO_PRIORITY_BOUND`` but
    for a claim past a full prefetch) and claim_ids for MySQL's second step.
    """

    def __init__(self, jobs: sa.Table) -> None:
        now: sa.BindParameter[float] = sa.bindparam("claim_now", type_=sa.Double())
        due = sa.and_(
            jobs.c.daemon == sa.bindparam("claim_daemon"),
            jobs.c.state == str(JobState.QUEUED),
            jobs.c.priority >= sa.bindparam("claim_min_priority", type_=sa.Integer()),
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
        # Scheduled and retrying jobs whose time has come become queued (see ``claim.Claiming``).
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


class DirectStatements:
    """The submit's and the claim's statements, compiled for direct execution (``direct.py``).

    They sit on the submit-to-start path; everything else goes through
    SQLAlchemy connections as usual.
    """

    def __init__(self, engine: sa.Engine, jobs: sa.Table, claim: ClaimStatements) -> None:
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
