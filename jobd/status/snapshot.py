"""The master's side: its own ``MasterStatus``, from its pools, daemon controls and health.

One builder for the control socket's ``status`` answer, the snapshot
published to memcached every second, and ``jobd status DAEMON``. The master
passes what it knows as values (no reaching into its attributes from here);
each pool's plain snapshot becomes a typed ``PoolStatus`` that the daemon
controls complete with desired state and per-worker CPU and memory.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from .model import MasterInfo, MasterStatus, PoolStatus, Record


class SnapshotsItself(Protocol):
    """A pool: ``snapshot()`` is its plain data (``jobd.workers.pool.Pool``)."""

    def snapshot(self) -> dict[str, Any]: ...


class CompletesPools(Protocol):
    """The daemon controls (``jobd.daemons.control.DaemonControls``): desired state, CPU% and RSS."""

    def pool_status(self, status: PoolStatus) -> PoolStatus: ...


def pool_status(pool: SnapshotsItself, controls: CompletesPools, counts: Mapping[str, int]) -> PoolStatus:
    """One pool's status with its job counts, as ``jobd status`` shows it."""
    return controls.pool_status(PoolStatus.from_wire({**pool.snapshot(), "counts": dict(counts)}))


def build_master_status(
    *,
    master_id: str,
    started_at: float,
    draining: bool,
    config_source: Path,
    jobs_finished: int,
    handoffs: Mapping[str, int],
    store: Record,
    lease: Record,
    pools: Mapping[str, SnapshotsItself],
    controls: CompletesPools,
    counts: Mapping[str, Mapping[str, int]],
    schedules: list[Record],
) -> MasterStatus:
    """This master's status; ``counts`` are the jobs per daemon and state the master last read."""
    return MasterStatus(
        master=MasterInfo(
            id=master_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            version=__version__,
            state="draining" if draining else "running",
            started_at=started_at,
            uptime=round(time.time() - started_at, 1),
            config=str(config_source),
            jobs_finished=jobs_finished,
            handoffs=dict(handoffs),
        ),
        daemons={name: pool_status(pool, controls, counts.get(name, {})) for name, pool in pools.items()},
        store=store,
        lease=lease,
        schedules=schedules,
    )
