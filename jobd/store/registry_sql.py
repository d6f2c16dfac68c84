"""Writing the tables masters coordinate through — the masters' registry, leases, desired daemon states, the
task catalogue — in SQL with the driver's placeholders, written once (``sql_statements``).

Each class runs on a ``Statements`` in whatever transaction its caller
holds; the store's tables (``masters``, ``leases``, ``desired_states``,
``task_catalogue``) open the transaction on their runner (``sql_runner``) and call these.
Values are parameters, never pasted in; only jobd's own constants (table
names, the live states) are part of the text.

Where a row may not exist yet, the UPDATE comes first and the INSERT only
when it changed nothing; an INSERT that another writer beat to the key is
refused on its own (SQLite and MySQL end only the statement, not the
transaction), and that writer's row is then updated, or, for a lease, left
to it. No savepoint is needed for that, and none is sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import defaults
from .catalogue_row import CatalogueRow
from .master_record import LIVE_STATES
from .sql_statements import Statements, is_duplicate_key

P = defaults.TABLE_PREFIX


class MasterWrites:
    """A master's own row: registered at start, renewed by its heartbeat, ended by it or declared dead by another."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql
        self._live = f"state IN ({sql.marks(len(LIVE_STATES))})"

    def register(
        self, master_id: str, *, host: str, pid: int, version: str, daemons: list[str], control_socket: str | None, now: float,
    ) -> None:
        self.sql.run(
            f"INSERT INTO {P}masters (id, host, pid, version, state, daemons, control_socket, started_at, heartbeat_at) "
            f"VALUES ({self.sql.marks(9)})",
            (master_id, host, pid, version, "running", json.dumps(daemons), control_socket, now, now),
        )

    def heartbeat(self, master_id: str, *, state: str, daemons: list[str] | None, now: float) -> bool:
        """Renew the lease; False if the row is gone or no longer live (another master declared it dead)."""
        mark = self.sql.mark
        settings, values = f"heartbeat_at = {mark}, state = {mark}", [now, state]
        if daemons is not None:
            settings += f", daemons = {mark}"
            values.append(json.dumps(daemons))
        sql = f"UPDATE {P}masters SET {settings} WHERE id = {mark} AND {self._live}"
        return bool(self.sql.run(sql, (*values, master_id, *LIVE_STATES)))

    def declare_dead(self, master_id: str, *, beat_before: float | None, now: float) -> bool:
        """Mark a live master dead, only if it has not beaten since ``beat_before`` (None: whenever it last beat)."""
        mark = self.sql.mark
        sql = f"UPDATE {P}masters SET state = {mark}, stopped_at = {mark} WHERE id = {mark} AND {self._live}"
        values: tuple[object, ...] = ("dead", now, master_id, *LIVE_STATES)
        if beat_before is not None:
            sql += f" AND heartbeat_at < {mark}"
            values += (beat_before,)
        return bool(self.sql.run(sql, values))

    def mark_stopped(self, master_id: str, *, now: float) -> None:
        """A clean stop; a master already declared dead stays dead."""
        mark = self.sql.mark
        self.sql.run(
            f"UPDATE {P}masters SET state = {mark}, stopped_at = {mark} WHERE id = {mark} AND {self._live}",
            ("stopped", now, master_id, *LIVE_STATES),
        )

    def prune(self, *, older_than: float) -> int:
        """Forget stopped and dead masters that ended before ``older_than``; how many."""
        mark = self.sql.mark
        return self.sql.run(
            f"DELETE FROM {P}masters WHERE state IN ({mark}, {mark}) AND stopped_at < {mark}", ("stopped", "dead", older_than),
        )


class LeaseWrites:
    """Named leases: "only one master does this at a time" (``claim:mailing``, ``prune``)."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def acquire(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        """Take (or renew) lease ``name`` until ``now + ttl``; False if another owner holds it unexpired."""
        mark = self.sql.mark
        taken = self.sql.run(
            f"UPDATE {P}locks SET owner = {mark}, expires_at = {mark} "
            f"WHERE name = {mark} AND (expires_at IS NULL OR expires_at < {mark} OR owner = {mark})",
            (owner, now + ttl, name, now, owner),
        )
        if taken:
            return True
        try:
            self.sql.run(f"INSERT INTO {P}locks (name, owner, expires_at) VALUES ({self.sql.marks(3)})", (name, owner, now + ttl))
        except Exception as error:
            if is_duplicate_key(error):
                return False  # it exists and another holds it
            raise
        return True


class DesiredStateWrites:
    """What `jobd start/stop/scale DAEMON` asked for on a host, one row per (host, daemon)."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def save(self, host: str, daemon: str, *, running: bool, workers: int | None, now: float) -> None:
        mark = self.sql.mark
        update = f"UPDATE {P}daemon_states SET running = {mark}, workers = {mark}, updated_at = {mark} WHERE host = {mark} AND daemon = {mark}"
        values = (running, workers, now, host, daemon)
        if self.sql.run(update, values):
            return
        try:
            self.sql.run(
                f"INSERT INTO {P}daemon_states (host, daemon, running, workers, updated_at) VALUES ({self.sql.marks(5)})",
                (host, daemon, running, workers, now),
            )
        except Exception as error:
            if not is_duplicate_key(error):
                raise
            self.sql.run(update, values)  # another writer inserted it first: ours is newer


class CatalogueWrites:
    """The task catalogue's rows: one per daemon, replaced only when its version changed."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def read(self) -> list[CatalogueRow]:
        """Every daemon's row."""
        rows = self.sql.rows(f"SELECT daemon, version, tasks, published_at FROM {P}task_catalogue", ())
        return [CatalogueRow(row["daemon"], row["version"], row["tasks"], float(row["published_at"])) for row in rows]

    def publish(self, rows: Sequence[CatalogueRow]) -> list[str]:
        """Write each row whose daemon has another version stored (or none); the daemons written."""
        mark = self.sql.mark
        stored = {row["daemon"]: row["version"] for row in self.sql.rows(f"SELECT daemon, version FROM {P}task_catalogue", ())}
        update = f"UPDATE {P}task_catalogue SET version = {mark}, tasks = {mark}, published_at = {mark} WHERE daemon = {mark}"
        written = []
        for row in rows:
            if stored.get(row.daemon) == row.version:
                continue
            values = (row.version, row.tasks, row.published_at, row.daemon)
            if not self.sql.run(update, values):
                try:
                    self.sql.run(
                        f"INSERT INTO {P}task_catalogue (daemon, version, tasks, published_at) VALUES ({self.sql.marks(4)})",
                        (row.daemon, row.version, row.tasks, row.published_at),
                    )
                except Exception as error:
                    if not is_duplicate_key(error):
                        raise
                    self.sql.run(update, values)  # another publisher inserted it first: ours is as new
            written.append(row.daemon)
        return written
