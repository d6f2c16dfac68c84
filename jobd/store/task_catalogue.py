"""The task catalogue's rows: one per daemon, its version and its tasks as JSON (``jobd.catalogue``).

Publishing writes only the daemons whose version changed, so every master
of a cluster publishing the same config at start writes nothing after the
first. Reading returns every row in one statement: a submitting process
holds the whole catalogue and asks again only when it is old or refused.
"""

from __future__ import annotations

import sqlalchemy as sa

from .catalogue_row import CatalogueRow
from .engine import READ_ONLY

__all__ = ["CatalogueRow", "TaskCatalogueTable"]


class TaskCatalogueTable:
    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def read(self) -> list[CatalogueRow]:
        """Every daemon's row."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            rows = connection.execute(sa.select(self.table)).mappings().all()
        return [CatalogueRow(row["daemon"], row["version"], row["tasks"], float(row["published_at"])) for row in rows]

    def publish(self, rows: list[CatalogueRow]) -> list[str]:
        """Write each row whose daemon has another version in the store (or none); return those daemons."""
        written = []
        with self.engine.begin() as connection:
            stored = {daemon: version for daemon, version in connection.execute(sa.select(self.table.c.daemon, self.table.c.version))}
            for row in rows:
                if stored.get(row.daemon) == row.version:
                    continue
                values = {"version": row.version, "tasks": row.tasks, "published_at": row.published_at}
                key = self.table.c.daemon == row.daemon
                if not connection.execute(self.table.update().where(key).values(**values)).rowcount:
                    try:
                        with connection.begin_nested():
                            connection.execute(self.table.insert().values(daemon=row.daemon, **values))
                    except sa.exc.IntegrityError:  # another publisher inserted it first: ours is as new
                        connection.execute(self.table.update().where(key).values(**values))
                written.append(row.daemon)
        return written
