"""One turn of the master's loop: wait, act on signals, read workers, reap, serve requests, tick.

The loop sleeps in one ``select`` on everything that can need it: the
workers' pipes and sentinels, the hand-off sockets of busy workers, the
submits' wake-up socket and the self-pipe that signals and control requests
write to. It never sleeps past the next due schedule or the next outcome
flush.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..errors import JobdError
from ..handoff.sockets import merge_woken
from ..readiness import Readiness
from ..throttle import Throttle
from ..workers import protocol
from ..workers.pool import Assignment, Pool, Worker
from .endings import Finished

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

REAP_INTERVAL_SECONDS = 0.5  # workers are reaped when their sentinel fires, and at least this often


class Loop:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.reap = Throttle(REAP_INTERVAL_SECONDS, master.clock)
        self.readiness = Readiness()
        self.ready: set[int] = set()  # the descriptors the last wait found ready
        self.sentinels: set[int] = set()  # the live workers' sentinels at the last wait

    def close(self) -> None:
        self.readiness.close()

    def turn(self) -> None:
        master = self.master
        guarded = master.store_link.guarded
        if self.wait(self.wait_timeout()) or master.handoff.urgent():
            master.handoff.claim_woken()  # only a submit's wake-up arrived, or one for an urgent job: its job first
        self.act_on_signals()
        guarded(self.read_messages)
        master.handoff.claim_if_urgent()  # reading (and writing) a burst of outcomes took a while
        master.lease_keeper.check()  # before the reap: workers the lease guard killed exit for that reason
        reap = self.reap.ready() or not self.sentinels.isdisjoint(self.ready)
        for pool in list(master.pools.values()):
            exits = pool.reap() if reap else []
            master.handoff.close_channels(exits)
            master.endings.exited(pool, exits)
            if exits and not master.draining and not master.lease.fenced:
                pool.maintain()  # replacing workers does not wait for the store (a fenced master starts none)
            pool.check_timeouts()
        guarded(master.endings.settle_exits)
        master.operations.serve()
        guarded(master.periodic.tick)
        master.lease_keeper.check()
        if master.draining and not master.store_health.available:
            master.drain.proceed()  # a stop never waits for the store: what it cannot write is recovered later

    def wait_timeout(self) -> float:
        master = self.master
        if (master.dispatcher.claim_requested or master.handoff.woken) and not master.draining and master.store_health.available:
            return 0.0
        flush = master.endings.seconds_to_flush()
        if flush is not None:
            return flush
        timeout = min(master.config.poll_interval, 0.25)
        due = None if master.draining else master.ticker.seconds_until_due()
        token = None if master.draining else master.dispatcher.seconds_until_token(time.time())
        return min([timeout, *(wait for wait in (due, token) if wait is not None)])

    def wait(self, timeout: float) -> bool:
        """Sleep until a worker writes or exits, a wake-up, or ``timeout``; remember what is ready.

        True if a submit's wake-up is all that arrived.
        """
        master = self.master
        desk = master.handoff.desk
        watched: dict[int, Hashable] = {master.wake_pipe.read_fd: 0}
        sentinels: set[int] = set()
        busy_channels = []  # workers' hand-off sockets they cannot read now: the desk does
        for pool in master.pools.values():
            for worker in pool.live_workers():
                watched.update(worker.watched())
                channel = worker.busy_channel()
                if channel is not None:
                    busy_channels.append(channel)
            sentinels |= pool.sentinels()
        self.sentinels = sentinels
        handoff_fds = desk.fds(busy_channels)
        watched.update(handoff_fds)
        self.ready = self.readiness.wait(watched, timeout)
        if master.wake_pipe.read_fd in self.ready:
            master.wake_pipe.clear()
        merge_woken(master.handoff.woken, desk.collect(self.ready))
        return bool(self.ready) and self.ready <= handoff_fds.keys()

    def act_on_signals(self) -> None:
        master = self.master
        for signum in master.signals.take():
            if signum in (signal.SIGTERM, signal.SIGINT):
                if master.draining:
                    log.warning("second stop signal: stopping now; unfinished jobs go back to the queue")
                    master.drain.end_now()
                else:
                    master.begin_drain(f"received {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP:
                try:
                    master.reload()
                except JobdError as error:
                    log.error("reload refused; keeping the running config: %s", error)

    def read_messages(self) -> None:
        """Read what every ready worker wrote (all of it, in one read each); hand out freed slots."""
        master = self.master
        ended: list[Finished] = []
        for pool in master.pools.values():
            freed = False
            for worker in pool.live_workers():
                if not worker.wrote(self.ready):
                    continue
                for message in pool.messages(worker):
                    finished = self._on_message(pool, worker, message)
                    if finished is not None:
                        ended.append((pool, *finished))
                        freed = True
            if freed:
                master.dispatcher.feed(pool)  # workers with room get prefetched jobs before any store round trip
                master.dispatcher.claim_soon()
        if master.handoff.desk.pending:
            master.handoff.take_handed()  # hand-offs a worker passed on, or that waited on a busy worker's socket
        master.endings.gather(ended)

    def _on_message(self, pool: Pool, worker: Worker, message: protocol.Message) -> tuple[Assignment, protocol.JobFinished] | None:
        master = self.master
        if isinstance(message, protocol.WorkerReady):
            master.dispatcher.claim_soon()
        if isinstance(message, protocol.HandedJob):
            master.handoff.took_handoff(pool, worker, message)
            return None
        if isinstance(message, protocol.PassedHandoff):
            master.handoff.desk.passed(message)
            return None
        if isinstance(message, protocol.ProgressReport) and worker.assignment is not None:
            running = worker.assignment.job
            master.activity.progress(pool.daemon, running.id, running.task, running.attempts, worker.pid, message.progress)
        return pool.on_message(worker, message)
