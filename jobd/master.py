"""The master: one supervising process per host.

Its loop is poll → read worker messages → reap → check timeouts → serve
control requests → act on signals → tick (claim due jobs, heartbeat,
recover orphans, flush progress). It never runs task code: tasks run in
worker pools, and the master only learns their names (``jobd.inventory``).
"""

from __future__ import annotations

import datetime
import heapq
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Collection, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import __version__, defaults
from .activity import shared_activity
from .activity.recorder import ActivityRecorder
from .config import JobdConfig, load_config, load_schedule
from .control.protocol import Request
from .control.server import ControlServer, Inbox
from .daemons.control import DaemonControls
from .errors import ExitCode, JobdError, UnknownDaemon
from .inventory import Inventory, inventory_in_subprocess
from .job import Job
from .lease_guard import FENCED_REASON, LeaseGuard
from .concurrency_caps import ConcurrencyCaps
from .observability.job_logs import JobLogCapture
from .observability.observers import Observers
from .outcome_writer import write_outcomes
from .outcomes import Limits, log_outcome, plan_outcome, record_failure
from .readiness import Readiness
from .signals import SignalReceiver, WakePipe
from .states import JobState
from .store import Store, open_store
from .store.checkpoints import WalCheckpointer
from .store.errors import describe
from .store.health import StoreHealth, store_probe
from .store.masters import MasterRecord
from .store.retry import retry_outages
from .throttle import Throttle
from .ticker import Ticker
from .token_waits import TokenWaits
from .handoff.desk import HandoffDesk
from .workers import fence
from .workers import protocol
from .workers.pool import Assignment, Pool, Worker, WorkerExit
from .workers.states import WorkerState
from .workers.processes import ProcessLauncher
from .workers.worker import WorkerSpec

log = logging.getLogger("jobd.master")

ReadyCallback = Callable[[str | None], None]  # None: ready; a string: why it could not start


REAP_INTERVAL_SECONDS = 0.5  # workers are reaped when their sentinel fires, and at least this often


def default_prefetch(workers: int, depth: int = 1) -> int:
    """Jobs claimed ahead of free workers: enough that a claim serves a burst (two rounds of
    every worker's pipeline for short jobs), few enough that other masters are not starved."""
    return max(8, 4 * workers, 2 * depth * workers) if workers else 0


class Master:
    def __init__(
        self,
        config: JobdConfig,
        inventory: Inventory,
        *,
        launcher: ProcessLauncher | None = None,
        clock: Callable[[], float] = time.monotonic,
        job_logs: JobLogCapture | None = None,
    ) -> None:
        self.config = config
        self.inventory = inventory
        self.launcher = launcher or ProcessLauncher()
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store: Store = open_store(config.store, checkpoint_on_commit=False)  # no fsyncs inside a claim
        self.wal_checkpoints = WalCheckpointer(self.store.engine, defaults.WAL_CHECKPOINT_INTERVAL_SECONDS)
        self.pools: dict[str, Pool] = {}
        self.daemons = DaemonControls(self.store, clock)
        self.wake_pipe = WakePipe()
        self.signals = SignalReceiver(self.wake_pipe)
        self.inbox = Inbox(self.wake_pipe.wake)
        self.control = ControlServer(config.socket, self.inbox)
        self.handoffs = HandoffDesk(config.socket, self.id, enabled=config.handoff, clock=clock)  # jobd.handoff
        self.woken: set[str] = set()  # daemons a submit announced a job for (see _claim_woken)
        self.token_waits = TokenWaits()  # rate-limited daemons: when their next token is due (see _dispatch)
        self.draining = False
        self.drain_started_at: float | None = None
        self.finished = False
        self.started_at = time.time()
        self.claim_requested = True
        self.jobs_finished = 0
        self._poll = Throttle(config.poll_interval, clock)
        self._reap = Throttle(REAP_INTERVAL_SECONDS, clock)
        self._readiness = Readiness()
        self._ready: set[int] = set()
        self._sentinels: set[int] = set()
        self._heartbeat = Throttle(config.heartbeat_interval, clock)
        self._progress_flush = Throttle(2.0, clock)
        self._prune = Throttle(config.prune_interval, clock)
        self._last_beat = clock()
        # Finished attempts wait a few milliseconds to be written together: their
        # workers already run the next job, and one commit serves the burst.
        self._pending_outcomes: list[tuple[Pool, Assignment, protocol.JobFinished]] = []
        self._outcomes_since = 0.0
        self._lost_exits: list[tuple[Pool, WorkerExit]] = []  # exited workers whose job is not yet recorded
        self.store_health = StoreHealth(store_probe(self.store.engine), clock=clock)  # see _store_guarded
        self._reconnected = False  # the store was down, a probe reached it and a heartbeat went through
        self.lease = LeaseGuard(config.heartbeat_lease, clock)  # see _check_lease
        self._counts: tuple[float, dict[str, dict[str, int]]] | None = None
        self._schedule_rows: list[dict[str, Any]] = []  # the last read, shown while the store is down
        self._store_warned_at = float("-inf")
        self.lease_lost = False
        self.ticker = Ticker(self.store, load_schedule(config))
        self.observers = Observers(config, job_logs=job_logs, clock=clock)  # systemd, metrics, job logs, alerts
        self._operations: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda _args: {"pong": True, "master": self.id},
            "status": lambda _args: self.status(),
            "wake": self._op_wake,
            "stop": self._op_stop,
            "reload": lambda _args: self.reload(),
            "schedules": lambda _args: self.ticker.describe(),
            "activity": lambda _args: self.activity.view(),
            "cached_result": lambda args: self.activity.local.get_result(str(args.get("key", ""))),
            "start_daemons": self._claiming_after(self.daemons.start),
            "stop_daemons": self.daemons.stop,
            "restart_daemons": self._claiming_after(self.daemons.restart),
            "scale_daemon": self._claiming_after(self.daemons.scale),
            "daemon_status": self._op_daemon_status,
        }
        self.activity = ActivityRecorder(self.id, shared_activity(config))

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
        try:
            while not self.finished:
                self._step()
        finally:
            self._shutdown()
        return int(ExitCode.LEASE_LOST) if self.lease_lost else 0

    def _start(self) -> None:
        def through_outages(step: Callable[[], Any], what: str) -> Any:
            return retry_outages(step, what=what, within=defaults.START_STORE_WAIT_SECONDS)

        through_outages(self.store.initialise, "initialising the store")
        self.wal_checkpoints.start()
        through_outages(lambda: self.store.masters.register(
            self.id, pid=os.getpid(), version=__version__, daemons=sorted(self.config.daemons),
            control_socket=str(self.config.socket),
        ), "registering this master")
        self._fence_previous_run()
        through_outages(self._recover_orphans, "recovering dead masters' jobs")
        self.lease.renewed(self.clock())
        self.lease.start(self._kill_workers_now)
        self.control.start()
        self.handoffs.open()
        self.signals.install()
        for name in self.config.daemons_here():
            self._create_pool(name, self.config.daemons[name])
        self.daemons.sync(self.config, self.pools)  # operators' start/stop/scale outlive the master
        for pool in self.pools.values():
            pool.maintain()
        self.observers.start(self)

    def _fence_previous_run(self) -> None:
        """No process of the previous run on this socket may still run when its jobs are recovered (``fence.py``).

        Its jobs that no worker began (prefetched, waiting in a pipe, handed
        over by a submit) get their attempt back: it was charged for a run
        that never happened.
        """
        host_fence = fence.HostFence(self.config.socket, self.id)
        fenced = host_fence.secure()
        if fenced.master_alive:
            raise JobdError(f"another master ({fenced.master_id}) runs with the control socket {self.config.socket}")
        if fenced.survivors:
            raise JobdError(
                f"processes of the previous run on this host did not end after SIGKILL (pids {list(fenced.survivors)[:20]}); "
                "its jobs cannot be recovered safely: not starting"
            )
        if fenced.killed:
            log.warning("killed %s process(es) the previous run (%s) left on this host", fenced.killed, fenced.master_id)
        retry_outages(lambda: self._refund_unstarted(fenced), what="refunding the previous run's unstarted jobs",
                      within=defaults.START_STORE_WAIT_SECONDS)
        host_fence.own()
        self.launcher.fence = host_fence

    def _refund_unstarted(self, fenced: fence.Fenced) -> None:
        """Return a dead master's running jobs that none of its workers began, with their attempt given back."""
        if fenced.master_id is None:
            return
        owned = self.store.jobs.owned_running(fenced.master_id, started_before=time.time() + 3600)
        held = [(job.id, job.attempts) for job in self.store.jobs.handed(owned, fenced.master_id)]
        never_began = fence.unstarted(held, fenced.started)
        if never_began and self.store.jobs.requeue(never_began, fenced.master_id, refund_attempt=True):
            log.info("returned %s job(s) of master %s that no worker began, attempt refunded", len(never_began), fenced.master_id)

    def _create_pool(self, name: str, settings: Any) -> Pool:
        spec = WorkerSpec(config=self.config, daemon=name, owner=self.id)
        pool = Pool(name, settings, spec, self.launcher, self.clock)
        self.pools[name] = pool
        return pool

    def _shutdown(self) -> None:
        self._withdraw_offer()
        self.handoffs.read_everything()  # hand-offs sent before the offer was withdrawn go back to the queue:
        self._store_guarded(self._take_handed)  # a stopping master refuses them
        self._store_guarded(self._flush_outcomes)
        self._store_guarded(self._settle_exits)
        for pool in self.pools.values():
            if not self.lease_lost:
                self._return_backlog(pool)  # nothing if the store is down: recovered as orphans
            pool.stop_all(kill=True)
        deadline = self.clock() + 10
        while any(pool.live_workers() for pool in self.pools.values()) and self.clock() < deadline:
            for pool in self.pools.values():
                exits = pool.reap()
                self._close_channels(exits)
                self._store_guarded(lambda: self._handle_exits(pool, exits))
                pool.check_timeouts()
            time.sleep(0.05)
        self._store_guarded(self._take_handed)  # what submits sent to the workers meanwhile: back to the queue
        self.observers.stopped(self)
        self.control.stop()
        self.handoffs.close()
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
        self._readiness.close()
        log.info("master %s stopped", self.id)

    # -- the loop ---------------------------------------------------------

    def _step(self) -> None:
        if self._wait(self._wait_timeout()):
            self._claim_woken()  # only a submit's wake-up arrived: its job first, the rest of the turn after
        self._act_on_signals()
        self._store_guarded(self._read_messages)
        self._check_lease()  # before the reap: workers the lease guard killed exit for that reason
        reap = self._reap.ready() or not self._sentinels.isdisjoint(self._ready)
        for pool in list(self.pools.values()):
            exits = pool.reap() if reap else []
            self._close_channels(exits)
            self._lost_exits.extend((pool, exit) for exit in exits)
            if exits and not self.draining and not self.lease.fenced:
                pool.maintain()  # replacing workers does not wait for the store (a fenced master starts none)
            pool.check_timeouts()
        self._store_guarded(self._settle_exits)
        self._serve_requests()
        self._store_guarded(self._tick)
        self._check_lease()
        if self.draining and not self.store_health.available:
            self._continue_drain()  # a stop never waits for the store: what it cannot write is recovered later

    def _store_guarded(self, step: Callable[[], None]) -> None:
        """Run a step that talks to the store; if the store is down, skip it and go on.

        Workers keep running their jobs meanwhile; what could not be written
        stays pending (finished attempts, exited workers) and is written once
        the store answers again. While the store is down the loop does not
        call it at all (``StoreHealth`` probes it in a thread); once a probe
        answers, a heartbeat is the first write (``_reconnect``).
        """
        if not self.store_health.available and not self._reconnect():
            return
        try:
            step()
        except sa.exc.DBAPIError as error:
            self._store_failed(error)
            return
        if not self.store_health.available:
            ended = self.store_health.succeeded()  # the heartbeat and this step both went through: it is back
            if ended is not None:
                self._reconnected = False
                log.warning("the store is back after %.1fs (%s failed attempt(s); last error: %s)",
                            self.store_health.last_outage_seconds or 0.0, ended.failures, ended.error)

    def _store_failed(self, error: sa.exc.DBAPIError) -> None:
        self.observers.store_error("loop")
        self.wal_checkpoints.reclaim()  # SQLite on a full disk: the log's own space must come back first
        self._reconnected = False
        started = self.store_health.failed(error)
        now = self.clock()
        if now - self._store_warned_at > 30:  # an outage that comes and goes is not logged on every turn
            self._store_warned_at = now
            if started:
                log.error("the store is unavailable (%s); retrying every %.1fs, workers keep running",
                          describe(error), self.store_health.retry_interval)
            else:
                log.error("the store is still unavailable (%s)", describe(error))

    def _reconnect(self) -> bool:
        """The store was down and a probe reached it: renew the lease first, then carry on. True if it answered."""
        if not self.store_health.may_try():
            return False
        if self._reconnected:
            return not self.lease_lost  # this turn's heartbeat went through already
        self.store.dispose()  # connections that lived through the outage may be dead: fresh ones (the engines stay usable)
        try:
            alive = self._beat()
        except sa.exc.DBAPIError as error:
            self._store_failed(error)
            return False
        self._reconnected = True
        self.claim_requested = True
        return alive

    def _check_lease(self) -> None:
        """Stop every worker before this master's lease can have run out, if it could not renew it (``lease_guard``)."""
        if self.lease_lost or not self.lease.must_fence(self.clock()):
            return
        log.critical("master %s could not renew the lease for %.1fs (lease %.1fs): its workers are killed and it "
                     "starts no job until it renews", self.id, self.clock() - self.lease.renewed_at, self.lease.lease)
        self._fence(FENCED_REASON)

    def _kill_workers_now(self) -> None:
        """SIGKILL every live worker (called by the lease guard's thread: signals only, no bookkeeping)."""
        for pool in list(self.pools.values()):
            for worker in list(pool.workers):
                if worker.state is not WorkerState.EXITED:
                    self.launcher.kill(worker.pid)

    def _fence(self, reason: str) -> None:
        """Kill every worker now (SIGKILL) and start nothing: the jobs this master holds may be others' already."""
        self.lease.fence(self.clock())
        self._withdraw_offer()
        for pool in self.pools.values():
            pool.backlog.clear()  # still ours in the store: recovered as orphans, or adopted again after a renewal
            for worker in pool.live_workers():
                pool.kill(worker, reason)
                self.launcher.kill(worker.pid)

    def _wait_timeout(self) -> float:
        if (self.claim_requested or self.woken) and not self.draining and self.store_health.available:
            return 0.0
        if self._pending_outcomes:
            return max(0.0, defaults.OUTCOME_BATCH_SECONDS - (self.clock() - self._outcomes_since))
        timeout = min(self.config.poll_interval, 0.25)
        due = None if self.draining else self.ticker.seconds_until_due()
        token = None if self.draining else self.token_waits.seconds_until_next(time.time())
        return min([timeout, *(wait for wait in (due, token) if wait is not None)])

    def _wait(self, timeout: float) -> bool:
        """Sleep until a worker writes or exits, a wake-up, or ``timeout``; remember what is ready.

        True if a submit's wake-up is all that arrived.
        """
        watched: dict[int, Hashable] = {self.wake_pipe.read_fd: 0}
        sentinels = set()
        busy_channels = []  # workers' hand-off sockets they cannot read now: we do
        for pool in self.pools.values():
            for worker in pool.live_workers():
                if not worker.pipe_closed:
                    watched[worker.reader.fd] = worker.pid
                if worker.channel is not None and worker.state is not WorkerState.IDLE:
                    busy_channels.append(worker.channel)
                sentinel = worker.spawned.process.sentinel
                watched[sentinel] = worker.pid
                sentinels.add(sentinel)
        self._sentinels = sentinels
        handoff_fds = self.handoffs.fds(busy_channels)
        watched.update(handoff_fds)
        self._ready = self._readiness.wait(watched, timeout)
        if self.wake_pipe.read_fd in self._ready:
            self.wake_pipe.clear()
        self.woken |= self.handoffs.collect(self._ready)
        return bool(self._ready) and self._ready <= handoff_fds.keys()

    def _claim_woken(self) -> None:
        """Start the jobs submits handed us, then claim for the daemons submits woke us for."""
        if self.handoffs.pending:
            self._store_guarded(self._take_handed)
        if self.woken and not self.draining and self.store_health.available:
            woken, self.woken = self.woken, set()
            self._store_guarded(lambda: self._dispatch(woken))
            self.wal_checkpoints.nudge()  # now, rather than while the next submit commits

    # -- hand-offs (jobd/handoff/) ----------------------------------------

    def _take_handed(self) -> None:
        """Give workers the jobs submits claimed for this master (those the store confirms as ours to start)."""
        self._adopt(self.handoffs.take_handed(self.store.jobs, self._jobs_in_hand))

    def _took_handoff(self, pool: Pool, worker: Worker, took: protocol.HandedJob) -> None:
        """A worker started a job a submit handed it directly: it is that worker's running job."""
        job = self.handoffs.took(pool.daemon, took)
        pool.took_handoff(worker, job, self._limits(pool.daemon, job).timeout)
        self.activity.job_started(pool.daemon, job.id, job.task, job.attempts, worker.pid)
        self.wal_checkpoints.nudge()  # a submit just committed and its job runs: the next one is least likely now

    def _close_channels(self, exits: list[WorkerExit]) -> None:
        """Keep what submits sent to exited workers' sockets (taken like any hand-off), then close them."""
        for exit in exits:
            channel = exit.worker.channel
            if channel is not None:
                self.handoffs.channel_closed(channel)
                exit.worker.channel = None

    def _adopt(self, jobs: list[Job]) -> None:
        """Run these jobs, which this master owns and no worker has; those it cannot run go back to the queue."""
        refused: list[int] = []
        fed: dict[str, Pool] = {}
        for job in jobs:
            pool = self.pools.get(job.daemon)
            if pool is None or self.draining or self.lease_lost or not self.daemons.accepts_jobs(job.daemon):
                refused.append(job.id)
                continue
            pool.backlog.append(job)
            fed[pool.daemon] = pool
        for pool in fed.values():
            self._feed(pool)
        if refused:
            self.store.jobs.requeue(refused, self.id, refund_attempt=True)
            self.claim_requested = True

    def _adopt_lost_handoffs(self) -> None:
        """Adopt running jobs of ours we never heard of: a submit claimed them for us and died before saying so."""
        self._adopt(self.handoffs.lost(self.store.jobs, self._jobs_in_hand))

    def _jobs_in_hand(self) -> set[int]:
        """Every job this master holds in memory: prefetched, with a worker, or with an outcome to write."""
        held = {job.id for pool in self.pools.values() for job in pool.backlog}
        held.update(a.job.id for pool in self.pools.values() for worker in pool.workers for a in worker.assignments)
        held.update(assignment.job.id for _pool, assignment, _finished in self._pending_outcomes)
        for _pool, exit in self._lost_exits:
            held.update(a.job.id for a in (exit.assignment, *exit.unstarted) if a is not None)
        return held

    def _offer_handoffs(self) -> None:
        """Publish which daemons have room now, so submits hand their jobs straight to us (or withdraw it).

        The offer names every serving worker's socket: a submit's datagram to
        one that is busy after all is read here (``_wait``) and fed like a
        hand-off to the master, so the offer need not change as each job starts.
        """
        stopping = self.draining or self.lease_lost
        pools = [pool for pool in self.pools.values() if not stopping and self._takes_handoffs(pool)]
        self.handoffs.publish({pool.daemon: tuple(filter(None, (w.offered_socket() for w in pool.workers))) for pool in pools})

    def _takes_handoffs(self, pool: Pool) -> bool:
        settings = pool.settings
        if pool.backlog or settings.concurrency or settings.task_concurrency or settings.rate_limits().active or not self.daemons.accepts_jobs(pool.daemon):
            return False  # waiting jobs go first; caps and rate limits are counted under the claim's lock
        depth = pool.depth()
        return any(pool.free_slots(worker, depth) > 0 for worker in pool.workers)

    def _withdraw_offer(self) -> None:
        self.handoffs.withdraw()

    def _act_on_signals(self) -> None:
        for signum in self.signals.take():
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self.draining:
                    log.warning("second stop signal: stopping now; unfinished jobs go back to the queue")
                    self._end_drain_now()
                else:
                    self.begin_drain(f"received {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP:
                try:
                    self.reload()
                except JobdError as error:
                    log.error("reload refused; keeping the running config: %s", error)

    def _read_messages(self) -> None:
        """Read what every ready worker wrote (all of it, in one read each); hand out freed slots."""
        ended: list[tuple[Pool, Assignment, protocol.JobFinished]] = []
        for pool in self.pools.values():
            freed = False
            for worker in pool.live_workers():
                if worker.pipe_closed or worker.reader.fd not in self._ready:
                    continue
                for message in self._messages_from(pool, worker):
                    finished = self._on_worker_message(pool, worker, message)
                    if finished is not None:
                        ended.append((pool, *finished))
                        freed = True
            if freed:
                self._feed(pool)  # workers with room get prefetched jobs before any store round trip
                self.claim_requested = True
        if self.handoffs.pending:
            self._take_handed()  # hand-offs a worker passed on, or that waited on a busy worker's socket
        if ended:
            if not self._pending_outcomes:
                self._outcomes_since = self.clock()
            self._pending_outcomes.extend(ended)
        if self._pending_outcomes and (
            self.draining
            or len(self._pending_outcomes) >= defaults.OUTCOME_BATCH_MAX
            or self.clock() - self._outcomes_since >= defaults.OUTCOME_BATCH_SECONDS
        ):
            self._flush_outcomes()

    def _flush_outcomes(self) -> None:
        """Write the finished attempts gathered so far (a group commit: one transaction)."""
        if self._pending_outcomes:
            ended, self._pending_outcomes = self._pending_outcomes, []
            try:
                self._record_finished(ended)
            except sa.exc.DBAPIError:
                self._pending_outcomes = ended + self._pending_outcomes  # written on the next try
                raise

    @staticmethod
    def _messages_from(pool: Pool, worker: Worker) -> list[protocol.Message]:
        """The messages in what ``worker`` wrote since the last read (its pipe is readable)."""
        try:
            frames = worker.reader.read()
        except (EOFError, OSError):
            worker.pipe_closed = True  # its exit is noticed through its sentinel
            return []
        messages: list[protocol.Message] = []
        for frame in frames:
            try:
                messages.extend(protocol.decode(frame))
            except ValueError as error:
                log.error("daemon %s: worker %s sent an unreadable message (%s); stopping it", pool.daemon, worker.pid, error)
                pool.kill(worker, f"unreadable message from the worker: {error}")
                break
        return messages

    def _on_worker_message(
        self, pool: Pool, worker: Worker, message: protocol.Message
    ) -> tuple[Assignment, protocol.JobFinished] | None:
        if isinstance(message, protocol.WorkerReady):
            self.claim_requested = True
        if isinstance(message, protocol.HandedJob):
            self._took_handoff(pool, worker, message)
            return None
        if isinstance(message, protocol.PassedHandoff):
            self.handoffs.passed(message)
            return None
        if isinstance(message, protocol.ProgressReport) and worker.assignment is not None:
            running = worker.assignment.job
            self.activity.progress(pool.daemon, running.id, running.task, running.attempts, worker.pid, message.progress)
        return pool.on_message(worker, message)

    def _record_finished(self, ended: list[tuple[Pool, Assignment, protocol.JobFinished]]) -> None:
        """Write a burst of finished attempts in one transaction, then tell the observers."""
        now = time.time()
        planned = []
        for pool, assignment, finished in ended:
            job = assignment.job
            if assignment.cancel_sent_at is not None and finished.outcome != "succeeded":
                finished = protocol.JobFinished(job.id, job.attempts, "cancelled", error="cancelled by an operator")
            planned.append((pool, job, finished, plan_outcome(job, finished, self._limits(pool.daemon, job), now)))
        # Raises only for an outage (nothing below ran); an outcome the store refused comes back dead.
        written = write_outcomes(self.store.jobs, self.id, [outcome for *_, outcome in planned], now)
        for (pool, job, finished, _planned), outcome in zip(planned, written):
            state = str(outcome.state)
            log_outcome(job, outcome, now)
            error, traceback = outcome.values.get("error"), outcome.values.get("traceback")  # as capped and written
            self.observers.job_ended(self, job, state, finished.duration, error, traceback)
            self.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, state, error)
            if state == "succeeded":
                info = self.inventory.get(pool.daemon, {}).get(job.task)
                self.activity.remember_result(job, finished.result, info.options.cache_ttl if info else None)
            self.jobs_finished += 1

    def _settle_exits(self) -> None:
        """Record what exited workers were running (kept pending while the store is down)."""
        while self._lost_exits:
            pool, exit = self._lost_exits[0]
            self._handle_exits(pool, [exit])
            self._lost_exits.pop(0)

    def _handle_exits(self, pool: Pool, exits: list[WorkerExit]) -> None:
        for exit in exits:
            if exit.unstarted:  # handed to the worker, never begun: back to the queue as they were
                self.store.jobs.requeue([held.job.id for held in exit.unstarted], self.id, refund_attempt=True)
                self.claim_requested = True
            assignment = exit.assignment
            if assignment is None:
                continue
            job = assignment.job
            drained = self.draining or self.daemons.stopping(pool.daemon)
            if (drained and exit.reason in ("drain timeout", "master stopping")) or exit.reason == FENCED_REASON:
                self.store.jobs.requeue([job.id], self.id, refund_attempt=True)
                log.info("job %s returned to the queue (drain)", job.id)
            elif assignment.cancel_sent_at is not None:
                self.store.jobs.cancelled(job.id, job.attempts, self.id, error=exit.reason)
                self.observers.job_ended(self, job, "cancelled", self.clock() - assignment.started_at)
                self.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, "cancelled", exit.reason)
            else:
                state = record_failure(self.store.jobs, self.id, job, exit.reason, None, self._limits(pool.daemon, job), time.time())
                self.observers.job_ended(self, job, state, self.clock() - assignment.started_at, exit.reason)
                self.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, state, exit.reason)
        self.observers.workers_exited(self, pool, exits)

    def _serve_requests(self) -> None:
        for request, future in self.inbox.drain():
            self._answer(request, future)

    def _answer(self, request: Request, future: Future[Any]) -> None:
        operation = self._operations.get(request.op)
        try:
            if operation is None:
                known = ", ".join(sorted(self._operations))
                raise JobdError(f"unknown operation {request.op!r} (known: {known})")
            future.set_result(operation(request.args))
        except Exception as error:
            future.set_exception(error)

    # -- periodic work ----------------------------------------------------

    def _tick(self) -> None:
        self._claim_woken()  # a submitter is waiting for its job to start: before the periodic chores below
        self.observers.tick(self)
        if self._heartbeat.ready():
            self._beat()
        if self.activity.due():
            self._publish_activity()
        if self.draining:
            self._continue_drain()
            return
        self.daemons.tick()
        for pool in self.pools.values():
            pool.maintain()
        if self._poll.ready():
            self.claim_requested = True
            self._apply_cancel_requests()
            self.ticker.refresh_pauses()
        if self.ticker.run_due() or self.token_waits.take_due(time.time()):
            self.claim_requested = True
        if self.claim_requested:
            self.claim_requested = False
            self._dispatch()
        if self.handoffs.adopt_due():
            self._adopt_lost_handoffs()
        if self.handoffs.offer_due():
            self._offer_handoffs()
        if self._progress_flush.ready():
            self._flush_progress()

    def _dispatch(self, daemons: Collection[str] | None = None) -> None:
        """Claim due jobs for every pool (or the pools of ``daemons``): its idle workers plus a prefetch.

        Prefetched jobs wait in the pool's backlog, already claimed (running,
        owned by this master): a worker that finishes gets the next one at once,
        without waiting for a store round trip. They go back to the queue on a
        drain, a daemon stop or a cancel; after a crash they are recovered like
        any running job of a dead master.
        """
        for pool in self.pools.values():
            if daemons is not None and pool.daemon not in daemons:
                continue
            if not self.daemons.accepts_jobs(pool.daemon):
                self._return_backlog(pool)
                continue
            self._feed(pool)
            settings = pool.settings
            caps = ConcurrencyCaps(settings.concurrency, settings.task_concurrency)
            rates = settings.rate_limits()
            depth = pool.depth()
            prefetch = 0 if caps.active or rates.active else (settings.prefetch if settings.prefetch is not None else default_prefetch(pool.size, depth))
            room = sum(pool.free_slots(worker, depth) for worker in pool.workers)
            if pool.size == 0 or (room == 0 and len(pool.backlog) > prefetch // 2):
                continue  # enough waiting: refill in batches, not one claim per finished job
            wanted = room + prefetch - len(pool.backlog)
            if wanted <= 0:
                continue
            if not self._lease_valid():
                return
            jobs = self.store.jobs.claim(pool.daemon, wanted, self.id, caps=caps, promote=daemons is None, rates=rates)
            self.token_waits.note(pool.daemon, self.store.jobs.next_token_at(pool.daemon) if rates.active else None)
            pool.backlog.extend(jobs)
            self._feed(pool)
            if len(jobs) == wanted:
                self.claim_requested = True  # there may be more waiting

    def _feed(self, pool: Pool) -> None:
        """Give workers with room the pool's prefetched jobs, the least loaded worker first.

        Each worker gets its share in one write (see ``Pool.depth``: one job
        at a time unless the pool's jobs are short).
        """
        if not pool.backlog or self.lease_lost or not self.lease.may_start(self.clock()):
            return  # a master that may have lost its lease starts nothing it holds
        depth = pool.depth()
        slots = {index: pool.free_slots(w, depth) for index, w in enumerate(pool.workers)}  # read once per feed
        room = [(len(w.assignments), index, w) for index, w in enumerate(pool.workers) if slots[index] > 0]
        heapq.heapify(room)
        handed: dict[int, list[tuple[Job, float]]] = {}
        while room and pool.backlog:
            load, index, worker = heapq.heappop(room)
            job = pool.backlog.popleft()
            if not self._runnable(pool, job):
                heapq.heappush(room, (load, index, worker))
                continue
            handed.setdefault(index, []).append((job, self._limits(pool.daemon, job).timeout))
            slots[index] -= 1
            if slots[index] > 0 and pool.pipeline.is_short(job.task):
                heapq.heappush(room, (load + 1, index, worker))  # more may wait behind this one
        for index, jobs in handed.items():
            worker = pool.workers[index]
            if not pool.assign(worker, jobs):
                pool.backlog.extendleft(job for job, _timeout in reversed(jobs))  # for the next worker with room
                continue
            for job, _timeout in jobs:
                self.activity.job_started(pool.daemon, job.id, job.task, job.attempts, worker.pid)

    def _return_backlog(self, pool: Pool) -> None:
        """Hand prefetched, unstarted jobs back to the queue (their attempt refunded)."""
        if not pool.backlog:
            return
        jobs = list(pool.backlog)
        pool.backlog.clear()
        if not self.store_health.available:
            log.warning("the store is unavailable: %s prefetched job(s) are recovered as orphans", len(jobs))
            return
        try:
            self.store.jobs.requeue([job.id for job in jobs], self.id, refund_attempt=True)
        except sa.exc.DBAPIError as error:
            self._store_failed(error)
            log.warning("could not return %s prefetched job(s); they are recovered as orphans", len(jobs))
        except Exception:
            log.exception("could not return %s prefetched job(s); they are recovered as orphans", len(jobs))

    def _runnable(self, pool: Pool, job: Job) -> bool:
        """Whether a claimed job can run at all; if not, it is dead now, with the reason."""
        problem = job.unrunnable  # a row jobd cannot use as stored (store/row_decoding.py)
        if problem is None and job.task not in self.inventory.get(pool.daemon, {}):
            known = ", ".join(sorted(self.inventory.get(pool.daemon, {}))) or "none"
            problem = f"daemon {pool.daemon!r} has no task {job.task!r} (its tasks: {known})"
        if problem is None:
            allowed = self._limits(pool.daemon, job).max_attempts
            if job.attempts <= allowed:
                return True
            # Recovered after its master died during its last allowed attempt: that
            # attempt counts (as after a worker's crash); this claim's charge does not.
            problem = f"its last attempt ({allowed} of {allowed}) was interrupted: its master died (or lost its lease) while it ran"
            log.error("job %s is dead: %s", job.id, problem)
            self.store.jobs.out_of_attempts(job.id, job.attempts, self.id, problem)
            self.observers.job_ended(self, job, "dead", None, problem)
            return False
        log.error("job %s cannot run: %s", job.id, problem)
        self.store.jobs.mark_dead_unrunnable(job.id, job.attempts, self.id, problem)
        self.observers.job_ended(self, job, "dead", None, problem)
        return False

    def _limits(self, daemon: str, job: Job) -> Limits:
        settings = self.config.daemons.get(daemon) or self.pools[daemon].settings
        return Limits.for_job(job, settings, self.inventory.get(daemon, {}).get(job.task))

    def _beat(self) -> bool:
        """Renew this master's lease; on losing it, stop at once. True if the lease holds."""
        state = "draining" if self.draining else "running"
        sent_at = self.clock()  # the store records a time no earlier than this: the lease runs from here
        alive = self.store.masters.heartbeat(self.id, state=state, daemons=sorted(self.pools))  # an outage: the caller's guard
        if not alive:
            self._lose_lease()
            return False
        self._last_beat = sent_at
        if self.lease.renewed(sent_at):
            log.warning("master %s renewed its lease: nobody took its jobs over; running jobs again", self.id)
            self.claim_requested = True
        self._recover_orphans()
        if self._prune.ready():
            self._prune_finished()
        return True

    def _lease_valid(self) -> bool:
        """Whether this master may claim: its lease is fresh, or a heartbeat now renews it.

        A master that was frozen (SIGSTOP, a VM pause) past its lease must not
        claim before it learns whether another master declared it dead.
        """
        if self.lease_lost:
            return False
        if self.clock() - self._last_beat < self.config.heartbeat_lease * 0.5:
            return True
        return self._beat()

    def _lose_lease(self) -> None:
        """Another master declared us dead and took our jobs: stop now, own nothing, exit."""
        if self.lease_lost:
            return
        log.critical("master %s lost its lease (declared dead by another master); its jobs belong to others now: exiting", self.id)
        self._fence("lease lost: declared dead by another master")
        self.lease_lost = True
        self.draining = True
        self.drain_started_at = self.clock()
        self.finished = True  # _shutdown kills the workers; their late results are refused by the store guards

    def _recover_orphans(self) -> None:
        lease = self.config.heartbeat_lease
        for record in self.store.masters.silent(lease=lease):
            if record.id == self.id or (fenced := self._fenced(record)) is None:
                continue
            if self.store.masters.declare_dead(record, lease=lease):
                log.warning("master %s on %s is dead (no heartbeat for %.0fs)", record.id, record.host, time.time() - record.heartbeat_at)
                self._refund_unstarted(fenced)
        recovered = self.store.jobs.requeue_orphans(self.store.masters.live_ids_query())
        if recovered:
            log.warning("re-queued %s job(s) of dead master(s): %s", len(recovered), recovered[:20])
            self.claim_requested = True

    @staticmethod
    def _fenced(record: MasterRecord) -> fence.Fenced | None:
        """Kill what a silent master of this host still runs (``fence.py``); None if some process survived."""
        if record.host != socket.gethostname() or not record.control_socket:
            return fence.Fenced(None)  # another host's: its master stops its own workers before its lease ends
        return fence.fence_other(Path(record.control_socket), record.id)

    def _prune_finished(self) -> None:
        """Delete old finished jobs in small batches; one master at a time holds the lease."""
        if not self.store.leases.acquire("prune", self.id, ttl=self.config.prune_interval):
            return
        older_than = time.time() - self.config.retention
        deleted = 0
        for _ in range(20):  # bounded per round; the next round continues
            pruned = self.store.jobs.prune_finished(older_than=older_than, batch=500)
            self.store.job_logs.delete_for(pruned)  # a pruned job's own log lines go with it
            deleted += len(pruned)
            if len(pruned) < 500:
                break
        self.store.masters.prune(older_than=older_than)
        if deleted:
            log.info("pruned %s finished job(s) older than %s", deleted, self.config.retention)

    def _apply_cancel_requests(self) -> None:
        for job_id in self.store.jobs.cancel_requests(self.id):
            for pool in self.pools.values():
                waiting = [job for job in pool.backlog if job.id == job_id]
                if waiting:
                    pool.backlog.remove(waiting[0])
                    self.store.jobs.cancelled(job_id, waiting[0].attempts, self.id, error="cancelled by an operator")
                pool.cancel(job_id)

    def _flush_progress(self) -> None:
        progress = {
            worker.assignment.job.id: worker.current_progress
            for pool in self.pools.values()
            for worker in pool.busy_workers()
            if worker.assignment and worker.current_progress
        }
        try:
            self.store.jobs.save_progress(progress)
        except Exception:
            log.warning("could not persist progress", exc_info=True)
            self.observers.store_error("progress")

    def _publish_activity(self) -> None:
        try:
            snapshot = self.status(counts_max_age=defaults.SNAPSHOT_COUNTS_MAX_AGE_SECONDS)
        except Exception:
            log.debug("no status snapshot for live activity this time", exc_info=True)
            snapshot = None
        if snapshot is not None:
            self.activity.publish(snapshot)

    # -- draining ---------------------------------------------------------

    def begin_drain(self, reason: str) -> None:
        """Stop claiming; let running jobs finish up to the drain timeout."""
        if self.draining:
            return
        log.info("draining (%s): no new jobs; waiting for running ones", reason)
        self.observers.draining(reason)
        self.draining = True
        self._withdraw_offer()
        for pool in self.pools.values():
            for worker in pool.live_workers():
                worker.refuse_submits()  # a submit's job that reaches a worker now goes back to the queue
        self.drain_started_at = self.clock()
        if self.store_health.available:  # a stop never waits for a store known to be down
            try:  # say so at once: `jobd status` and other masters see "draining"
                self.store.masters.heartbeat(self.id, state="draining")
            except sa.exc.DBAPIError as error:
                self._store_failed(error)
                log.warning("could not record the drain in the store (%s)", describe(error))
        for pool in self.pools.values():
            self._return_backlog(pool)
            for worker in pool.live_workers():
                if worker.assignment is None:
                    pool.retire(worker)

    def _continue_drain(self) -> None:
        assert self.drain_started_at is not None
        elapsed = self.clock() - self.drain_started_at
        busy = False
        for pool in self.pools.values():
            timeout = self.config.drain_timeout_for(pool.daemon) if pool.daemon in self.config.daemons else self.config.drain_timeout
            for worker in pool.live_workers():
                if worker.assignment is not None and elapsed > timeout:
                    pool.kill(worker, "drain timeout", grace=defaults.DRAIN_KILL_GRACE_SECONDS)
                else:
                    pool.retire(worker)  # a busy one ends its running job first and starts none it holds
                busy = True
        if not busy:
            self.finished = True

    def _end_drain_now(self) -> None:
        for pool in self.pools.values():
            for worker in pool.live_workers():
                if worker.assignment is not None:
                    pool.kill(worker, "drain timeout", grace=defaults.DRAIN_KILL_GRACE_SECONDS)
                else:
                    pool.retire(worker)

    # -- operations -------------------------------------------------------

    def _op_wake(self, _args: dict[str, Any]) -> dict[str, Any]:
        self.claim_requested = True
        self._apply_cancel_requests()
        return {"woken": True}

    def _op_stop(self, _args: dict[str, Any]) -> dict[str, Any]:
        self.begin_drain("stop requested")
        return {"stopping": True, "pid": os.getpid()}

    def _claiming_after(self, operation: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """An operation after which the dispatcher looks for jobs at once (new workers, started pool)."""

        def run(args: dict[str, Any]) -> Any:
            result = operation(args)
            self.claim_requested = True
            return result

        return run

    def _op_daemon_status(self, args: dict[str, Any]) -> dict[str, Any]:
        """`jobd status DAEMON`: the daemon's status plus its queue and recent failures."""
        pool = self.pool(str(args.get("daemon")))
        counts = self.store.jobs.counts().get(pool.daemon, {})
        status = self.daemons.status(pool.daemon, {**pool.snapshot(), "counts": counts})
        master = {"running": True, **self.status()["master"]}
        ticks = [
            {"entry": row["name"], "next": datetime.datetime.fromtimestamp(row["next"][0]).strftime("%Y-%m-%d %H:%M:%S")}
            for row in self.ticker.describe()
            if row["daemon"] == pool.daemon and row["next"] and not row["paused"]
        ]
        return {"master": master, "daemon": {**status, **self.daemons.detail(pool.daemon), "next_ticks": ticks}}

    def reload(self) -> dict[str, Any]:
        """Re-read the config; apply it only if all of it is valid, without dropping jobs."""
        self.observers.reloading()
        try:
            return self._reload()
        finally:
            self.observers.reloaded(self, self.config)

    def _reload(self) -> dict[str, Any]:
        config = load_config(self.config.source)
        inventory = inventory_in_subprocess(config.source)
        if config.store != self.config.store or config.socket != self.config.socket:
            raise JobdError("store and socket cannot change on reload; restart the master")
        schedule = load_schedule(config)
        old = self.config
        self.config, self.inventory = config, inventory
        self.ticker.set_schedule(schedule)
        here = set(config.daemons_here())
        for name, settings in config.daemons.items():
            if name not in here:
                continue
            pool = self.pools.get(name)
            if pool is None:
                self._create_pool(name, settings).maintain()
                continue
            pool.settings = settings
            pool.size = settings.workers if settings.enabled else 0
            pool.spec = WorkerSpec(config=config, daemon=name, owner=self.id)
            if old.daemons.get(name) != settings or old.python_path != config.python_path:
                pool.replace_all()
        for name, pool in self.pools.items():
            if name not in here:
                pool.size = 0
        self.daemons.sync(config, self.pools)
        log.info("config reloaded from %s", config.source)
        self.claim_requested = True
        return {"reloaded": True, "daemons": sorted(config.daemons), "schedules": sorted(schedule)}

    def status(self, *, counts_max_age: float = 0.0) -> dict[str, Any]:
        """This master's status; job counts may be up to ``counts_max_age`` seconds old.

        Counting jobs scans the jobs table, so the live snapshot published
        every second reuses a count for a few seconds; `jobd status` asks fresh.
        """
        now = self.clock()
        if (self._counts is None or now - self._counts[0] > counts_max_age) and self.store_health.available:
            try:
                self._counts = (now, self.store.jobs.counts())
            except sa.exc.DBAPIError as error:  # answer from memory: the counts last read
                self._store_failed(error)
        counts = self._counts[1] if self._counts is not None else {}
        if self.store_health.available:
            try:
                self._schedule_rows = self.ticker.describe()
            except sa.exc.DBAPIError as error:
                self._store_failed(error)
        return {
            "store": self.store_health.to_dict(),
            "lease": self.lease.to_dict(now),
            "master": {
                "id": self.id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "version": __version__,
                "state": "draining" if self.draining else "running",
                "started_at": self.started_at,
                "uptime": round(time.time() - self.started_at, 1),
                "config": str(self.config.source),
                "jobs_finished": self.jobs_finished,
                "handoffs": self.handoffs.counted(),
            },
            "daemons": {
                name: self.daemons.status(name, {**pool.snapshot(), "counts": counts.get(name, {})})
                for name, pool in self.pools.items()
            },
            "schedules": self._schedule_rows,
        }

    def pool(self, daemon: str) -> Pool:
        try:
            return self.pools[daemon]
        except KeyError:
            raise UnknownDaemon(f"unknown daemon {daemon!r} (known daemons: {', '.join(sorted(self.pools))})") from None


__all__ = ["Master", "JobState"]
