"""Masters in the store: registration, heartbeats, declaring the silent ones dead.

The statements are driver SQL (``registry_sql.MasterWrites``), run here in a
transaction of the store's runner (``sql_runner``).

Who is alive is the record's own question (``master_record.MasterRecord.is_alive``),
so ``jobd status`` answers it with no SQLAlchemy loaded.
"""

from __future__ import annotations

import socket
import time


from .sql_runner import SqlRunner
from .master_record import LIVE_STATES, MasterRecord, pid_exists
from .registry_sql import MasterWrites
from .status_reads_sql import StatusReads

__all__ = ["LIVE_STATES", "MasterRecord", "MasterRegistry", "pid_exists"]  # the record lives in ``master_record``: no SQLAlchemy

class MasterRegistry:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def register(self, master_id: str, *, pid: int, version: str, daemons: list[str], control_socket: str | None, now: float | None = None) -> None:
        with self.runner.write() as sql:
            MasterWrites(sql).register(
                master_id, host=socket.gethostname(), pid=pid, version=version, daemons=daemons, control_socket=control_socket,
                now=time.time() if now is None else now,
            )

    def heartbeat(self, master_id: str, *, state: str, daemons: list[str] | None = None, now: float | None = None) -> bool:
        """Renew the lease; False if this master's row is gone or marked stopped by another."""
        with self.runner.write() as sql:
            return MasterWrites(sql).heartbeat(
                master_id, state=state, daemons=daemons, now=time.time() if now is None else now,
            )

    def declare_dead(self, record: MasterRecord, *, lease: float, now: float | None = None) -> bool:
        """Mark a silent master dead, unless it beat in the meantime. True if this call did it.

        The guard on the heartbeat makes this race-free against the master's
        own heartbeat: exactly one of the two UPDATEs wins the row, so a master
        is never both alive in its own eyes and dead in another's. A master of
        this host whose process is gone is dead whenever it last beat.
        """
        now = time.time() if now is None else now
        process_gone = record.host == socket.gethostname() and not pid_exists(record.pid)
        with self.runner.write() as sql:
            return MasterWrites(sql).declare_dead(
                record.id, beat_before=None if process_gone else now - lease, now=now,
            )

    def prune(self, *, older_than: float) -> int:
        """Forget stopped and dead masters that ended before ``older_than``."""
        with self.runner.write() as sql:
            return MasterWrites(sql).prune(older_than=older_than)

    def mark_stopped(self, master_id: str, *, now: float | None = None) -> None:
        with self.runner.write() as sql:
            MasterWrites(sql).mark_stopped(master_id, now=time.time() if now is None else now)

    def all(self) -> list[MasterRecord]:
        """Every registered master, newest first (``StatusReads.masters``: ``jobd status`` reads the same)."""
        with self.runner.read() as sql:
            return StatusReads(sql.rows, self.runner.dialect).masters()

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
