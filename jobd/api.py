"""The application-facing API: submit an intent, look at a job.

``submit`` writes the job durably and returns its id; it works whether or not
a master is running (the job waits in the store). Given ``connection=``, the
job is inserted inside the caller's own transaction, so it exists if and only
if the caller's transaction commits.

An application submits from processes that exist for other work (a web
server's workers, say), so what a submit loads stays in each of them. A
plain submit goes through the database driver alone (``jobd.ops.quick_submit``):
the config's digest instead of its models, the driver instead of
SQLAlchemy — a few MiB and milliseconds instead of 36 MiB and 0.3 s for the
first submit, and less work for every later one. What only the full submit
does, or reports better, goes to it (``jobd.intents``), with the same
results and the same errors.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config_digest import config_digest
from .config_path import config_lookup
from .ops.quick_submit import DriverSubmitter
from .run_at import epoch_seconds

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .config import JobdConfig
    from .job import Job


def submit(
    daemon: str,
    task: str,
    args: dict[str, Any] | None = None,
    *,
    run_at: dt.datetime | float | None = None,
    priority: int = 0,
    unique_key: str | None = None,
    max_attempts: int | None = None,
    connection: sa.Connection | None = None,
    config: JobdConfig | str | os.PathLike[str] | None = None,
    reuse_cached: bool = False,
) -> int:
    """Submit an intent: a job for ``task`` on ``daemon`` with JSON ``args``. Returns the job id.

    ``run_at`` delays the job (an aware datetime or epoch seconds).
    ``unique_key`` makes the submit idempotent while a job with that key is
    unfinished: the existing job's id is returned. ``connection`` (a
    SQLAlchemy Connection in an open transaction on the jobd store's
    database) enqueues as part of the caller's transaction.

    ``reuse_cached=True`` (for tasks declaring ``cache_ttl``): if a job of
    this task with equal args succeeded within its ``cache_ttl``, nothing
    runs and the id of *that* job is returned (its result:
    ``get_job(id).result``); an equal request still waiting or running is
    joined instead of started twice (its id is returned). See
    ``jobd.activity.results``.
    """
    due = epoch_seconds(run_at)
    arguments = args if args is not None else {}
    if connection is None and not reuse_cached:
        submitter = driver_submitter_for(config)
        if submitter is not None:
            job_id = submitter.submit(
                daemon, task, arguments, run_at=due, priority=priority, max_attempts=max_attempts, unique_key=unique_key,
            )
            if job_id is not None:
                return job_id
    from .intents import submit_fully

    return submit_fully(
        daemon, task, arguments, run_at=due, priority=priority, unique_key=unique_key, max_attempts=max_attempts,
        connection=connection, config=config, reuse_cached=reuse_cached,
    )


def get_job(job_id: int, *, config: JobdConfig | str | os.PathLike[str] | None = None) -> Job:
    """Job ``job_id`` as the store holds it now (``UnknownJob`` if there is none): its state, result, error."""
    submitter = driver_submitter_for(config)
    if submitter is not None:
        job = submitter.job(job_id)
        if job is not None:
            return job
    from .intents import resolve_config, store_for

    return store_for(resolve_config(config).store).jobs.get(job_id)


def driver_submitter_for(config: JobdConfig | str | os.PathLike[str] | None) -> DriverSubmitter | None:
    """This process's submitter through the driver for the config ``config`` names (found as ``resolve_config`` finds it).

    None for config models given as such: their caller has them loaded, and the full path uses them.
    """
    if config is not None and not isinstance(config, (str, os.PathLike)):
        return None
    return _driver_submitter(*config_lookup(config))


@lru_cache(maxsize=8)
def _driver_submitter(explicit: str | None, from_env: str | None, cwd: str) -> DriverSubmitter | None:
    """Made once per config, as the full submit reads each config once (``intents.resolve_config``).

    The settings are the config digest's, validated only if no digest of
    that file is on record: ``ConfigError`` then, as from ``load_config``.
    """
    return DriverSubmitter.of(config_digest(explicit))


def wake_master(socket_path: Path) -> None:
    """Ask a local master to look at the store now: waiting jobs of every daemon and cancel requests.

    A request over the control socket, answered by the master loop (``jobd
    cancel`` needs that: the running job is stopped on the master's side).
    A plain submit only needs ``jobd.handoff.submit_side.announce``, which is much cheaper.
    Fire-and-forget: no master, or a busy one, costs nothing but the poll delay.
    """
    from .control.protocol import Request

    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(0.2)
    try:
        client.connect(str(socket_path))
        client.sendall(Request("wake").encode())
    except OSError:
        pass
    finally:
        client.close()
