"""``jobd jobs`` and ``jobd job ID`` at the cost of one socket round trip when a master runs.

The local master holds the store open; asking it (``list_jobs``,
``show_job``: ``jobd.master.job_queries``) spares the command validating the
whole config and loading the database layer. When no master answers, when
it declines (a reply too large) or cannot answer (an older master, its
store down), the command reads the store itself, whose errors are then the
ones reported: through the database driver alone (``store.driver_reads``),
connecting as the config's digest recorded (``jobd.config_digest``), so it
neither builds config models nor imports SQLAlchemy. Where the digest has no
driver arguments to use (a SQLite file that does not exist yet), it goes
through ``jobd.ops.jobs`` at the digest's URL. Every way runs the same
statements (``store.job_reads_sql``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..config_digest import ConfigDigest, config_digest
from ..errors import JobdError, MasterNotRunning, UnknownJob
from ..job import Job
from ..states import STATE_NAMES, JobState
from ..store.driver_reads import driver_job_reads
from ..store.driver_sql import existing_target
from ..store.job_reads_sql import JobFilter
from ..store.row_decoding import decode_found, decode_row

if TYPE_CHECKING:
    from ..store.store_core import StoreCore

ConfigPath = str | os.PathLike[str] | None


@dataclass(frozen=True)
class JobListing:
    """``jobd jobs``: the jobs found, and the asked-for states that are not jobd states."""

    jobs: list[Job]
    unknown_states: list[str]

    @classmethod
    def of(cls, jobs: list[Job], states: Sequence[str]) -> JobListing:
        """``jobs`` found for ``states``, naming those that are not jobd states (only rows another application wrote match them)."""
        return cls(jobs, sorted({str(state) for state in states} - STATE_NAMES))


def list_jobs(
    config: ConfigPath, *, states: Sequence[str] = (), daemon: str | None = None, task: str | None = None, limit: int = 50,
) -> JobListing:
    """As ``jobd.ops.jobs.list_jobs`` for the config at ``config``."""
    settings = config_digest(config)  # ConfigError here as from load_config
    answer = _ask_master(settings, "list_jobs", {"states": list(states), "daemon": daemon, "task": task, "limit": limit})
    if answer is not None:
        try:
            if answer["jobs"] is not None:
                return JobListing([Job.from_dict(job) for job in answer["jobs"]], list(answer["unknown_states"]))
        except (KeyError, TypeError, ValueError):
            pass  # not an answer this version understands: read the store
    target = existing_target(settings.driver)
    if target is not None:
        wanted = JobFilter(tuple(str(state) for state in states), daemon, task, limit)
        with driver_job_reads(target) as reads:
            return JobListing.of([decode_row(row) for row in reads.page(wanted)], states)
    from .jobs import list_jobs as from_store

    return from_store(settings, states=states, daemon=daemon, task=task, limit=limit)


def show_job(config: ConfigPath, job_id: int) -> Job:
    """As ``jobd.ops.jobs.show_job`` for the config at ``config``."""
    settings = config_digest(config)
    answer = _ask_master(settings, "show_job", {"id": job_id})
    if answer is not None:
        try:
            if answer["job"] is not None:
                return Job.from_dict(answer["job"])
        except (KeyError, TypeError, ValueError):
            pass
    target = existing_target(settings.driver)
    if target is not None:
        with driver_job_reads(target) as reads:
            return decode_found(reads.get(job_id), job_id)
    from .jobs import show_job as from_store

    return from_store(settings, job_id)


def _ask_master(settings: ConfigDigest, op: str, args: dict[str, Any]) -> Any:
    """The local master's answer; None when the store must be read instead. ``UnknownJob`` is the answer."""
    from ..control import client

    try:
        return client.call(settings.socket, op, args, timeout=defaults.JOBS_FROM_MASTER_TIMEOUT_SECONDS)
    except UnknownJob:
        raise
    except (MasterNotRunning, JobdError, OSError):
        return None


def find_jobs(store: StoreCore, *, states: Sequence[str], daemon: str | None, task: str | None, limit: int) -> JobListing:
    """``list_jobs`` on an open store: the CLI's own, or a running master's (``jobd.master.job_queries``)."""
    wanted: list[JobState | str] = [JobState(value) if value in STATE_NAMES else value for value in states]
    return JobListing.of(store.jobs.list(states=wanted, daemon=daemon, task=task, limit=limit), states)
