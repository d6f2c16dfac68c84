"""The task catalogue's rows: one per daemon, its version and its tasks as JSON (``jobd.catalogue``).

Publishing writes only the daemons whose version changed, so every master
of a cluster publishing the same config at start writes nothing after the
first. Reading returns every row in one statement: a submitting process
holds the whole catalogue and asks again only when it is old or refused.
The statements are driver SQL (``registry_sql.CatalogueWrites``).
"""

from __future__ import annotations


from .catalogue_row import CatalogueRow
from .sql_runner import SqlRunner
from .registry_sql import CatalogueWrites

__all__ = ["CatalogueRow", "TaskCatalogueTable"]


class TaskCatalogueTable:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def read(self) -> list[CatalogueRow]:
        """Every daemon's row."""
        with self.runner.read() as sql:
            return CatalogueWrites(sql).read()

    def publish(self, rows: list[CatalogueRow]) -> list[str]:
        """Write each row whose daemon has another version in the store (or none); return those daemons."""
        with self.runner.write() as sql:
            return CatalogueWrites(sql).publish(rows)
