"""Leases in the store: "only one master does this at a time" without home-made consensus.

The statements are driver SQL (``registry_sql.LeaseWrites``), run here in a
transaction of the store's runner (``sql_runner``).
"""

from __future__ import annotations

import time


from .sql_runner import SqlRunner
from .registry_sql import LeaseWrites


class Leases:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def acquire(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool:
        """Take (or renew) the lease ``name`` for ``ttl`` seconds; False if another holds it."""
        with self.runner.write() as sql:
            return LeaseWrites(sql).acquire(name, owner, ttl=ttl, now=time.time() if now is None else now)
