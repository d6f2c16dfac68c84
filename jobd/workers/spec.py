"""What the master knows of a pool's workers, and the entry point it starts them with.

The worker's own module (``worker.py``: the task context, the output caps,
the job loop) is the workers' business; the master only names it, so it
stays out of the master's imports (the fork server imports it once for
every worker to share: ``preload.py``). ``tests/test_footprint.py`` holds
the master to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import JobdConfig
    from ..handoff.channel import Channel
    from ..schedules import Schedule
    from .settings import WorkerSettings


@dataclass(frozen=True)
class WorkerSpec:
    """The master's description of a pool's workers; the launcher turns it into ``WorkerSettings``."""

    config: JobdConfig
    daemon: str
    owner: str = ""  # the master's id: a submit's job is run only if the store says it is this master's
    schedule: Schedule | None = None  # the config's, read already (None: the launcher reads the files)


def worker_entry(
    settings: WorkerSettings, connection: Connection, channel: Channel | None = None, lifeline: Connection | None = None,
) -> None:
    """A worker process's target (runs in the child): ``worker.worker_main``, imported there."""
    from .worker import worker_main

    worker_main(settings, connection, channel, lifeline)
