"""The jobs table as a queue: insert, claim, finish, retry, cancel, inspect.

Every state written here comes from ``jobd.states.transition`` and every
UPDATE is guarded by the state it leaves (and, for a running job, by the
attempt and owner that claimed it), so a late message from a worker or a
master that lost its job can never overwrite newer truth.

``JobQueue`` is what the master needs, driver SQL on a runner with no
SQLAlchemy; ``full.FullJobQueue`` adds the submit and the operator actions.
"""

from __future__ import annotations

from .claim import PROMOTE_INTERVAL_SECONDS, Claiming
from .outcomes import Finishing
from .queries import Queries
from .records import NewJob, Outcome, row_to_job
from .recovery import Recovering
from ..job_claim_sql import counted_attempt_of

__all__ = ["JobQueue", "NewJob", "Outcome", "PROMOTE_INTERVAL_SECONDS", "counted_attempt_of", "row_to_job"]


class JobQueue(Claiming, Finishing, Recovering, Queries):
    """Queue operations over the jobs table of one store: one concern per module of this package."""
