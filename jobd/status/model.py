"""The status records: what a master says about itself, and the ``status --json`` document.

Two shapes cross a boundary. ``MasterStatus`` is a master's own snapshot:
it answers the control socket's ``status`` operation and is published to
memcached, so it travels as plain JSON (``to_wire`` / ``from_wire``).
``StatusReport`` is what ``jobd status --json`` prints and ``jobd web``
serves (docs/status-json.md); ``to_json`` is the one place that shape is
written, key for key and in the documented order, so tools that compare
outputs byte for byte keep working. Within ``STATUS_JSON_VERSION`` keys are
only ever added.

Everything here is pure data: building a record is ``snapshot`` (the
master's side) and ``report`` (the readers' side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Union

Record = dict[str, Any]

STATUS_JSON_VERSION = 1


def _plain(record: Any) -> Record:
    """A dataclass's fields as a dict, in declaration order (shallow: nested values are shared)."""
    return {item.name: getattr(record, item.name) for item in fields(record)}


@dataclass(frozen=True)
class WorkerStatus:
    """One live worker of a pool: what it is doing, for how long, and what it costs."""

    pid: int
    state: str  # starting, idle, busy, stopping
    uptime: float
    jobs_done: int
    job_id: int | None = None
    task: str | None = None
    attempt: int | None = None
    progress: Record | None = None  # what the running task last passed to ctx.progress
    running_for: float | None = None
    waiting: int = 0  # jobs handed to this worker to run after job_id (pipelining)
    rss_mb: float | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    @property
    def busy(self) -> bool:
        return self.state == "busy"

    def to_wire(self) -> Record:
        return _plain(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WorkerStatus:
        return cls(**{item.name: data[item.name] for item in fields(cls) if item.name in data})


@dataclass(frozen=True)
class PoolStatus:
    """A daemon's pool on a running master: its workers, desired versus actual state, its job counts."""

    daemon: str
    size: int
    workers: list[WorkerStatus] = field(default_factory=list)
    restarts: int = 0
    recycles: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # the last worker start failure, if the pool cannot start workers
    counts: dict[str, int] = field(default_factory=dict)  # jobs per state in the store
    desired: Record | None = None
    state: str | None = None  # started, stopping, stopped
    restart: Record | None = None  # a rolling restart's progress: {"replaced", "total"}

    @property
    def busy(self) -> int:
        return sum(1 for worker in self.workers if worker.state == "busy")

    @property
    def idle(self) -> int:
        return sum(1 for worker in self.workers if worker.state == "idle")

    def to_wire(self) -> Record:
        return {**_plain(self), "workers": [worker.to_wire() for worker in self.workers]}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PoolStatus:
        values = {item.name: data[item.name] for item in fields(cls) if item.name in data}
        values["workers"] = [WorkerStatus.from_wire(worker) for worker in data.get("workers") or []]
        return cls(**values)


@dataclass(frozen=True)
class MasterInfo:
    """Who a master is and how long it has been up (the ``master`` key)."""

    id: str
    pid: int
    host: str
    version: str
    state: str  # running, draining
    started_at: float
    uptime: float
    config: str
    jobs_finished: int = 0
    handoffs: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> Record:
        return _plain(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> MasterInfo:
        return cls(**{item.name: data[item.name] for item in fields(cls) if item.name in data})


@dataclass(frozen=True)
class MasterStatus:
    """A master's own snapshot: control socket ``status`` answer and its memcached record."""

    master: MasterInfo
    daemons: dict[str, PoolStatus]
    store: Record  # jobd.store.health: {"available": …} while up, the outage while down
    lease: Record  # jobd.lease_guard: lease, renewed_ago, fence_in, fenced
    schedules: list[Record] = field(default_factory=list)

    def to_wire(self) -> Record:
        return {
            "store": self.store,
            "lease": self.lease,
            "master": self.master.to_wire(),
            "daemons": {name: pool.to_wire() for name, pool in self.daemons.items()},
            "schedules": self.schedules,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> MasterStatus:
        return cls(
            master=MasterInfo.from_wire(data["master"]),
            daemons={name: PoolStatus.from_wire({"daemon": name, **pool}) for name, pool in (data.get("daemons") or {}).items()},
            store=dict(data.get("store") or {}),
            lease=dict(data.get("lease") or {}),
            schedules=list(data.get("schedules") or []),
        )


# -- the status --json document ---------------------------------------------------


@dataclass(frozen=True)
class RunningJob:
    """A job running now on some host, with its latest progress (``running_jobs[]``)."""

    job_id: int
    daemon: str
    task: str | None
    attempt: int | None
    host: str | None
    worker_pid: int | None
    done: float | None = None
    total: float | None = None
    percent: float | None = None
    message: str | None = None
    eta_seconds: float | None = None
    started_at: float | None = None
    elapsed: float | None = None
    updated_at: float | None = None

    @classmethod
    def of_worker(cls, daemon: str, worker: WorkerStatus, host: str | None, now: float) -> RunningJob:
        """The job ``worker`` runs, as the local master reports it."""
        assert worker.job_id is not None
        progress = worker.progress or {}
        started = progress.get("started_at")
        return cls(
            job_id=worker.job_id, daemon=daemon, task=worker.task, attempt=worker.attempt, host=host, worker_pid=worker.pid,
            **_progress_fields(progress), elapsed=now - started if started else worker.running_for,
        )

    @classmethod
    def from_view(cls, data: Mapping[str, Any]) -> RunningJob:
        """A running job of ``jobd.activity.view`` (every host's, read from memcached)."""
        return cls(**{item.name: data.get(item.name) for item in fields(cls)})  # type: ignore[arg-type]

    def to_json(self) -> Record:
        found = _plain(self)
        del found["daemon"]  # the document lists a daemon's running jobs under that daemon
        return found


_PROGRESS_KEYS = ("done", "total", "percent", "message", "eta_seconds", "started_at", "updated_at")


def _progress_fields(progress: Mapping[str, Any]) -> Record:
    return {key: progress.get(key) for key in _PROGRESS_KEYS}


@dataclass(frozen=True)
class DaemonStatus:
    """One daemon in ``status --json``: the local master's pool if it answers, else the store's counts."""

    size: int
    counts: dict[str, int]
    desired: Record | None
    state: str | None
    pool: PoolStatus | None = None  # None: the master is down (no workers, no busy/idle)
    # Due jobs waiting for a rate limit, one entry per limited key (``jobd.rate_status``); None: none wait.
    rate_limited: list[Record] | None = None
    running_jobs: list[RunningJob] = field(default_factory=list)

    def to_json(self) -> Record:
        found: Record = {"size": self.size}
        if self.pool is not None:
            pool = self.pool
            found.update(busy=pool.busy, idle=pool.idle, workers=[worker.to_wire() for worker in pool.workers], restarts=pool.restarts)
        found.update(counts=self.counts, desired=self.desired, state=self.state)
        if self.pool is not None:
            found["restart"] = self.pool.restart
        if self.rate_limited:
            found["rate_limited"] = self.rate_limited
        found["running_jobs"] = [job.to_json() for job in sorted(self.running_jobs, key=lambda job: job.job_id)]
        return found


@dataclass(frozen=True)
class RegisteredMaster:
    """A master in the store's registry (any host), with its heartbeat's age (``masters[]``)."""

    id: str
    host: str
    pid: int
    version: str
    state: str  # running, draining, stopped, dead
    daemons: list[str]
    control_socket: str | None
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    heartbeat_age: float
    alive: bool
    # Its memcached snapshot was read too: the entry then starts with the snapshot's keys
    # (id, host, pid, state, started_at, uptime, version), as version 1 always printed it.
    announced: bool = False

    def uptime(self, now: float) -> float | None:
        return now - self.started_at if self.alive else None

    def to_record(self) -> Record:
        """The registry's record with heartbeat age and liveness (what ``jobd web`` lists)."""
        return {key: value for key, value in _plain(self).items() if key != "announced"}

    def to_json(self, now: float) -> Record:
        own = self.to_record()
        tail = {"running": self.alive, "uptime": self.uptime(now)}
        if not self.announced:
            return {**own, **tail}
        head = {key: tail["uptime"] if key == "uptime" else own[key] for key in _ANNOUNCED_KEYS}
        return {**head, **own, **tail}


@dataclass(frozen=True)
class AnnouncedMaster:
    """A live master known from its memcached snapshot (or the local one) but not in the store's registry."""

    id: str | None
    host: str | None
    pid: int | None
    state: str | None
    started_at: float | None
    uptime: float | None
    version: str | None

    @classmethod
    def from_view(cls, data: Mapping[str, Any]) -> AnnouncedMaster:
        return cls(**{key: data.get(key) for key in _ANNOUNCED_KEYS})

    @classmethod
    def of(cls, master: MasterInfo) -> AnnouncedMaster:
        return cls(master.id, master.host, master.pid, master.state, master.started_at, master.uptime, master.version)

    def to_json(self, now: float) -> Record:
        return {**_plain(self), "running": True}


_ANNOUNCED_KEYS = ("id", "host", "pid", "state", "started_at", "uptime", "version")

KnownMaster = Union[RegisteredMaster, AnnouncedMaster]


@dataclass(frozen=True)
class StatusReport:
    """The ``status --json`` document (docs/status-json.md, version 1).

    ``master`` is the local master when it answers (``store`` and ``lease``
    are then its own view); ``unserved`` and ``unknown_states`` are None when
    the store could not be read.
    """

    generated_at: float
    master: MasterInfo | None
    daemons: dict[str, DaemonStatus]
    masters: list[KnownMaster] = field(default_factory=list)
    store: Record | None = None
    lease: Record | None = None
    unserved: list[Record] | None = None
    unknown_states: list[Record] | None = None
    batches: list[Record] | None = None  # open and recently ended batches; [] while the store cannot be read

    @property
    def running(self) -> bool:
        return self.master is not None

    def notes(self) -> list[str]:
        """The human lines about jobs nobody runs and states jobd does not know."""
        return [entry["note"] for entries in (self.unserved, self.unknown_states) for entry in entries or []]

    def to_json(self) -> Record:
        """The document, in version 1's key order (the local master's keys first when it answers)."""
        now = self.generated_at
        daemons = {name: daemon.to_json() for name, daemon in self.daemons.items()}
        masters = [master.to_json(now) for master in self.masters]
        unseen: Record = {}
        if self.unserved is not None:
            unseen["unserved"] = self.unserved
        if self.unknown_states is not None:
            unseen["unknown_states"] = self.unknown_states
        head: Record = {"version": STATUS_JSON_VERSION, "generated_at": now}
        tail: Record = {"batches": self.batches} if self.batches is not None else {}
        if self.master is None:
            return {**head, **unseen, "masters": masters, "master": {"running": False}, "daemons": daemons, **tail}
        live: Record = {"master": {"running": True, **self.master.to_wire()}, "daemons": daemons}
        if self.store is not None:
            live["store"] = self.store
        if self.lease is not None:
            live["lease"] = self.lease
        return {**head, **live, "masters": masters, **unseen, **tail}
