"""Operators' desired state of each daemon, per host: what `jobd start/stop/scale` asked for.

Keyed by (host, daemon): pools belong to the one master of a host, so
stopping ``sms`` on one host leaves it running on the others that share the
store. The master reads this at start and after a reload; it is written
before an operation is acknowledged, so a restart of the master (or of the
host) brings the daemon back as the operator left it.
"""

from __future__ import annotations

import socket
import time


from ..daemons.plan import Desired
from .sql_runner import SqlRunner
from .registry_sql import DesiredStateWrites
from .status_reads_sql import StatusReads


class DesiredStates:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def load(self, host: str | None = None) -> dict[str, Desired]:
        """Every daemon's desired state recorded for ``host`` (this host by default)."""
        with self.runner.read() as sql:
            return StatusReads(sql.rows, self.runner.dialect).desired_states(host)

    def save(self, daemon: str, desired: Desired, *, host: str | None = None, now: float | None = None) -> None:
        """Record ``desired`` for ``daemon`` on ``host``; committed when this returns (``registry_sql.DesiredStateWrites``)."""
        with self.runner.write() as sql:
            DesiredStateWrites(sql).save(
                host or socket.gethostname(), daemon, running=desired.running, workers=desired.workers,
                now=time.time() if now is None else now,
            )
