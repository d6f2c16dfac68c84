"""Status as plain data: ``status --json`` (docs/status-json.md) and the schedule rows.

The CLI and ``jobd web`` both serve these, so they live in the library.

``status_report`` reads the basic report (the local master's status, or
the store's counts when it is down); ``complete_status`` adds what tools need without
guessing: a ``version``, every known master (all hosts when memcached is
configured), and for each daemon the jobs running now with their progress.
Keys are only ever added within a version; a change that removes or
renames one bumps ``STATUS_JSON_VERSION``.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from . import unserved
from .ops import runner
from .activity import shared_activity
from .activity.view import read_view
from .config import JobdConfig, load_schedule
from .control import client
from .daemons.plan import default_desired
from .errors import JobdError, MasterNotRunning, UnknownJob
from .rate_status import add_rate_waits
from .store import Store, open_store
from .ticker import Ticker

STATUS_JSON_VERSION = 1

_RUNNING_KEYS = ("job_id", "task", "attempt", "host", "worker_pid", "done", "total", "percent", "message",
                 "eta_seconds", "started_at", "elapsed", "updated_at")


def complete_status(report: dict[str, Any], config: JobdConfig, *, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    local = report.get("master") or {}
    masters: list[dict[str, Any]] = []
    running: list[dict[str, Any]] = []
    shared = shared_activity(config)
    if shared is not None:
        try:
            view = read_view(shared, source="memcached", now=now)
        finally:
            shared.close()
        masters = [{**master, "running": True} for master in view["masters"]]
        running = view["running"]
    # The store's registry is the authority on which masters exist and live (all
    # hosts, with heartbeats); memcached snapshots add what they know.
    live_by_id = {master.get("id"): master for master in masters}
    registered = [
        {**live_by_id.get(record["id"], {}), **record, "running": bool(record.get("alive")),
         "uptime": now - record["started_at"] if record.get("alive") else None}
        for record in report.get("masters") or []
    ]
    known = {record["id"] for record in registered}
    masters = registered + [master for master in masters if master.get("id") not in known]
    if local.get("running") and not any(master.get("id") == local.get("id") for master in masters):
        keys = ("id", "host", "pid", "state", "started_at", "uptime", "version")
        masters.insert(0, {**{key: local.get(key) for key in keys}, "running": True})
    local_jobs = {job["job_id"] for job in running}
    for name, daemon in (report.get("daemons") or {}).items():
        for worker in daemon.get("workers") or []:
            if worker.get("job_id") is None or worker["job_id"] in local_jobs:
                continue
            progress = worker.get("progress") or {}
            started = progress.get("started_at")
            running.append({
                "job_id": worker["job_id"], "daemon": name, "task": worker.get("task"), "attempt": worker.get("attempt"),
                "host": local.get("host"), "worker_pid": worker.get("pid"), **progress,
                "elapsed": now - started if started else worker.get("running_for"),
            })
    daemons = {}
    for name, daemon in (report.get("daemons") or {}).items():
        jobs = [{key: job.get(key) for key in _RUNNING_KEYS} for job in running if job.get("daemon") == name]
        daemons[name] = {**daemon, "running_jobs": sorted(jobs, key=lambda job: job["job_id"])}
    return {"version": STATUS_JSON_VERSION, "generated_at": now, **report, "masters": masters, "daemons": daemons}


def full_status(config: JobdConfig, *, store: Store | None = None, now: float | None = None) -> dict[str, Any]:
    """The ``status --json`` document (docs/status-json.md), for the CLI and ``jobd web`` alike."""
    return complete_status(status_report(config, store), config, now=now)


def status_report(settings: JobdConfig, store: Store | None = None) -> dict[str, Any]:
    """The status as plain data: from the master if it answers, else from the store.

    A long-lived caller (``jobd web``) passes its ``store``; the CLI opens one.
    Either way each rate-limited daemon says what waits for its rate (from the store).
    """
    store = store or open_store(settings.store)
    report = _basic_report(settings, store)
    add_rate_waits(report, settings, store)
    return report


def _basic_report(settings: JobdConfig, store: Store) -> dict[str, Any]:
    live = runner.master_status(settings)
    if live is not None:
        daemons = {}
        for name, pool in live["daemons"].items():
            workers = pool["workers"]
            daemons[name] = {
                "size": pool["size"],
                "busy": sum(1 for w in workers if w["state"] == "busy"),
                "idle": sum(1 for w in workers if w["state"] == "idle"),
                "workers": workers,
                "restarts": pool["restarts"],
                "counts": pool["counts"],
                "desired": pool.get("desired"),
                "state": pool.get("state"),
                "restart": pool.get("restart"),
            }
        report: dict[str, Any] = {"master": {"running": True, **live["master"]}, "daemons": daemons}
        for key in ("store", "lease"):  # the master's own view: is its store reachable, when would it fence
            if key in live:
                report[key] = live[key]
        try:
            report["masters"] = masters_report(settings, store)
            report.update(unserved.from_store(store, lease=settings.heartbeat_lease))
        except (JobdError, sa.exc.DBAPIError):  # the master answered from memory; its store is down
            report["masters"] = []
        return report
    initialised = store.version() is not None
    counts = store.jobs.counts() if initialised else {}
    desired = store.daemon_states.load() if initialised else {}
    names = sorted(set(settings.daemons) | set(counts))
    unseen = unserved.from_store(store, lease=settings.heartbeat_lease, counts=counts) if initialised else {"unserved": [], "unknown_states": []}
    return {
        **unseen,
        "masters": masters_report(settings, store),
        "master": {"running": False},
        "daemons": {
            name: {
                "size": settings.daemons[name].workers if name in settings.daemons else 0,
                "counts": counts.get(name, {}),
                "desired": daemon_desired(settings, desired, name),
                "state": "stopped",
            }
            for name in names
        },
    }


def masters_report(settings: JobdConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """Every master known to the store (all hosts), newest first, with heartbeat age and liveness."""
    store = store or open_store(settings.store)
    if store.version() is None:
        return []
    now = time.time()
    return [
        {
            **record.to_dict(),
            "heartbeat_age": round(now - record.heartbeat_at, 1),
            "alive": record.is_alive(now, settings.heartbeat_lease),
        }
        for record in store.masters.all()
        if record.state in ("running", "draining") or now - (record.stopped_at or now) < 3600
    ]


def daemon_desired(settings: JobdConfig, stored: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A daemon's desired state as the next master would apply it (None: not in the config)."""
    if name not in settings.daemons:
        return None
    choice = stored.get(name) or default_desired(settings.daemons[name])
    return dict(choice.to_dict(settings.daemons[name]))


def schedule_rows(settings: JobdConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """Every entry with trigger, last fire, last outcome and next ticks (master or store)."""
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
