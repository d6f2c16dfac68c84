"""A master as the store's registry holds it, and whether it is alive: plain data, no SQLAlchemy.

A master is alive while its heartbeat is younger than the lease. A master on
this host whose process is gone is dead at once (no need to wait out the
lease after a ``kill -9`` and restart on the same machine).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE_STATES = ("running", "draining")


@dataclass(frozen=True)
class MasterRecord:
    id: str
    host: str
    pid: int
    version: str
    state: str
    daemons: list[str]
    control_socket: str | None
    started_at: float
    heartbeat_at: float
    stopped_at: float | None

    def is_alive(self, now: float, lease: float) -> bool:
        if self.state in ("stopped", "dead"):
            return False
        if self.host == socket.gethostname() and not pid_exists(self.pid):
            return False
        return now - self.heartbeat_at <= lease

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def row_to_master(row: Mapping[str, Any]) -> MasterRecord:
    """A registry row (``jobd_masters``) as a record."""
    return MasterRecord(
        id=row["id"],
        host=row["host"],
        pid=int(row["pid"]),
        version=row["version"],
        state=row["state"],
        daemons=json.loads(row["daemons"] or "[]"),
        control_socket=row["control_socket"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        stopped_at=row["stopped_at"],
    )
