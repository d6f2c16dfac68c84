"""The master's side of `jobd start/stop/restart/scale DAEMON`: each pool driven to its desired state.

``DaemonControl`` moves one daemon through its run states (``jobd.daemons.plan``)
with the pool's own primitives — size, retire, kill — so nothing here
interrupts a job except a stop's drain timeout, whose jobs go back to the
queue. ``DaemonControls`` holds all of a master's daemons and answers the
control-socket operations; every change is committed to the store before it
is applied or acknowledged, so it survives a restart of the master.

All methods run on the master's loop thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from ..config import DaemonConfig, JobdConfig
from .detail import FAILED_STATES, RECENT_FAILURES, queue_report
from .plan import DaemonState, Desired, WorkerView, change_daemon_state, default_desired, rolling_step
from ..errors import BadInput, UnknownDaemon
from ..observability.procstats import ProcessSample, cpu_percent, sample
from ..status.model import PoolStatus
from ..store.store_core import StoreCore
from ..workers.memory import MB
from ..workers.pool import Pool
from ..workers.states import WorkerState

log = logging.getLogger("jobd.daemons")

MAX_WORKERS = 512  # the same bound as the config's `workers`


class DaemonControl:
    """One daemon on this master: its pool, what the operator wants of it, and where it is."""

    def __init__(self, name: str, pool: Pool, settings: DaemonConfig, drain_timeout: float) -> None:
        self.name = name
        self.pool = pool
        self.settings = settings
        self.drain_timeout = drain_timeout
        self.desired = default_desired(settings)
        self.state = DaemonState.STARTED
        self.stop_started_at: float | None = None
        self.rolling_old: frozenset[int] | None = None  # pids still to replace by a rolling restart
        self.rolling_total = 0

    @property
    def accepts_jobs(self) -> bool:
        return self.state is DaemonState.STARTED

    def apply(self, desired: Desired, settings: DaemonConfig, drain_timeout: float, now: float) -> None:
        """Make ``desired`` the goal: start, begin a drain, or resize the pool."""
        self.desired, self.settings, self.drain_timeout = desired, settings, drain_timeout
        if desired.running:
            if self.state is not DaemonState.STARTED:
                self._move_to(DaemonState.STARTED)
                self.stop_started_at = None
            if self.rolling_old is None:
                self.pool.size = desired.size(settings)
        else:
            self.rolling_old = None
            self.pool.size = 0
            if self.state is DaemonState.STARTED:
                self._move_to(DaemonState.STOPPING)
                self.stop_started_at = now
        self.tick(now)

    def restart(self) -> list[int]:
        """Begin a rolling restart of every worker serving now; returns their pids."""
        old = [worker.pid for worker in self.pool.serving_workers()]
        self.rolling_old = frozenset(old)
        self.rolling_total = len(old)
        log.info("daemon %s: rolling restart of %s worker(s)", self.name, len(old))
        return old

    def tick(self, now: float) -> None:
        """Advance a drain or a rolling restart; called by the master loop before it claims jobs."""
        if self.state is DaemonState.STOPPING:
            self._continue_stop(now)
        elif self.rolling_old is not None:
            self._continue_rolling()

    def _continue_stop(self, now: float) -> None:
        assert self.stop_started_at is not None
        overdue = now - self.stop_started_at > self.drain_timeout
        for worker in self.pool.live_workers():
            if worker.assignment is not None and overdue:
                self.pool.kill(worker, "drain timeout")
            else:
                self.pool.retire(worker)  # a busy one ends its running job first and starts none it holds
        if not self.pool.live_workers():
            self._move_to(DaemonState.STOPPED)
            log.info("daemon %s stopped", self.name)

    def _continue_rolling(self) -> None:
        assert self.rolling_old is not None
        views = [WorkerView(worker.pid, worker.state) for worker in self.pool.live_workers()]
        step = rolling_step(views, self.rolling_old, self.desired.size(self.settings))
        self.pool.size = step.pool_size
        for worker in self.pool.live_workers():
            if worker.pid in step.retire:
                log.info("daemon %s: restart retires worker %s", self.name, worker.pid)
                self.pool.retire(worker)
        if step.done:
            self.rolling_old = None
            log.info("daemon %s: rolling restart done", self.name)

    def _move_to(self, target: DaemonState) -> None:
        self.state = change_daemon_state(self.state, target)

    def describe(self) -> dict[str, Any]:
        """Desired versus actual, as plain data for `jobd status`."""
        restart = None
        if self.rolling_old is not None:
            left = sum(1 for worker in self.pool.serving_workers() if worker.pid in self.rolling_old)
            restart = {"replaced": self.rolling_total - left, "total": self.rolling_total}
        return {
            "desired": self.desired.to_dict(self.settings),
            "state": str(self.state),
            "restart": restart,
        }


class DaemonControls:
    """All daemons of one master, and the operations on them."""

    def __init__(self, store: StoreCore, clock: Any = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.controls: dict[str, DaemonControl] = {}
        self._samples: dict[int, ProcessSample] = {}

    # -- the master's hooks ------------------------------------------------

    def sync(self, config: JobdConfig, pools: dict[str, Pool]) -> None:
        """Attach new pools and apply the stored desired state (at start and after a reload)."""
        stored = self.store.daemon_states.load()
        now = self.clock()
        for name in list(self.controls):
            if name not in config.daemons or name not in pools:
                del self.controls[name]
        for name, settings in config.daemons.items():
            if name not in pools:
                continue  # placed on other hosts (run_daemons / $JOBD_RUN_DAEMONS)
            control = self.controls.get(name)
            if control is None:
                control = self.controls[name] = DaemonControl(name, pools[name], settings, config.drain_timeout_for(name))
            control.apply(stored.get(name) or default_desired(settings), settings, config.drain_timeout_for(name), now)

    def tick(self) -> None:
        now = self.clock()
        for control in self.controls.values():
            control.tick(now)

    def accepts_jobs(self, daemon: str) -> bool:
        control = self.controls.get(daemon)
        return control is None or control.accepts_jobs

    def stopping(self, daemon: str) -> bool:
        control = self.controls.get(daemon)
        return control is not None and control.state is DaemonState.STOPPING

    # -- operations (control socket) ----------------------------------------

    def start(self, args: dict[str, Any]) -> dict[str, Any]:
        return {control.name: self._set(control, replace(control.desired, running=True)) for control in self._named(args)}

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        return {control.name: self._set(control, replace(control.desired, running=False)) for control in self._named(args)}

    def restart(self, args: dict[str, Any]) -> dict[str, Any]:
        """Rolling restart; a stopped daemon is started (its new workers import the code anew)."""
        result = {}
        for control in self._named(args):
            if not control.desired.running or control.state is not DaemonState.STARTED:
                result[control.name] = {**self._set(control, replace(control.desired, running=True)), "old_pids": []}
                if control.pool.serving_workers():
                    result[control.name]["old_pids"] = control.restart()
            else:
                result[control.name] = {**control.describe(), "old_pids": control.restart()}
        return result

    def scale(self, args: dict[str, Any]) -> dict[str, Any]:
        (control,) = self._named({"daemons": [args.get("daemon")]})
        workers = args.get("workers")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
            raise BadInput(f"workers must be a whole number from 0 to {MAX_WORKERS}, not {workers!r}")
        return {control.name: self._set(control, replace(control.desired, workers=workers))}

    def _named(self, args: dict[str, Any]) -> list[DaemonControl]:
        """The daemons an operation names, all checked before any is touched."""
        names = args.get("daemons")
        if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
            raise BadInput("name at least one daemon, e.g. {\"daemons\": [\"sms\"]}")
        unknown = [name for name in names if name not in self.controls]
        if unknown:
            known = ", ".join(sorted(self.controls)) or "none"
            raise UnknownDaemon(f"unknown daemon {unknown[0]!r} (known daemons: {known})")
        return [self.controls[name] for name in dict.fromkeys(names)]

    def _set(self, control: DaemonControl, desired: Desired) -> dict[str, Any]:
        was = {"was": str(control.state), "was_size": control.pool.size}
        self.store.daemon_states.save(control.name, desired)  # durable before it is acknowledged
        control.apply(desired, control.settings, control.drain_timeout, self.clock())
        return {**control.describe(), **was}

    # -- status -------------------------------------------------------------

    def status(self, daemon: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        """``pool_status`` over a pool's plain snapshot (``jobd status DAEMON`` answers plain data)."""
        return self.pool_status(PoolStatus.from_wire({"daemon": daemon, **snapshot})).to_wire()

    def pool_status(self, status: PoolStatus) -> PoolStatus:
        """A pool's status with desired/actual state and each worker's CPU% and RSS."""
        control = self.controls.get(status.daemon)
        described = control.describe() if control else {}
        now = self.clock()
        workers = []
        for worker in status.workers:
            current = sample(worker.pid, now)
            if current is None:
                workers.append(replace(worker, cpu_percent=None, rss_bytes=None, rss_mb=None))
                continue
            workers.append(replace(
                worker,
                cpu_percent=cpu_percent(self._samples.get(worker.pid), current, worker.uptime or 0.0),
                rss_bytes=current.rss_bytes,
                rss_mb=round(current.rss_bytes / MB, 1),  # the same sample in both units
            ))
            self._samples[worker.pid] = current
        alive = {worker.pid for worker in workers}
        for pid in [pid for pid in self._samples if pid not in alive and not self._pid_of(pid)]:
            del self._samples[pid]
        return replace(status, workers=workers, **described)

    def _pid_of(self, pid: int) -> bool:
        return any(worker.pid == pid for control in self.controls.values() for worker in control.pool.live_workers())

    def detail(self, daemon: str) -> dict[str, Any]:
        return store_queue_report(self.store, daemon)


def store_queue_report(store: StoreCore, daemon: str) -> dict[str, Any]:
    """``detail.queue_report`` of one daemon, read on ``store``."""
    failures = store.jobs.list(states=list(FAILED_STATES), daemon=daemon, limit=RECENT_FAILURES)
    return queue_report(store.jobs.queue_depth(daemon), failures, time.time())


__all__ = ["DaemonControl", "DaemonControls", "WorkerState"]
