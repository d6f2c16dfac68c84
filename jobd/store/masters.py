"""Masters in the store: registration, heartbeats, declaring the silent ones dead.

Who is alive is the record's own question (``master_record.MasterRecord.is_alive``),
so ``jobd status`` answers it with no SQLAlchemy loaded.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import sqlalchemy as sa

from .engine import READ_ONLY, rows_of
from .master_record import LIVE_STATES, MasterRecord, pid_exists
from .status_reads_sql import StatusReads

__all__ = ["LIVE_STATES", "MasterRecord", "MasterRegistry", "pid_exists"]  # the record lives in ``master_record``: no SQLAlchemy

class MasterRegistry:
    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def register(self, master_id: str, *, pid: int, version: str, daemons: list[str], control_socket: str | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            connection.execute(
                self.table.insert().values(
                    id=master_id,
                    host=socket.gethostname(),
                    pid=pid,
                    version=version,
                    state="running",
                    daemons=json.dumps(daemons),
                    control_socket=control_socket,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def heartbeat(self, master_id: str, *, state: str, daemons: list[str] | None = None, now: float | None = None) -> bool:
        """Renew the lease; False if this master's row is gone or marked stopped by another."""
        now = time.time() if now is None else now
        values: dict[str, Any] = {"heartbeat_at": now, "state": state}
        if daemons is not None:
            values["daemons"] = json.dumps(daemons)
        with self.engine.begin() as connection:
            updated = connection.execute(
                self.table.update()
                .where(self.table.c.id == master_id, self.table.c.state.in_(LIVE_STATES))
                .values(**values)
            ).rowcount
        return bool(updated)

    def declare_dead(self, record: MasterRecord, *, lease: float, now: float | None = None) -> bool:
        """Mark a silent master dead, unless it beat in the meantime. True if this call did it.

        The guard on the heartbeat makes this race-free against the master's
        own heartbeat: exactly one of the two UPDATEs wins the row, so a master
        is never both alive in its own eyes and dead in another's.
        """
        now = time.time() if now is None else now
        conditions = [self.table.c.id == record.id, self.table.c.state.in_(LIVE_STATES)]
        if record.host != socket.gethostname() or pid_exists(record.pid):
            conditions.append(self.table.c.heartbeat_at < now - lease)
        with self.engine.begin() as connection:
            updated = connection.execute(self.table.update().where(*conditions).values(state="dead", stopped_at=now)).rowcount
        return bool(updated)

    def live_ids_query(self) -> sa.Select[tuple[str]]:
        """SELECT of the ids of masters that may own jobs (running or draining)."""
        return sa.select(self.table.c.id).where(self.table.c.state.in_(LIVE_STATES))

    def prune(self, *, older_than: float) -> int:
        """Forget stopped and dead masters that ended before ``older_than``."""
        with self.engine.begin() as connection:
            return int(connection.execute(
                self.table.delete().where(self.table.c.state.in_(["stopped", "dead"]), self.table.c.stopped_at < older_than)
            ).rowcount)

    def mark_stopped(self, master_id: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            connection.execute(  # a master already declared dead stays dead
                self.table.update()
                .where(self.table.c.id == master_id, self.table.c.state.in_(LIVE_STATES))
                .values(state="stopped", stopped_at=now)
            )

    def all(self) -> list[MasterRecord]:
        """Every registered master, newest first (``StatusReads.masters``: ``jobd status`` reads the same)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return StatusReads(rows_of(connection), self.engine.dialect.name).masters()

    def dead_ids(self, *, lease: float, now: float | None = None) -> list[str]:
        """Ids of masters that are not alive (stopped, crashed on this host, or lease expired)."""
        now = time.time() if now is None else now
        return [record.id for record in self.all() if not record.is_alive(now, lease)]

    def silent(self, *, lease: float, now: float | None = None) -> list[MasterRecord]:
        """Masters still marked live whose lease expired (or whose local process is gone)."""
        now = time.time() if now is None else now
        return [record for record in self.all() if record.state in LIVE_STATES and not record.is_alive(now, lease)]

    def live(self, *, lease: float, now: float | None = None) -> list[MasterRecord]:
        now = time.time() if now is None else now
        return [record for record in self.all() if record.is_alive(now, lease)]
