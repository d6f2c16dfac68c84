"""Leases in the store: "only one master does this at a time" without home-made consensus.

The statements are driver SQL (``registry_sql.LeaseWrites``), run here in a
transaction of the store's engine.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from .engine import statements_on
from .registry_sql import LeaseWrites


class Leases:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool:
        """Take (or renew) the lease ``name`` for ``ttl`` seconds; False if another holds it."""
        with self.engine.begin() as connection:
            return LeaseWrites(statements_on(connection)).acquire(name, owner, ttl=ttl, now=time.time() if now is None else now)
