"""Where ``jobd top`` gets its data: memcached, else the master, else the store.

With memcached configured, live data comes from there (every master on
every host publishes to it). Otherwise, or while memcached has nothing (it
is down or was just restarted), the local master answers over its control
socket from its own memory. With no master answering either, the durable
store still says what is queued, what was running and what failed — the
view then says so in its ``note``.
"""

from __future__ import annotations

import time
from typing import Any

from . import defaults, unserved
from .activity import shared_activity
from .activity.base import bucket_of
from .activity.history import finished_points
from .activity.view import VIEW_VERSION, Record, recent_failures, read_view
from .batch_record import BatchState
from .config import JobdConfig
from .control import client
from .errors import JobdError
from .states import JobState
from .store import Store, open_store
from .store.finished import finished_per_minute


class Dashboard:
    """Reads the dashboard's view over and over (``jobd top`` refreshes several times a second)."""

    def __init__(self, config: JobdConfig) -> None:
        self.config = config
        self.shared = shared_activity(config)
        self._store: Store | None = None
        self._unseen_cache: tuple[float, Record] | None = None

    def view(self, daemon: str | None = None, *, last_hour: bool = False) -> Record:
        """The view; with ``last_hour``, also the charts' minutes of the last hour (``last_hour`` key)."""
        view = self._view(daemon, last_hour)
        view.update(self._unseen(daemon))
        return view

    def _unseen(self, daemon: str | None) -> Record:
        """Jobs no live master runs and rows in unknown states (``jobd.unserved``), read every few seconds."""
        now = time.monotonic()
        if self._unseen_cache is None or now - self._unseen_cache[0] >= defaults.UNSERVED_REFRESH_SECONDS:
            found: Record = {}
            try:
                if self._store is None:
                    self._store = open_store(self.config.store)
                if self._store.version() is not None:
                    found = unserved.from_store(self._store, lease=self.config.heartbeat_lease)
                    found["batches"] = [batch.to_dict() for batch in self._store.batches.list(states=[BatchState.OPEN], limit=5)]
            except Exception:  # the dashboard keeps drawing whatever fails
                found = {}
            self._unseen_cache = (now, found)
        found = self._unseen_cache[1]
        if daemon is None:
            return dict(found)
        return {  # a batch may span daemons: shown whichever one is picked
            key: entries if key == "batches" else [entry for entry in entries if entry["daemon"] == daemon]
            for key, entries in found.items()
        }

    def _view(self, daemon: str | None = None, last_hour: bool = False) -> Record:
        if self.shared is not None:
            view = read_view(self.shared, source="memcached", daemon=daemon, last_hour=last_hour)
            if view["masters"]:
                return view
        answer: Any = None
        try:
            answer = client.call(self.config.socket, "activity", timeout=2.0)
        except (JobdError, OSError):
            pass
        if isinstance(answer, dict):
            view = answer
            if daemon is not None:
                view = _only_daemon(view, daemon)
            if self.shared is not None:
                view["note"] = "memcached has no live data; showing the local master's view"
            return view
        return self._from_store(daemon, last_hour)

    def _from_store(self, daemon: str | None, last_hour: bool = False) -> Record:
        try:
            if self._store is None:
                self._store = open_store(self.config.store)
            return view_from_store(self._store, self.config, daemon=daemon, last_hour=last_hour)
        except Exception as error:  # the dashboard keeps drawing whatever fails
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            return _empty_view(f"no master answers and the store is unreachable: {first_line}")

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        if self._store is not None:
            self._store.dispose()


def view_from_store(
    store: Store, config: JobdConfig, *, daemon: str | None = None, now: float | None = None, last_hour: bool = False,
) -> Record:
    """What the durable store alone can say (no live progress, no worker states; no queue-depth history)."""
    now = time.time() if now is None else now
    if store.version() is None:
        return _empty_view(f"no master answers and the store {store.url} has no jobd tables yet (jobd init)")
    counts = store.jobs.counts()
    names = sorted(set(config.daemons) | set(counts))
    if daemon is not None:
        names = [name for name in names if name == daemon]
    running = []
    for job in store.jobs.list(states=[JobState.RUNNING], daemon=daemon, limit=100):
        progress: dict[str, Any] = dict(job.progress or {})
        running.append({
            "job_id": job.id, "daemon": job.daemon, "task": job.task, "attempt": job.attempts, "host": None,
            "worker_pid": job.worker_pid, "done": progress.get("done"), "total": progress.get("total"),
            "percent": progress.get("percent"), "message": progress.get("message"),
            "eta_seconds": progress.get("eta_seconds"), "started_at": job.started_at,
            "elapsed": now - job.started_at if job.started_at else None, "updated_at": progress.get("updated_at"),
        })
    failed = store.jobs.list(states=[JobState.RETRYING, JobState.DEAD], daemon=daemon, limit=20)
    failures = recent_failures({
        "at": job.finished_at or job.updated_at, "daemon": job.daemon, "job_id": job.id, "task": job.task,
        "attempt": job.attempts, "kind": "dead" if job.state is JobState.DEAD else "failed", "error": job.error, "host": None,
    } for job in failed)
    daemons = {}
    for name in names:
        own = counts.get(name, {})
        daemons[name] = {
            "workers": config.daemons[name].workers if name in config.daemons else 0, "busy": None, "idle": None,
            "queued": own.get("queued", 0) + own.get("scheduled", 0), "running": own.get("running", 0),
            "retrying": own.get("retrying", 0), "succeeded_last_hour": None, "failed_last_hour": None,
            "dead_last_hour": None, "jobs_per_minute": None, "next_run": None,
        }
    masters = [
        {"id": record.id, "host": record.host, "pid": record.pid, "state": record.state, "started_at": record.started_at,
         "uptime": now - record.started_at, "version": record.version}
        for record in store.masters.live(lease=config.heartbeat_lease, now=now)
    ]
    view: Record = {
        "version": VIEW_VERSION, "source": "store", "generated_at": now,
        "note": "no master answers: showing the store (no live progress)",
        "masters": masters, "daemons": daemons, "running": running, "failures": failures,
        "schedules": [], "jobs_per_minute": None,
    }
    if last_hour and daemon is None:  # the index is on (state, finished_at): no per-daemon range
        start = (bucket_of(now) - 60) * defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
        per_minute = finished_per_minute(store.engine, store.tables["jobs"], start, now)
        view["last_hour"] = {"finished": finished_points(per_minute, now), "queued": []}
    return view


def _only_daemon(view: Record, daemon: str) -> Record:
    view = dict(view)
    view["daemons"] = {name: row for name, row in view.get("daemons", {}).items() if name == daemon}
    for key in ("running", "failures", "schedules"):
        view[key] = [item for item in view.get(key, []) if item.get("daemon") == daemon]
    return view


def _empty_view(note: str) -> Record:
    return {
        "version": VIEW_VERSION, "source": "none", "generated_at": time.time(), "note": note, "masters": [],
        "daemons": {}, "running": [], "failures": [], "schedules": [], "jobs_per_minute": None,
    }
