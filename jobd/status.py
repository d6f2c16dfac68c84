"""`jobd status --json`: the stable, documented shape other tools poll (docs/status-json.md).

``complete_status`` takes the basic report (the local master's status, or
the store's counts when it is down) and adds what tools need without
guessing: a ``version``, every known master (all hosts when memcached is
configured), and for each daemon the jobs running now with their progress.
Keys are only ever added within a version; a change that removes or
renames one bumps ``STATUS_JSON_VERSION``.
"""

from __future__ import annotations

import time
from typing import Any

from .activity import shared_activity
from .activity.view import read_view
from .config import JobdConfig

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
