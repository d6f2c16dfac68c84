"""Finding jobs by state alone ("every running job") through an index, on both backends.

A query that names states but no daemon needs an index led by ``state``. On
MySQL ``jobs_waiting (state, run_at)`` is one. On SQLite it is partial (it
holds only rows with a ``run_at``, so a plain job's INSERT and claim do not
write it; see ``schema.py``), and so are the other indexes led by ``state``:
such a query would read the whole table. What SQLite has instead is the
claim's ``jobs_ready (daemon, state, …)``, usable once the daemons are named.
So on SQLite the condition also says "the daemon is one that has jobs", and
those daemons are found with one index seek each: a loose index scan over
``jobs_ready``, written as a recursive CTE (SQLite has no skip scan without
``ANALYZE`` statistics). SQLite then searches ``(daemon, state)`` per daemon.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from ..states import JobState


def in_states(jobs: sa.Table, states: Iterable[JobState | str], dialect: str) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms for "the job is in one of ``states``", indexed on ``dialect``."""
    names = sorted(str(state) for state in states)
    state_term = jobs.c.state == names[0] if len(names) == 1 else jobs.c.state.in_(names)
    if dialect != "sqlite":
        return [state_term]
    return [jobs.c.daemon.in_(daemons_with_jobs(jobs)), state_term]


def daemons_with_jobs(jobs: sa.Table) -> sa.Select[tuple[str]]:
    """Every daemon that has a row in ``jobs``: the smallest, then the next one above it, and so on."""
    first = sa.select(sa.func.min(jobs.c.daemon).label("name")).cte("daemons_with_jobs", recursive=True)
    following = sa.select(sa.func.min(jobs.c.daemon)).where(jobs.c.daemon > first.c.name).scalar_subquery()
    daemons = first.union_all(sa.select(following).where(first.c.name.is_not(None)))
    return sa.select(daemons.c.name)
