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

from collections.abc import Mapping
from typing import Any


from ..rate_limits import Bucket, RateLimits
from .sql_runner import SqlRunner
from .sql_statements import Statements
from .rate_bucket_sql import RateBucketStatements
from .status_reads_sql import StatusReads


class RateBuckets:
    """Read, lock and write the token buckets of one store."""

    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def hold(self, sql: Statements, daemon: str, limits: RateLimits, now: float, *, reread_clock: bool = False) -> dict[str, Bucket]:
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
        The statements are ``rate_bucket_sql``'s.
        """
        return RateBucketStatements(sql).hold(daemon, limits, now, reread_clock=reread_clock)

    def save(self, sql: Statements, daemon: str, after: Mapping[str, Bucket]) -> None:
        """Write a claim's buckets (refilled to its ``now``, then spent) inside its transaction."""
        RateBucketStatements(sql).save(daemon, after)

    def waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]:
        """What waits for ``daemon``'s limits (``StatusReads.rate_waits``: ``jobd status`` reads the same)."""
        with self.runner.read() as sql:
            return StatusReads(sql.rows, self.runner.dialect).rate_waits(daemon, limits, now)
