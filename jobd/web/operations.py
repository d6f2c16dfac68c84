"""The dashboard's operator actions beyond retry/cancel, as plain synchronous calls (run in a thread pool).

Each one is the CLI's own: a daemon is started, stopped, scaled or
restarted by the master's control operations (``daemon_client``, what
``jobd stop/scale/restart`` send), without waiting for it to get there (the
live page shows it); a schedule entry is paused and resumed through the
store as ``jobd pause/resume`` do, and "run now" submits the entry's task
and args as an intent (``api.submit``, validated like ``jobd trigger``).
Job deletions and bulk actions on dead jobs go through the store's guarded
methods; their log lines go with deleted jobs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .. import api, defaults
from ..daemons import client as daemon_client
from ..config import JobdConfig, load_schedule
from ..errors import InvalidArgs, UnknownJob
from ..schedules import ScheduleEntry
from ..store import Store

DAEMON_OPERATIONS = {"start": "start_daemons", "stop": "stop_daemons", "restart": "restart_daemons"}


class UnknownEntry(UnknownJob):
    """No schedule entry by that name (a 404, like an unknown job)."""


@dataclass(frozen=True)
class DeadFilter:
    """Which dead jobs a bulk action takes: all of these that are given must match."""

    daemon: str | None = None
    task: str | None = None
    created_after: float | None = None
    created_before: float | None = None

    @property
    def empty(self) -> bool:
        return self.daemon is None and self.task is None and self.created_after is None and self.created_before is None

    def describe(self) -> str:
        parts = [f"daemon={self.daemon}" if self.daemon else "", f"task={self.task}" if self.task else "",
                 f"created>={_stamp(self.created_after)}" if self.created_after is not None else "",
                 f"created<{_stamp(self.created_before)}" if self.created_before is not None else ""]
        return " ".join(part for part in parts if part) or "all"


def _stamp(epoch: float | None) -> str:
    return dt.datetime.fromtimestamp(epoch or 0, dt.timezone.utc).isoformat(timespec="seconds")


class Operations:
    def __init__(self, config: JobdConfig, store: Any) -> None:
        self.config = config
        self._store = store  # a callable giving the (lazily opened) Store

    @property
    def store(self) -> Store:
        store: Store = self._store()
        return store

    # -- jobs -------------------------------------------------------------

    def delete_job(self, job_id: int) -> dict[str, Any]:
        job = self.store.jobs.delete(job_id)
        self.store.job_logs.delete_for([job_id])
        return {"job_id": job_id, "state": str(job.state), "deleted": True}

    def dead_jobs(self, action: str, where: DeadFilter) -> dict[str, Any]:
        if where.daemon is not None:
            self.config.daemon(where.daemon)  # UnknownDaemon naming the known ones
        ids, left = self.store.jobs.dead_matching(
            action, daemon=where.daemon, task=where.task, created_after=where.created_after, created_before=where.created_before,
        )
        if action == "delete":
            self.store.job_logs.delete_for(ids)
        elif ids:
            api.wake_master(self.config.socket)
        return {"action": action, "count": len(ids), "more_left": left, "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None, "limit": defaults.BULK_ACTION_MAX}

    # -- daemons ----------------------------------------------------------

    def daemon(self, action: str, name: str, workers: int | None = None) -> dict[str, Any]:
        """Ask the master to start/stop/restart/scale ``name``; answer what it said (it gets there on its own)."""
        self.config.daemon(name)  # an unknown name is refused before the master is asked
        if action == "scale":
            result = daemon_client.call_for_daemons(self.config, "scale_daemon", {"daemon": name, "workers": workers}, [name])
        else:
            result = daemon_client.call_for_daemons(self.config, DAEMON_OPERATIONS[action], {"daemons": [name]}, [name])
        answer: dict[str, Any] = dict(result.get(name) or {})
        return {"daemon": name, "action": action, **answer}

    # -- schedules --------------------------------------------------------

    def entry(self, name: str) -> ScheduleEntry:
        schedule = load_schedule(self.config)
        if name not in schedule:
            known = ", ".join(sorted(schedule)) or "none"
            raise UnknownEntry(f"no schedule entry named {name!r} (known: {known})")
        return schedule[name]

    def schedule(self, action: str, name: str) -> dict[str, Any]:
        entry = self.entry(name)
        store = self.store
        if action == "pause":
            changed = store.schedules.pause(f"entry:{entry.name}")
            return {"entry": entry.name, "paused": True, "changed": changed}
        if action == "resume":
            changed = store.schedules.resume(f"entry:{entry.name}")
            return {"entry": entry.name, "paused": False, "changed": changed}
        job_id = api.submit(entry.daemon, entry.task, dict(entry.args), max_attempts=entry.max_attempts, config=self.config)
        return {"entry": entry.name, "job_id": job_id, "url": f"/api/v1/jobs/{job_id}"}


def parse_moment(value: Any, name: str) -> float | None:
    """Epoch seconds, or an ISO 8601 time (without a zone: UTC); None for nothing given."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidArgs(f"{name} must be epoch seconds or an ISO 8601 time, not {value!r}")
    if isinstance(value, (int, float)):
        moment = float(value)
    else:
        text = str(value).strip()
        try:
            moment = float(text)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise InvalidArgs(f"{name} must be epoch seconds or an ISO 8601 time, not {text[:40]!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            moment = parsed.timestamp()
    if not 0 <= moment < 1e11:
        raise InvalidArgs(f"{name} is out of range: {value!r}")
    return moment
