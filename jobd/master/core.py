"""The master: one supervising process per host — its wiring and its run.

Its loop is poll → read worker messages → reap → check timeouts → serve
control requests → act on signals → tick (claim due jobs, heartbeat,
recover orphans, flush progress). It never runs task code: tasks run in
worker pools, and the master only learns their names (``jobd.inventory``).

Each concern of the loop lives in a module of this package (``loop``,
``dispatch``, ``endings``, ``lease``, ``drain``, ``operations``,
``periodic``, ``status``, ``store_link``, ``handoff_side``); this class
builds them, holds the state they share (the pools, ``draining``,
``finished``, ``lease_lost``) and runs the loop until it is told to stop.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import __version__, defaults
from ..activity import shared_activity
from ..activity.recorder import ActivityRecorder
from ..config import DaemonConfig, JobdConfig, load_schedule
from ..control.server import ControlServer, Inbox
from ..daemons.control import DaemonControls
from ..errors import ExitCode, JobdError, UnknownDaemon
from ..inventory import Inventory
from ..job import Job
from ..lease_guard import LeaseGuard
from ..observability.job_logs import JobLogCapture
from ..observability.observers import Observers
from ..schedules import Schedule
from ..outcomes import Limits
from ..signals import SignalReceiver, WakePipe
from ..store.checkpoints import WalCheckpointer
from ..store.driver_sql import for_master
from ..store.handover import StoreHandover, handover_for
from ..store.health import StoreHealth, store_probe
from ..store.store_core import StoreCore, open_driver_store
from ..store.retry import retry_outages
from ..ticker import Ticker
from ..workers.pool import Pool
from ..workers.processes import ProcessLauncher
from ..workers.spec import WorkerSpec
from .dispatch import Dispatcher
from .drain import Drain
from .endings import Endings
from .handoff_side import HandoffSide
from .lease import LeaseKeeper
from .loop import Loop
from .operations import Operations
from .periodic import PeriodicWork
from .status import StatusReport
from .store_link import StoreLink

log = logging.getLogger("jobd.master")

ReadyCallback = Callable[[str | None], None]  # None: ready; a string: why it could not start


class Master:
    def __init__(
        self,
        config: JobdConfig,
        inventory: Inventory,
        *,
        schedule: Schedule | None = None,
        launcher: ProcessLauncher | None = None,
        clock: Callable[[], float] = time.monotonic,
        job_logs: JobLogCapture | None = None,
        store: StoreHandover | None = None,
    ) -> None:
        """``store``: how to reach the store, from ``jobd start``, which also created its schema.
        Without it (a master run in-process) the master works both out itself, loading SQLAlchemy.
        ``schedule``: the config's, as ``jobd start`` checked it; without it the master reads the
        schedule files itself, loading pydantic to do so."""
        self.config = config
        self.inventory = inventory
        self.schedule = schedule if schedule is not None else load_schedule(config)
        self.launcher = launcher or ProcessLauncher()
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store_handed = store is not None
        handover = store or handover_for(config.store)
        self.launcher.store_target = handover.target  # the workers connect as ``jobd start`` worked out
        master_target = for_master(handover.target)  # no fsyncs inside a claim: the checkpoint thread does them
        self.store: StoreCore = open_driver_store(master_target, handover.url)
        self.wal_checkpoints = WalCheckpointer(master_target, defaults.WAL_CHECKPOINT_INTERVAL_SECONDS)
        self.pools: dict[str, Pool] = {}
        self.daemons = DaemonControls(self.store, clock)
        self.wake_pipe = WakePipe()
        self.signals = SignalReceiver(self.wake_pipe)
        self.inbox = Inbox(self.wake_pipe.wake)
        self.control = ControlServer(config.socket, self.inbox)
        self.started_at = time.time()
        self.jobs_finished = 0
        self.draining = False  # no new jobs: running ones finish (``drain``)
        self.finished = False  # the loop ends after this turn
        self.lease_lost = False  # another master declared this one dead (``lease``)
        self.store_health = StoreHealth(store_probe(master_target), clock=clock)
        self.lease = LeaseGuard(config.heartbeat_lease, clock)
        self.ticker = Ticker(self.store, self.schedule)
        self.observers = Observers(config, job_logs=job_logs, clock=clock)  # systemd, metrics, job logs, alerts
        self.activity = ActivityRecorder(self.id, shared_activity(config))
        self.store_link = StoreLink(self)
        self.lease_keeper = LeaseKeeper(self)
        self.dispatcher = Dispatcher(self)
        self.endings = Endings(self)
        self.handoff = HandoffSide(self)
        self.drain = Drain(self)
        self.reporter = StatusReport(self)
        self.operations = Operations(self)
        self.periodic = PeriodicWork(self)
        self.loop = Loop(self)

    # -- lifecycle --------------------------------------------------------

    def run(self, ready: ReadyCallback | None = None) -> int:
        """Run until stopped; return the exit code."""
        try:
            self._start()
        except JobdError as error:
            if ready:
                ready(str(error))
            raise
        if ready:
            ready(None)
        self.observers.ready(self)
        log.info("master %s ready: daemons %s", self.id, ", ".join(self.pools) or "none")
        # What start-up built (modules, SQLAlchemy's tables and compiled statements, the
        # config) lives as long as the master: out of the collector's way, a full
        # collection takes 1-3 ms instead of 35-45 ms, which every job waiting on the
        # loop at that moment paid for (a priority-100 job's p99 with a million queued).
        gc.collect()
        gc.freeze()
        try:
            while not self.finished:
                self.loop.turn()
        finally:
            self._shutdown()
        return int(ExitCode.LEASE_LOST) if self.lease_lost else 0

    def _schema_ready(self) -> None:
        """The store's schema at this jobd's version: ``jobd start`` created it; run in-process, create it here."""
        if self.store_handed:
            self.store.require_schema()
            return
        from ..store import open_store

        full = open_store(self.config.store)
        try:
            full.initialise()
        finally:
            full.dispose()

    def _start(self) -> None:
        def through_outages(step: Callable[[], Any], what: str) -> Any:
            return retry_outages(step, what=what, within=defaults.START_STORE_WAIT_SECONDS)

        through_outages(self._schema_ready, "checking the store's schema")
        self.wal_checkpoints.start()
        through_outages(lambda: self.store.masters.register(
            self.id, pid=os.getpid(), version=__version__, daemons=sorted(self.config.daemons),
            control_socket=str(self.config.socket),
        ), "registering this master")
        self.lease_keeper.fence_previous_run()
        through_outages(self.lease_keeper.recover_orphans, "recovering dead masters' jobs")
        # Counted now, before any job waits on the loop: later counts are read by a thread,
        # and the first snapshot would otherwise count on the loop (140 ms with a million queued).
        through_outages(lambda: self.reporter.counts.store(self.store.jobs.counts()), "counting jobs")
        self.lease.renewed(self.clock())
        self.lease.start(self.lease_keeper.kill_workers_now)
        self.control.start()
        self.handoff.desk.open()  # also removes what a killed master left: its workers' sockets, its offer
        self.signals.install()
        for name in self.config.daemons_here():
            self.create_pool(name, self.config.daemons[name])
        self.daemons.sync(self.config, self.pools)  # operators' start/stop/scale outlive the master
        for pool in self.pools.values():
            pool.maintain()
        self.observers.start(self)

    def _shutdown(self) -> None:
        guarded = self.store_link.guarded
        self.handoff.withdraw_offer()
        self.handoff.desk.read_everything()  # hand-offs sent before the offer was withdrawn go back to the queue:
        guarded(self.handoff.take_handed)  # a stopping master refuses them
        guarded(self.endings.flush)
        guarded(self.endings.settle_exits)
        for pool in self.pools.values():
            if not self.lease_lost:
                self.dispatcher.return_backlog(pool)  # nothing if the store is down: recovered as orphans
            pool.stop_all(kill=True)
        deadline = self.clock() + 10
        while any(pool.live_workers() for pool in self.pools.values()) and self.clock() < deadline:
            for pool in self.pools.values():
                exits = pool.reap()
                self.handoff.close_channels(exits)
                guarded(lambda: self.endings.handle_exits(pool, exits))
                pool.check_timeouts()
            time.sleep(0.05)
        guarded(self.handoff.take_handed)  # what submits sent to the workers meanwhile: back to the queue
        self.observers.stopped(self)
        self.control.stop()
        self.handoff.desk.close()
        self.signals.uninstall()
        self.activity.stop()
        self.lease.stop()
        self.store_health.stop()
        if not self.store_health.available:
            log.warning("the store is unavailable: what this master could not write is left for recovery")
        else:
            try:
                self.store.masters.mark_stopped(self.id)
            except Exception:
                log.exception("could not mark master %s stopped in the store", self.id)
        self.wal_checkpoints.stop()
        self.store.dispose()
        self.wake_pipe.close()
        self.loop.close()
        log.info("master %s stopped", self.id)

    # -- what the concerns share ------------------------------------------

    def create_pool(self, name: str, settings: DaemonConfig) -> Pool:
        spec = WorkerSpec(config=self.config, daemon=name, owner=self.id, schedule=self.schedule)
        pool = Pool(name, settings, spec, self.launcher, self.clock)
        self.pools[name] = pool
        return pool

    def pool(self, daemon: str) -> Pool:
        try:
            return self.pools[daemon]
        except KeyError:
            raise UnknownDaemon(f"unknown daemon {daemon!r} (known daemons: {', '.join(sorted(self.pools))})") from None

    def limits(self, daemon: str, job: Job) -> Limits:
        """The limits in force for ``job`` of ``daemon``: its own, else its task's, else the daemon's."""
        settings = self.config.daemons.get(daemon) or self.pools[daemon].settings
        return Limits.for_job(job, settings, self.inventory.get(daemon, {}).get(job.task))

    def status(self, *, counts_max_age: float = 0.0) -> dict[str, Any]:
        """This master's status; job counts may be up to ``counts_max_age`` seconds old (``status``)."""
        return self.reporter.status(counts_max_age=counts_max_age)

    def reload(self) -> dict[str, Any]:
        """Re-read the config; apply it only if all of it is valid, without dropping jobs (``operations``)."""
        return self.operations.reload()

    def begin_drain(self, reason: str) -> None:
        """Stop claiming; let running jobs finish up to the drain timeout (``drain``)."""
        self.drain.begin(reason)
