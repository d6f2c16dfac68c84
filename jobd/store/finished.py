"""Jobs finished per minute, from the store: the charts' history when no activity store answers.

One grouped query over the ``jobs_state_finished`` index (state, finished_at):
a range per finished state, counted by minute inside the database, so it
reads the index entries of the window only and returns at most a few
hundred rows, whatever the table's size. Only jobs that ended for good
carry ``finished_at``: failed attempts that will be retried are not in it
(the activity counters count those), and a job retried since is counted at
its latest end.
"""

from __future__ import annotations

import sqlalchemy as sa

from .. import defaults
from ..states import JobState
from .engine import READ_ONLY

#: Ends that count as "finished" on the chart (cancelled jobs did not run to an end).
FINISHED_STATES = (JobState.SUCCEEDED, JobState.DEAD)


def finished_per_minute(engine: sa.Engine, jobs: sa.Table, start: float, end: float) -> dict[int, int]:
    """Minute bucket (as ``activity.base.bucket_of``) → jobs that finished in it, for ``start <= finished_at < end``."""
    size = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
    minute: sa.ColumnElement[int]
    if engine.dialect.name == "sqlite":  # CAST truncates; epochs are positive, so that is floor
        minute = sa.cast(jobs.c.finished_at / size, sa.Integer)
    else:  # MySQL's CAST rounds
        minute = sa.cast(sa.func.floor(jobs.c.finished_at / size), sa.Integer)
    minute = minute.label("minute")
    query = (
        sa.select(minute, sa.func.count())
        .where(jobs.c.state.in_([str(state) for state in FINISHED_STATES]), jobs.c.finished_at >= start, jobs.c.finished_at < end)
        .group_by(minute)
    )
    with engine.connect().execution_options(**READ_ONLY) as connection:
        return {int(bucket): int(count) for bucket, count in connection.execute(query)}
