"""What an operator does to jobs: list, show, submit, wait for, cancel, retry, read their logs.

``jobd jobs``, ``jobd job``, ``jobd trigger``, ``jobd cancel``, ``jobd
retry``, ``jobd logs``, ``jobd init`` and ``jobd pause/resume`` are thin over
these functions, so tests and scripts call them directly and the command
line never opens the store itself. Each opens the store only when it needs
it, once per process, and answers a store that fails with jobd's own
``StoreUnavailable`` (``raised_as_unavailable``): nothing above this module
handles SQLAlchemy's errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import WaitTimedOut
from ..job import Job
from ..states import FINAL, STATE_NAMES  # noqa: F401  (STATE_NAMES: imported from here too)
from ..store import Store, open_store
from ..store.errors import raised_as_unavailable
from ..store.schema import upgrade_steps
from .job_reads import JobListing, find_jobs
from .log_reads import JobLogs

if TYPE_CHECKING:
    from ..bulk import BulkResult
    from ..config import JobdConfig


class StoreSettings(Protocol):
    """What reading the store needs of a config: its URL (a ``JobdConfig``, or a ``ConfigDigest``,
    which spares a command with no master to ask building the config's models)."""

    @property
    def store(self) -> str: ...



@lru_cache(maxsize=4)
def store_at(url: str) -> Store:
    """The store at ``url``, opened once per process (an engine connects lazily, on first use)."""
    return open_store(url)


@dataclass(frozen=True)
class StoreInitialised:
    """What `jobd init` did: the store (password hidden), the version it found (None: new), the version now."""

    url: str
    found: int | None
    version: int
    seconds: float

    def describe(self) -> list[str]:
        """The lines `jobd init` prints: what changed, and for an upgrade what each version brought."""
        if self.found is None:
            return [f"store {self.url} created at schema v{self.version}"]
        if self.found >= self.version:
            return [f"store {self.url} is at schema v{self.version}"]
        steps = upgrade_steps()
        return [
            f"store {self.url} upgraded from schema v{self.found} to v{self.version} in {self.seconds:.1f} s:",
            *(f"  v{number}: {steps[number]}" for number in range(self.found + 1, self.version + 1) if number in steps),
        ]


@raised_as_unavailable()
def initialise_store(settings: JobdConfig) -> StoreInitialised:
    """Create or upgrade the store's tables."""
    store = store_at(settings.store)
    began = time.monotonic()
    version = store.initialise()
    return StoreInitialised(store.url, store.found_version, version, time.monotonic() - began)


@raised_as_unavailable()
def list_jobs(
    settings: StoreSettings, *, states: Sequence[str] = (), daemon: str | None = None, task: str | None = None, limit: int = 50,
) -> JobListing:
    """Recent jobs, newest first, filtered by any stored state value, daemon and task.

    Any stored value: rows an application wrote with another state (before
    schema v4 refused them) must be listable; a name that is not a jobd state
    matches only such rows, and is reported back so a typo can be named.
    """
    return find_jobs(store_at(settings.store), states=states, daemon=daemon, task=task, limit=limit)


@raised_as_unavailable()
def show_job(settings: StoreSettings, job_id: int) -> Job:
    """One job; ``UnknownJob`` (exit 2) when no job has that id."""
    return store_at(settings.store).jobs.get(job_id)


@raised_as_unavailable()
def cancel_job(settings: JobdConfig, job_id: int) -> Job:
    """Cancel a waiting job at once; ask the master running it to stop it (the job as it is now)."""
    from ..api import wake_master

    job = store_at(settings.store).jobs.cancel(job_id)
    wake_master(settings.socket)  # the master stops a running job on its side
    return job


@raised_as_unavailable()
def retry_job(settings: JobdConfig, job_id: int) -> Job:
    """Queue a dead or cancelled job again with a fresh set of attempts."""
    from ..api import wake_master

    job = store_at(settings.store).jobs.retry(job_id)
    wake_master(settings.socket)
    return job


@raised_as_unavailable()
def submit_intent(settings: JobdConfig, daemon: str, task: str, args: dict[str, Any], **options: Any) -> int:
    """``jobd.submit`` for an operator: the job id (options as ``jobd.api.submit``)."""
    from ..api import submit

    return submit(daemon, task, args, config=settings, **options)


@raised_as_unavailable()
def submit_intents(settings: JobdConfig, daemon: str, task: str, items: list[dict[str, Any]], **options: Any) -> BulkResult:
    """``jobd.submit_many`` for an operator: every job of ``items`` or none (options as ``jobd.bulk.submit_many``)."""
    from ..bulk import submit_many

    return submit_many(daemon, task, items, config=settings, **options)


@raised_as_unavailable()
def daemon_is_served(settings: JobdConfig, daemon: str) -> bool:
    """Whether a live master on any host runs ``daemon`` (its heartbeat lists it)."""
    now = time.time()
    return any(
        daemon in record.daemons and record.is_alive(now, settings.heartbeat_lease) and record.state == "running"
        for record in store_at(settings.store).masters.all()
    )


@raised_as_unavailable()
def wait_for_job(settings: JobdConfig, job_id: int, timeout: float) -> Job:
    """Poll the store until the job reaches a final state; ``WaitTimedOut`` (exit 6) at the deadline."""
    store = store_at(settings.store)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        job = store.jobs.get(job_id)
        if job.state in FINAL:
            return job
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"job {job_id} is still {job.state} after {timeout:g}s (it may still finish; see `jobd job {job_id}`)")
        time.sleep(delay)
        delay = min(0.5, delay * 1.5)


def job_logs(settings: StoreSettings) -> JobLogs:
    """``jobd logs``'s reads on the store at ``settings.store``, each a call of its own (a store that fails is
    ``StoreUnavailable``): the path ``jobd.ops.log_reads`` takes when it cannot use the driver alone."""
    store = store_at(settings.store)
    return JobLogs(
        lines_after=raised_as_unavailable()(lambda job_id, after_id: store.job_logs.lines(job_id, after_id=after_id)),
        recent=raised_as_unavailable()(store.job_logs.recent),
        job=raised_as_unavailable()(store.jobs.get),
    )


@raised_as_unavailable()
def set_schedule_paused(settings: JobdConfig, key: str, *, paused: bool) -> bool:
    """Persist a pause (or its end) of ``daemon:NAME`` or ``entry:NAME``; whether anything changed."""
    store = store_at(settings.store)
    store.initialise()
    return store.schedules.pause(key) if paused else store.schedules.resume(key)
