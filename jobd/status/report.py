"""Reading the status: ``jobd status`` (and ``--json``), ``jobd web``, and the schedule rows.

``read_status`` asks the local master first (its ``MasterStatus`` over the
control socket) and falls back on the store's counts when none answers. It
then adds what tools need without guessing: every master the store knows
(all hosts), and with ``live_activity`` the jobs running on every host with
their progress (memcached, when configured). The result is a typed
``StatusReport``; ``to_json`` is the documented document.

The store is reached through ``raised_as_unavailable``: a store that fails
is jobd's ``StoreUnavailable`` here, never a SQLAlchemy error.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from .. import unserved
from ..activity import shared_activity
from ..activity.view import read_view
from ..config import JobdConfig, load_schedule
from ..control import client
from ..daemons.plan import default_desired
from ..errors import MasterNotRunning, StoreUnavailable, UnknownJob
from ..rate_status import rate_waits
from ..store import Store, open_store
from ..store.errors import raised_as_unavailable
from .model import (
    AnnouncedMaster, DaemonStatus, KnownMaster, MasterStatus, RegisteredMaster, RunningJob, StatusReport,
)


def read_status(
    settings: JobdConfig, store: Store | None = None, *, now: float | None = None, live_activity: bool = True,
) -> StatusReport:
    """The status: from the master if it answers, else from the store.

    A long-lived caller (``jobd web``) passes its ``store``. Each
    rate-limited daemon says what waits for its rate (from the store).
    ``live_activity`` reads memcached (when configured) for other hosts'
    masters and running jobs.
    """
    now = time.time() if now is None else now
    return compose_status(settings, local_master_status(settings), store, now=now, live_activity=live_activity)


def compose_status(
    settings: JobdConfig, live: MasterStatus | None, store: Store | None = None, *, now: float, live_activity: bool = True,
) -> StatusReport:
    """``read_status`` once the local master's own status is known (None: no master answered).

    A running master composes it too, for the ``status_report`` operation
    (``jobd.master.status_answer``), with the same code and its own store.
    """
    store = store or open_store(settings.store)  # connects on first use: not at all while a master answers from memory
    report = _from_master(settings, live, store, now) if live is not None else _from_store(settings, store, now)
    waits = rate_waits(settings, store, report.daemons, now=now)  # the same from every host: the buckets are in the store
    if waits:
        report = replace(report, daemons={
            name: replace(daemon, rate_limited=waits.get(name)) for name, daemon in report.daemons.items()
        })
    if live_activity:
        report = _with_live_activity(report, settings, now)
    return replace(report, batches=_recent_batches(store, now))


def _recent_batches(store: Store, now: float) -> list[dict[str, Any]]:
    """Open batches and those that ended in the last hour; none while the store cannot be read."""
    try:
        with raised_as_unavailable():
            return [batch.to_dict() for batch in store.batches.recent(now=now)]
    except StoreUnavailable:
        return []


def full_status(settings: JobdConfig, *, store: Store | None = None, now: float | None = None) -> dict[str, Any]:
    """The ``status --json`` document (docs/status-json.md), for the CLI and ``jobd web`` alike."""
    return read_status(settings, store, now=now).to_json()


def local_master_status(settings: JobdConfig) -> MasterStatus | None:
    """The local master's own status, or None if none answers on the control socket."""
    try:
        return MasterStatus.from_wire(client.call(settings.socket, "status"))
    except MasterNotRunning:
        return None


def _from_master(settings: JobdConfig, live: MasterStatus, store: Store, now: float) -> StatusReport:
    daemons = {
        name: DaemonStatus(size=pool.size, counts=pool.counts, desired=pool.desired, state=pool.state, pool=pool)
        for name, pool in live.daemons.items()
    }
    masters: list[KnownMaster] = []
    unseen: dict[str, list[dict[str, Any]]] = {}
    try:
        with raised_as_unavailable():
            masters = list(registered_masters(settings, store, now))
            unseen = unserved.from_store(store, lease=settings.heartbeat_lease)
    except StoreUnavailable:  # the master answered from memory; its store is down
        pass
    return StatusReport(
        generated_at=now, master=live.master, daemons=daemons, masters=masters, store=live.store, lease=live.lease,
        unserved=unseen.get("unserved"), unknown_states=unseen.get("unknown_states"),
    )


@raised_as_unavailable()
def _from_store(settings: JobdConfig, store: Store, now: float) -> StatusReport:
    initialised = store.version() is not None
    counts = store.jobs.counts() if initialised else {}
    desired = store.daemon_states.load() if initialised else {}
    unseen = unserved.from_store(store, lease=settings.heartbeat_lease, counts=counts) if initialised else {}
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
        masters=list(registered_masters(settings, store, now)),
        unserved=unseen.get("unserved", []),
        unknown_states=unseen.get("unknown_states", []),
    )


def _with_live_activity(report: StatusReport, settings: JobdConfig, now: float) -> StatusReport:
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


def registered_masters(settings: JobdConfig, store: Store, now: float | None = None) -> list[RegisteredMaster]:
    """Every master known to the store (all hosts), newest first; stopped ones for an hour."""
    if store.version() is None:
        return []
    now = time.time() if now is None else now
    return [
        RegisteredMaster(
            **record.to_dict(),
            heartbeat_age=round(now - record.heartbeat_at, 1),
            alive=record.is_alive(now, settings.heartbeat_lease),
        )
        for record in store.masters.all()
        if record.state in ("running", "draining") or now - (record.stopped_at or now) < 3600
    ]


def masters_report(settings: JobdConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """``registered_masters`` as plain data (``jobd web``'s masters panel)."""
    with raised_as_unavailable():
        found = registered_masters(settings, store or open_store(settings.store))
    return [master.to_record() for master in found]


def daemon_desired(settings: JobdConfig, stored: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A daemon's desired state as the next master would apply it (None: not in the config)."""
    if name not in settings.daemons:
        return None
    choice = stored.get(name) or default_desired(settings.daemons[name])
    return dict(choice.to_dict(settings.daemons[name]))


@raised_as_unavailable()
def schedule_rows(settings: JobdConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """Every entry with trigger, last fire, last outcome and next ticks (master or store)."""
    from ..ticker import Ticker

    store = store or open_store(settings.store)
    try:
        rows: list[dict[str, Any]] = client.call(settings.socket, "schedules")
    except MasterNotRunning:
        store.initialise()
        rows = Ticker(store, load_schedule(settings)).describe()
    for row in rows:
        job_id = row.get("last_job_id")
        try:
            row["last_outcome"] = str(store.jobs.get(job_id).state) if job_id else None
        except UnknownJob:  # pruned since
            row["last_outcome"] = None
    return rows
