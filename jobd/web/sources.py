"""What the web process reads and does, as plain synchronous calls (run in a thread pool).

Reads go through the same functions as the CLI and ``jobd top``
(``Dashboard.view``, ``full_status``, ``schedule_rows``, the store's job
queue); actions are the CLI's own (``api.submit`` validates an intent
exactly like ``jobd trigger``; retry and cancel go through the store and
wake the master). The live view adds two things a browser wants and
``jobd top`` does without: each master's heartbeat age from the store's
registry, the local master's workers (pid, CPU%, RSS), and the charts'
history: the last hour minute by minute, read once at start from whatever
answers (memcached, the master, else finished jobs in the store), then a
sample every 5 seconds.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from .. import api, defaults
from ..config import JobdConfig
from ..dashboard import Dashboard
from ..control import client
from ..errors import InvalidArgs, JobdError
from ..job import Job
from ..states import JobState
from ..status.report import full_status, masters_report, schedule_rows
from ..store import Store, open_store

MASTERS_REFRESH_SECONDS = 2.0  # the registry's heartbeats change once a second at most
HISTORY_STEP_SECONDS = 5.0
HISTORY_POINTS = 720 + 62  # an hour of 5-second samples, and the minutes read at start
HISTORY_SECONDS = 3600.0
LIST_ERROR_CHARS = 300


def job_summary(job: Job) -> dict[str, Any]:
    """A jobs-list row: what a table shows, without the big fields (args, result, traceback)."""
    return {
        "id": job.id, "daemon": job.daemon, "task": job.task, "state": str(job.state), "attempts": job.attempts,
        "max_attempts": job.max_attempts, "priority": job.priority, "origin": job.origin,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "run_at": job.run_at, "error": (job.error or "")[:LIST_ERROR_CHARS] or None,
        "percent": (job.progress or {}).get("percent"),
    }


class WebSources:
    def __init__(self, config: JobdConfig) -> None:
        self.config = config
        self.dashboard = Dashboard(config)
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._view_lock = threading.Lock()
        self._masters: list[dict[str, Any]] = []
        self._masters_read = 0.0
        self._workers: list[dict[str, Any]] = []
        self._daemon_states: dict[str, dict[str, Any]] = {}
        self._history: collections.deque[list[float | None]] = collections.deque(maxlen=HISTORY_POINTS)
        self._history_notes: dict[str, str | None] | None = None  # None: the last hour is not read yet

    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                self._store = open_store(self.config.store)
            return self._store

    def close(self) -> None:
        self.dashboard.close()
        if self._store is not None:
            self._store.dispose()

    # -- live -------------------------------------------------------------

    def live_view(self, now: float | None = None) -> dict[str, Any]:
        """``jobd top``'s view, plus the registry's masters (heartbeat age) and the charts' history."""
        now = time.time() if now is None else now
        with self._view_lock:  # the memcached client and the history are not shared between threads
            return self._live_view(now)

    def _live_view(self, now: float) -> dict[str, Any]:
        seeding = self._history_notes is None
        view = dict(self.dashboard.view(last_hour=seeding))
        last_hour = view.pop("last_hour", None)
        if seeding:
            self._seed_history(last_hour, now)
        if now - self._masters_read >= MASTERS_REFRESH_SECONDS:
            self._masters_read = now
            self._workers = self._local_workers()
            try:
                self._masters = masters_report(self.config, self.store)
            except Exception as error:  # the live page still draws what the dashboard had
                self._masters = []
                view["note"] = view.get("note") or f"the store is unreachable: {error}"
        view["registry"] = self._masters
        view["workers"] = self._workers
        view["daemon_states"] = self._daemon_states
        daemons = view.get("daemons") or {}
        if not self._history or now - float(self._history[-1][0] or 0) >= HISTORY_STEP_SECONDS:
            queued = sum(int(row.get("queued") or 0) for row in daemons.values())
            self._history.append([round(now, 1), float(view.get("jobs_per_minute") or 0), float(queued)])
            while self._history and float(self._history[0][0] or 0) < now - HISTORY_SECONDS:
                self._history.popleft()
        view["history"] = list(self._history)
        view["history_notes"] = self._history_notes
        return view

    def _seed_history(self, last_hour: Any, now: float) -> None:
        """Start the charts from the last hour's minutes (``[t, finished, None]`` and ``[t, None, queued]`` merged by t).

        A series no source could give starts empty, and its chart says it only
        holds what was sampled since ``jobd web`` started.
        """
        points: dict[float, list[float | None]] = {}
        found = last_hour if isinstance(last_hour, dict) else {}
        for column, key in ((1, "finished"), (2, "queued")):
            for t, value in found.get(key) or []:
                if now - HISTORY_SECONDS <= t <= now:
                    points.setdefault(t, [t, None, None])[column] = float(value)
        self._history.extend(points[t] for t in sorted(points))
        since = "since jobd web started: no source had the last hour"
        self._history_notes = {
            "rate": None if found.get("finished") else since,
            "queue": None if found.get("queued") else since,
        }

    def _local_workers(self) -> list[dict[str, Any]]:
        """The local master's workers with pid, CPU% and RSS (every 2 s: a status call costs the master more)."""
        try:
            status = client.call(self.config.socket, "status", timeout=2.0)
        except (JobdError, OSError):
            self._daemon_states = {}
            return []
        self._daemon_states = {  # what the daemon buttons offer: stop a started one, start a stopped one
            name: {"state": pool.get("state"), "size": pool.get("size"), "restart": pool.get("restart")}
            for name, pool in (status.get("daemons") or {}).items()
        }
        keys = ("pid", "state", "job_id", "task", "uptime", "jobs_done", "cpu_percent", "rss_bytes", "waiting")
        host = (status.get("master") or {}).get("host")
        return [
            {"daemon": name, "host": host, **{key: worker.get(key) for key in keys}}
            for name, pool in sorted((status.get("daemons") or {}).items())
            for worker in pool.get("workers") or []
        ]

    # -- reads ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return full_status(self.config, store=self.store)

    def schedules(self) -> list[dict[str, Any]]:
        return schedule_rows(self.config, self.store)

    def jobs(
        self, *, states: list[str], daemon: str | None, task: str | None, limit: int, before: int | None,
        created_after: float | None = None, created_before: float | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of jobs, newest first, and the id to page on from (None on the last page)."""
        try:
            wanted = [JobState(value) for value in states]
        except ValueError:
            raise InvalidArgs(f"unknown state in {states}; states are: {', '.join(s.value for s in JobState)}") from None
        found = self.store.jobs.list(states=wanted, daemon=daemon, task=task, limit=limit + 1, before_id=before,
                                     created_after=created_after, created_before=created_before)
        rows = [job_summary(job) for job in found[:limit]]
        return rows, (rows[-1]["id"] if len(found) > limit else None)

    def job(self, job_id: int) -> dict[str, Any]:
        """Everything about one job, its live progress when it runs, and its log lines."""
        job = self.store.jobs.get(job_id)
        data = job.to_dict()
        data["logs"] = [line.to_dict() for line in self.store.job_logs.lines(job_id, limit=defaults.DEFAULT_JOB_LOG_MAX_LINES)]
        return data

    # -- actions ----------------------------------------------------------

    def submit(self, intent: dict[str, Any]) -> int:
        delay = intent.get("delay")
        run_at = intent.get("run_at")
        if delay is not None:
            run_at = time.time() + float(delay)
        return api.submit(
            intent["daemon"], intent["task"], intent.get("args") or {}, run_at=run_at,
            priority=int(intent.get("priority") or 0), unique_key=intent.get("unique_key"),
            max_attempts=intent.get("max_attempts"), config=self.config,
        )

    def retry(self, job_id: int) -> dict[str, Any]:
        job = self.store.jobs.retry(job_id)
        api.wake_master(self.config.socket)
        return job.to_dict()

    def cancel(self, job_id: int) -> dict[str, Any]:
        job = self.store.jobs.cancel(job_id)
        api.wake_master(self.config.socket)
        return job.to_dict()
