"""Finding jobs by state alone ("every running job") through an index, as SQLAlchemy conditions.

The reasoning, and the SQL, are ``job_reads_sql.JobReads.in_states``'s: on
SQLite the condition also says "the daemon is one that has jobs"
(``DAEMON_HAS_JOBS``), so SQLite searches the claim's ``(daemon, state)``
index per daemon instead of reading the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from ..states import JobState
from .job_reads_sql import DAEMON_HAS_JOBS


def in_states(jobs: sa.Table, states: Iterable[JobState | str], dialect: str) -> list[sa.ColumnElement[bool] | sa.TextClause]:
    """The WHERE terms for "the job is in one of ``states``", indexed on ``dialect`` (a query on ``jobs`` alone)."""
    names = sorted(str(state) for state in states)
    state_term: sa.ColumnElement[bool] = jobs.c.state == names[0] if len(names) == 1 else jobs.c.state.in_(names)
    if dialect != "sqlite":
        return [state_term]
    return [sa.text(DAEMON_HAS_JOBS), state_term]
