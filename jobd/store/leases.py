"""Leases in the store: "only one master does this at a time" without home-made consensus."""

from __future__ import annotations

import time

import sqlalchemy as sa


class Leases:
    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def acquire(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool:
        """Take (or renew) the lease ``name`` for ``ttl`` seconds; False if another holds it."""
        now = time.time() if now is None else now
        locks = self.table
        with self.engine.begin() as connection:
            taken = connection.execute(
                locks.update()
                .where(locks.c.name == name, sa.or_(locks.c.expires_at.is_(None), locks.c.expires_at < now, locks.c.owner == owner))
                .values(owner=owner, expires_at=now + ttl)
            ).rowcount
            if taken:
                return True
            try:
                with connection.begin_nested():
                    connection.execute(locks.insert().values(name=name, owner=owner, expires_at=now + ttl))
            except sa.exc.IntegrityError:
                return False
        return True
