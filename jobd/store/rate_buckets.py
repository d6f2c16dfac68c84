"""The rate_buckets table: each rate-limited key's tokens, shared by every master.

A claim of a rate-limited daemon holds its buckets' rows for the whole
claim transaction (MySQL ``SELECT … FOR UPDATE``; SQLite's claim already
runs in a ``BEGIN IMMEDIATE`` write transaction), refills them to the
claim's ``now``, takes at most their whole tokens and the room left in the
current second, and writes both back before it commits. So two masters can
never spend the same token nor together pass a second's burst. The
arithmetic is ``jobd.rate_limits``; only SQL lives here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..rate_limits import Bucket, RateLimits
from .engine import READ_ONLY, rows_of
from .status_reads_sql import StatusReads


class RateBuckets:
    """Read, lock and write the token buckets of one store."""

    def __init__(self, engine: sa.Engine, table: sa.Table, jobs: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self.jobs = jobs
        self.is_mysql = engine.dialect.name == "mysql"

    def hold(self, connection: sa.Connection, daemon: str, limits: RateLimits, now: float, *, reread_clock: bool = False) -> dict[str, Bucket]:
        """Lock ``daemon``'s buckets for this transaction and return them refilled to ``now``.

        With ``reread_clock``, ``now`` is the clock read again once the rows
        are locked: a claim that waited behind another master's counts in
        the second it really claims in, not the one it asked in (its jobs
        would otherwise start a lock wait later, maybe in the next second).

        A key seen for the first time starts full. Rows are locked in one
        order (the daemon's own first, then tasks by name), so claimers of
        the same daemon never deadlock on them. If one bucket is already
        past ``now`` (another host's clock runs ahead), all are refilled to
        that latest time, so every key counts the claim in the same second.
        """
        buckets = self.table
        rates = limits.rates()
        query = _select(buckets).where(buckets.c.daemon == daemon, buckets.c.task.in_(list(rates))).order_by(buckets.c.task)
        if self.is_mysql:
            query = query.with_for_update()
        stored = _buckets(connection.execute(query))
        missing = [key for key in rates if key not in stored]
        if missing:
            for key in missing:
                full = Bucket.full(rates[key], now)
                try:
                    with connection.begin_nested():  # another master may create it first: then we wait for its row
                        connection.execute(buckets.insert().values(
                            daemon=daemon, task=key, tokens=full.tokens, updated_at=full.updated_at,
                            window_second=full.second, window_started=full.started,
                        ))
                except sa.exc.IntegrityError:
                    pass
            stored = _buckets(connection.execute(query))
        if reread_clock:
            now = max(now, time.time())
        at = max([now, *(bucket.updated_at for bucket in stored.values())])
        return {key: stored[key].refilled(rate, at) for key, rate in rates.items()}

    def save(self, connection: sa.Connection, daemon: str, after: Mapping[str, Bucket]) -> None:
        """Write a claim's buckets (refilled to its ``now``, then spent) inside its transaction."""
        buckets = self.table
        for key, bucket in after.items():
            connection.execute(
                buckets.update()
                .where(buckets.c.daemon == daemon, buckets.c.task == key)
                .values(tokens=bucket.tokens, updated_at=bucket.updated_at, window_second=bucket.second, window_started=bucket.started)
            )

    def waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]:
        """What waits for ``daemon``'s limits (``StatusReads.rate_waits``: ``jobd status`` reads the same)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return StatusReads(rows_of(connection), self.engine.dialect.name).rate_waits(daemon, limits, now)


def _select(buckets: sa.Table) -> sa.Select[Any]:
    """A bucket row's columns, in the order ``_buckets`` reads them."""
    return sa.select(buckets.c.task, buckets.c.tokens, buckets.c.updated_at, buckets.c.window_second, buckets.c.window_started)


def _buckets(rows: Iterable[Sequence[Any]]) -> dict[str, Bucket]:
    """Task key → its bucket, from rows of ``_select`` (the drivers return Decimal or int for numbers)."""
    return {
        str(task): Bucket(float(tokens), float(updated_at), int(second), int(started))
        for task, tokens, updated_at, second, started in rows
    }
