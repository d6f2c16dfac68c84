"""Composing the status from the store's reads and the config's settings, whoever provides them.

Three callers compose a status with no master's own view: ``jobd status``
with the full config and the store open (``report.read_status``), a master
answering ``status_report`` for its store, and ``jobd status`` through the
database driver with a config digest (``jobd.ops.status_reads``), which
loads neither SQLAlchemy nor pydantic. They differ only in where the reads
run and where the settings come from, so this module takes both as
protocols: the store's reads (``StatusSource``, written once in
``store.status_reads_sql``) and the settings (``StatusSettings``, a
``JobdConfig`` or a digest's ``StatusFacts``). Nothing here imports the
database layer or the config models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from .. import unserved
from ..activity import shared_activity
from ..activity.view import read_view
from ..batch_record import Batch, BatchState
from ..daemons.plan import DaemonSizing, Desired, default_desired
from ..rate_limits import RateLimits
from ..rate_status import rate_waits
from ..store.master_record import MasterRecord
from .model import AnnouncedMaster, DaemonStatus, KnownMaster, RegisteredMaster, RunningJob, StatusReport

#: Batches that ended longer ago than this are left out of the status.
RECENT_BATCH_SECONDS = 3600.0
#: At most this many batches are shown (the newest).
RECENT_BATCH_LIMIT = 50
#: Stopped masters stay in the status this long after they stopped.
STOPPED_MASTER_SECONDS = 3600


class DaemonSettings(DaemonSizing, Protocol):
    """What a status shows of a configured daemon: its size and whether it runs, its rate limits."""

    def rate_limits(self) -> RateLimits: ...


class StatusSettings(Protocol):
    """The settings a status shows: each daemon's size and limits, the lease, where the shared activity is."""

    @property
    def store(self) -> str: ...

    @property
    def daemons(self) -> Mapping[str, DaemonSettings]: ...

    @property
    def heartbeat_lease(self) -> float: ...

    @property
    def memcached(self) -> Sequence[str]: ...


class StatusSource(Protocol):
    """The store's reads a status is composed from (``store.status_reads_sql.StatusReads``)."""

    def schema_version(self) -> int | None: ...

    def job_counts(self) -> dict[str, dict[str, int]]: ...

    def desired_states(self, host: str | None = None) -> dict[str, Desired]: ...

    def masters(self) -> list[MasterRecord]: ...

    def batches(self, *, states: Sequence[BatchState] = (), limit: int = 50, before_id: int | None = None) -> list[Batch]: ...

    def rate_waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]: ...


def report_from_store(settings: StatusSettings, source: StatusSource, now: float) -> StatusReport:
    """The status while no master answers: every configured daemon (and any with jobs) stopped, with its counts."""
    initialised = source.schema_version() is not None
    counts = source.job_counts() if initialised else {}
    desired = source.desired_states() if initialised else {}
    records = source.masters() if initialised else []
    unseen = unserved.from_records(counts, records, lease=settings.heartbeat_lease, now=now) if initialised else {}
    names = sorted(set(settings.daemons) | set(counts))
    return StatusReport(
        generated_at=now,
        master=None,
        daemons={
            name: DaemonStatus(
                size=settings.daemons[name].workers if name in settings.daemons else 0,
                counts=counts.get(name, {}), desired=daemon_desired(settings, desired, name), state="stopped",
            )
            for name in names
        },
        masters=list(registered(records, settings.heartbeat_lease, now)),
        unserved=unseen.get("unserved", []),
        unknown_states=unseen.get("unknown_states", []),
    )


def with_rate_waits(report: StatusReport, settings: StatusSettings, source: StatusSource, now: float) -> StatusReport:
    """Each rate-limited daemon says what waits for its rate (the same from every host: the buckets are in the store)."""
    waits = rate_waits(settings.daemons, source, report.daemons, now=now)
    if not waits:
        return report
    return replace(report, daemons={name: replace(daemon, rate_limited=waits.get(name)) for name, daemon in report.daemons.items()})


def registered(records: Iterable[MasterRecord], lease: float, now: float) -> list[RegisteredMaster]:
    """The registry's masters as the status lists them: newest first; stopped ones for an hour."""
    return [
        RegisteredMaster(
            **record.to_dict(),
            heartbeat_age=round(now - record.heartbeat_at, 1),
            alive=record.is_alive(now, lease),
        )
        for record in records
        if record.state in ("running", "draining") or now - (record.stopped_at or now) < STOPPED_MASTER_SECONDS
    ]


def daemon_desired(settings: StatusSettings, stored: Mapping[str, Desired], name: str) -> dict[str, Any] | None:
    """A daemon's desired state as the next master would apply it (None: not in the config)."""
    if name not in settings.daemons:
        return None
    choice = stored.get(name) or default_desired(settings.daemons[name])
    return dict(choice.to_dict(settings.daemons[name]))


def recent_batches(source: StatusSource, now: float) -> list[dict[str, Any]]:
    """Open batches and those that ended within the last hour, newest first."""
    return [
        batch.to_dict() for batch in source.batches(limit=RECENT_BATCH_LIMIT)
        if batch.state is BatchState.OPEN or (batch.finished_at or 0) >= now - RECENT_BATCH_SECONDS
    ]


def with_live_activity(report: StatusReport, settings: StatusSettings, now: float) -> StatusReport:
    """Add every host's masters and running jobs (memcached), and the local master's running jobs."""
    announced: list[AnnouncedMaster] = []
    running: list[RunningJob] = []
    shared = shared_activity(settings)  # None without memcached (whose client is then never imported)
    if shared is not None:
        try:
            view = read_view(shared, source="memcached", now=now)
        finally:
            shared.close()
        announced = [AnnouncedMaster.from_view(master) for master in view["masters"]]
        running = [RunningJob.from_view(job) for job in view["running"]]
    # The store's registry is the authority on which masters exist and live (all
    # hosts, with heartbeats); memcached snapshots add the masters it lacks.
    seen = {master.id for master in announced}
    masters: list[KnownMaster] = [
        replace(master, announced=master.id in seen) if isinstance(master, RegisteredMaster) else master
        for master in report.masters
    ]
    known = {master.id for master in masters}
    masters += [master for master in announced if master.id not in known]
    local = report.master
    if local is not None and not any(master.id == local.id for master in masters):
        masters.insert(0, AnnouncedMaster.of(local))
    running_ids = {job.job_id for job in running}
    for name, daemon in report.daemons.items():
        for worker in daemon.pool.workers if daemon.pool is not None else []:
            if worker.job_id is not None and worker.job_id not in running_ids:
                running.append(RunningJob.of_worker(name, worker, local.host if local else None, now))
    daemons = {
        name: replace(daemon, running_jobs=[job for job in running if job.daemon == name])
        for name, daemon in report.daemons.items()
    }
    return replace(report, masters=masters, daemons=daemons)


def with_last_outcomes(rows: list[dict[str, Any]], states_of: Callable[[list[int]], Mapping[int, str]]) -> list[dict[str, Any]]:
    """Schedule rows (``Ticker.describe``) with the state of each entry's last job (None: none yet, or pruned since)."""
    states = states_of(sorted({int(row["last_job_id"]) for row in rows if row.get("last_job_id")}))
    return [{**row, "last_outcome": states.get(int(row["last_job_id"])) if row.get("last_job_id") else None} for row in rows]
