"""A claim's token buckets, locked, refilled and written back, in SQL with the driver's placeholders (``sql_statements``).

Run inside the claim's own transaction (``rate_buckets.RateBuckets`` says
why the rows are held for all of it). Values are parameters, never pasted in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from .. import defaults
from ..rate_limits import Bucket, RateLimits
from .sql_statements import Statements, is_duplicate_key

BUCKETS = f"{defaults.TABLE_PREFIX}rate_buckets"


class RateBucketStatements:
    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def hold(self, daemon: str, limits: RateLimits, now: float, *, reread_clock: bool = False) -> dict[str, Bucket]:
        """Lock ``daemon``'s buckets for this transaction and return them refilled (``RateBuckets.hold``)."""
        rates = limits.rates()
        keys = sorted(rates)
        query = (
            f"SELECT task, tokens, updated_at, window_second, window_started FROM {BUCKETS} "
            f"WHERE daemon = {self.sql.mark} AND task IN ({self.sql.marks(len(keys))}) ORDER BY task"
            + (" FOR UPDATE" if self.sql.dialect == "mysql" else "")
        )
        stored = self._buckets(query, (daemon, *keys))
        missing = [key for key in keys if key not in stored]
        if missing:
            insert = (
                f"INSERT INTO {BUCKETS} (daemon, task, tokens, updated_at, window_second, window_started) "
                f"VALUES ({self.sql.marks(6)})"
            )
            for key in missing:
                full = Bucket.full(rates[key], now)
                try:
                    self.sql.run(insert, (daemon, key, full.tokens, full.updated_at, full.second, full.started))
                except Exception as error:
                    if not is_duplicate_key(error):
                        raise  # another master created it first: its row is read (and waited for) below
            stored = self._buckets(query, (daemon, *keys))
        if reread_clock:
            now = max(now, time.time())
        at = max([now, *(bucket.updated_at for bucket in stored.values())])
        return {key: stored[key].refilled(rate, at) for key, rate in rates.items()}

    def save(self, daemon: str, after: Mapping[str, Bucket]) -> None:
        """Write a claim's buckets (refilled to its ``now``, then spent) inside its transaction."""
        mark = self.sql.mark
        update = (
            f"UPDATE {BUCKETS} SET tokens = {mark}, updated_at = {mark}, window_second = {mark}, window_started = {mark} "
            f"WHERE daemon = {mark} AND task = {mark}"
        )
        for key, bucket in after.items():
            self.sql.run(update, (bucket.tokens, bucket.updated_at, bucket.second, bucket.started, daemon, key))

    def _buckets(self, query: str, values: tuple[object, ...]) -> dict[str, Bucket]:
        """Task key → its bucket (the drivers return Decimal or int for numbers)."""
        return {
            str(row["task"]): Bucket(float(row["tokens"]), float(row["updated_at"]), int(row["window_second"]), int(row["window_started"]))
            for row in self.sql.rows(query, values)
        }
