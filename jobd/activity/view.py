"""The dashboard's data: one plain dict read from any activity store, or from the store.

``read_view`` works over the ``Activity`` interface, so ``jobd top`` shows
the same thing whether it reads memcached (every host), the master's
memory over the control socket, or — with no master answering — the
durable store (``view_from_store``: counts, jobs marked running and their
last persisted progress, recent failures). ``summarise_daemons`` is pure.

Shape (``VIEW_VERSION`` 1)::

    {"version": 1, "source": "memcached" | "master" | "store", "generated_at": epoch,
     "note": str | None,
     "masters":  [{"id", "host", "pid", "state", "started_at", "uptime", "version"}],
     "daemons":  {name: {"workers", "busy", "idle", "queued", "running", "retrying",
                         "succeeded_last_hour", "failed_last_hour", "dead_last_hour",
                         "jobs_per_minute", "next_run"}},
     "running":  [{"job_id", "daemon", "task", "attempt", "host", "worker_pid", "done", "total",
                   "percent", "message", "eta_seconds", "started_at", "elapsed", "updated_at"}],
     "failures": [{"at", "daemon", "job_id", "task", "attempt", "kind", "error", "host"}],
     "schedules": [{"daemon", "name", "next_run", "timezone"}],
     "jobs_per_minute": float,
     "last_hour": {"finished": [[minute_end, n]], "queued": [[minute_start, n]]}}  # only when asked for
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from . import history
from .base import COUNTED_OUTCOMES, Activity, Record, buckets_for, total_in_window

VIEW_VERSION = 1
HOUR = 3600.0
FAILURES_SHOWN = 20


def read_view(
    activity: Activity, *, source: str, now: float | None = None, daemon: str | None = None, last_hour: bool = False,
) -> Record:
    """Everything ``jobd top`` draws, read from ``activity``; with ``last_hour``, the charts' minutes too (``history``)."""
    now = time.time() if now is None else now
    masters = activity.masters()
    running = _running_from_snapshots(masters, daemon)
    fresher = activity.progress_of(job["job_id"] for job in running)
    for job in running:
        job.update({key: value for key, value in fresher.get(job["job_id"], {}).items() if value is not None})
        _finish_progress(job, now)
    names = sorted({name for snapshot in masters for name in (snapshot.get("daemons") or {})})
    if daemon is not None:
        names = [name for name in names if name == daemon]
    hour_counts = {name: {outcome: activity.counts(name, outcome, buckets_for(now, HOUR)) for outcome in COUNTED_OUTCOMES} for name in names}
    throughput = {
        name: {outcome: total_in_window(found, now, HOUR) for outcome, found in outcomes.items()}
        for name, outcomes in hour_counts.items()
    }
    per_minute = {
        name: total_in_window(activity.counts(name, "succeeded", buckets_for(now, 60)), now, 60)
        + total_in_window(activity.counts(name, "failed", buckets_for(now, 60)), now, 60)
        for name in names
    }
    events = [event for name in names for event in activity.events(name)]
    view = {
        "version": VIEW_VERSION,
        "source": source,
        "generated_at": now,
        "note": None,
        "masters": [_master_summary(snapshot) for snapshot in masters],
        "daemons": summarise_daemons(masters, names, throughput, per_minute, running),
        "running": sorted(running, key=lambda job: job["job_id"]),
        "failures": recent_failures(events),
        "schedules": schedule_entries(masters, daemon),
        "jobs_per_minute": round(sum(per_minute.values()), 1),
    }
    if last_hour:
        view["last_hour"] = history.last_hour(activity, names, now, hour_counts)
    return view


def _master_summary(snapshot: Record) -> Record:
    master = snapshot.get("master") or {}
    keys = ("id", "host", "pid", "state", "started_at", "uptime", "version")
    return {key: master.get(key) for key in keys}


def _running_from_snapshots(masters: list[Record], daemon: str | None) -> list[Record]:
    """Jobs the masters say are running, with the progress their snapshot carries."""
    running = []
    for snapshot in masters:
        host = (snapshot.get("master") or {}).get("host")
        for name, pool in (snapshot.get("daemons") or {}).items():
            if daemon is not None and name != daemon:
                continue
            for worker in pool.get("workers") or []:
                if worker.get("job_id") is None:
                    continue
                progress = worker.get("progress") or {}
                running.append({
                    "job_id": int(worker["job_id"]), "daemon": name, "task": worker.get("task"),
                    "attempt": None, "host": host, "worker_pid": worker.get("pid"),
                    "running_for": worker.get("running_for"), **progress,
                })
    return running


def _finish_progress(job: Record, now: float) -> None:
    """Fill the derived fields every row needs (percent, elapsed) whatever the source had."""
    for key in ("done", "total", "percent", "message", "eta_seconds", "started_at", "updated_at"):
        job.setdefault(key, None)
    if job["percent"] is None and job["total"]:
        job["percent"] = max(0.0, min(100.0, 100.0 * float(job["done"] or 0) / float(job["total"])))
    if job.get("started_at"):
        job["elapsed"] = max(0.0, now - float(job["started_at"]))
    else:
        job["elapsed"] = job.get("running_for")
    job.pop("running_for", None)


def summarise_daemons(
    masters: list[Record], names: Iterable[str], throughput: dict[str, dict[str, float]], per_minute: dict[str, float],
    running: list[Record] | None = None,
) -> dict[str, Record]:
    """One row per daemon over every master: workers add up; job counts come from the freshest snapshot.

    Job counts are the store's (shared by every master), so they are taken
    once, not summed; workers are each master's own, so they add up. The
    running count is the length of ``running`` when given: the store's count
    is cached for seconds, and a row saying "running 0" above a table that
    lists a running job of that daemon is a contradiction on one screen.
    """
    freshest = sorted(masters, key=lambda snapshot: snapshot.get("published_at") or 0)
    rows: dict[str, Record] = {}
    for name in names:
        workers = busy = idle = 0
        counts: dict[str, int] = {}
        next_run = None
        for snapshot in freshest:
            pool = (snapshot.get("daemons") or {}).get(name)
            if pool is None:
                continue
            states = [worker.get("state") for worker in pool.get("workers") or []]
            workers += int(pool.get("size") or 0)
            busy += states.count("busy")
            idle += states.count("idle")
            counts = pool.get("counts") or counts
            next_run = _earliest(next_run, pool.get("next_run"))
        for entry in schedule_entries(masters, name):
            next_run = _earliest(next_run, entry["next_run"])
        outcomes = throughput.get(name, {})
        rows[name] = {
            "workers": workers, "busy": busy, "idle": idle,
            "queued": int(counts.get("queued", 0)) + int(counts.get("scheduled", 0)),
            "running": int(counts.get("running", 0)) if running is None else sum(1 for job in running if job.get("daemon") == name),
            "retrying": int(counts.get("retrying", 0)),
            "succeeded_last_hour": round(outcomes.get("succeeded", 0.0)),
            "failed_last_hour": round(outcomes.get("failed", 0.0)),
            "dead_last_hour": round(outcomes.get("dead", 0.0)),
            "jobs_per_minute": round(per_minute.get(name, 0.0), 1),
            "next_run": next_run,
        }
    return rows


def recent_failures(events: Iterable[Record], limit: int = FAILURES_SHOWN) -> list[Record]:
    """Failed and dead attempts, newest first."""
    failures = [event for event in events if event.get("kind") in ("failed", "dead")]
    failures.sort(key=lambda event: event.get("at") or 0, reverse=True)
    return failures[:limit]


_NEXT_RUN_KEYS = ("next_run", "next_run_at", "next_fire_time", "next_fire_at")


def schedule_entries(masters: list[Record], daemon: str | None = None) -> list[Record]:
    """Upcoming schedule ticks from the snapshots' ``schedules`` key, if masters publish one.

    Schedules are another part of jobd; this reads them defensively: a list
    of entries or a mapping daemon → entries, each entry naming its next run
    under one of a few usual keys (epoch seconds or ISO text). Entries seen
    from several masters are listed once.
    """
    seen: dict[tuple[str, str], Record] = {}
    for snapshot in masters:
        raw = snapshot.get("schedules")
        if isinstance(raw, dict):
            entries = [dict(entry, daemon=entry.get("daemon", name)) for name, items in raw.items()
                       for entry in (items if isinstance(items, list) else [items]) if isinstance(entry, dict)]
        elif isinstance(raw, list):
            entries = [entry for entry in raw if isinstance(entry, dict)]
        else:
            continue
        for entry in entries:
            name = str(entry.get("name") or entry.get("id") or entry.get("task") or "?")
            owner = str(entry.get("daemon") or "?")
            if daemon is not None and owner != daemon:
                continue
            next_run = next((entry[key] for key in _NEXT_RUN_KEYS if entry.get(key) is not None), None)
            seen[(owner, name)] = {"daemon": owner, "name": name, "task": entry.get("task"), "next_run": _epoch(next_run),
                                   "timezone": entry.get("timezone")}
    return sorted(seen.values(), key=lambda entry: (entry["next_run"] is None, entry["next_run"] or 0))


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        import datetime as dt

        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.timestamp()
    return None


def _earliest(current: float | None, candidate: Any) -> float | None:
    value = _epoch(candidate)
    if value is None:
        return current
    return value if current is None else min(current, value)
