"""The master's lease: heartbeats, losing the lease, fencing, orphan recovery, pruning.

A master holds its jobs only while its heartbeat is fresh. Another master
that finds it silent past the lease declares it dead and re-queues its
jobs; so a master that cannot renew stops its own workers first
(``lease_guard``), and one that learns it was declared dead exits.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import defaults
from ..errors import JobdError
from ..lease_guard import FENCED_REASON
from ..store.masters import MasterRecord
from ..store.retry import retry_outages
from ..throttle import Throttle
from ..workers import fence as fencing

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

PRUNE_BATCH = 500
PRUNE_BATCHES_PER_ROUND = 20  # bounded per round; the next round continues


class LeaseKeeper:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.heartbeat = Throttle(master.config.heartbeat_interval, master.clock)
        self.prune = Throttle(master.config.prune_interval, master.clock)
        self.last_beat = master.clock()

    # -- starting ---------------------------------------------------------

    def fence_previous_run(self) -> None:
        """No process of the previous run on this socket may still run when its jobs are recovered (``fence.py``).

        Its jobs that no worker began (prefetched, waiting in a pipe, handed
        over by a submit) get their attempt back: it was charged for a run
        that never happened.
        """
        master = self.master
        host_fence = fencing.HostFence(master.config.socket, master.id)
        fenced = host_fence.secure()
        if fenced.master_alive:
            raise JobdError(f"another master ({fenced.master_id}) runs with the control socket {master.config.socket}")
        if fenced.survivors:
            raise JobdError(
                f"processes of the previous run on this host did not end after SIGKILL (pids {list(fenced.survivors)[:20]}); "
                "its jobs cannot be recovered safely: not starting"
            )
        if fenced.killed:
            log.warning("killed %s process(es) the previous run (%s) left on this host", fenced.killed, fenced.master_id)
        retry_outages(lambda: self.refund_unstarted(fenced), what="refunding the previous run's unstarted jobs",
                      within=defaults.START_STORE_WAIT_SECONDS)
        host_fence.own()
        master.launcher.fence = host_fence

    def refund_unstarted(self, fenced: fencing.Fenced) -> None:
        """Return a dead master's running jobs that none of its workers began, with their attempt given back."""
        if fenced.master_id is None:
            return
        jobs = self.master.store.jobs
        owned = jobs.owned_running(fenced.master_id, started_before=time.time() + 3600)
        held = [(job.id, job.attempts) for job in jobs.handed(owned, fenced.master_id)]
        never_began = fencing.unstarted(held, fenced.started)
        if never_began and jobs.requeue(never_began, fenced.master_id, refund_attempt=True):
            log.info("returned %s job(s) of master %s that no worker began, attempt refunded", len(never_began), fenced.master_id)

    # -- heartbeats -------------------------------------------------------

    def beat_if_due(self) -> None:
        if self.heartbeat.ready():
            self.beat()

    def beat(self) -> bool:
        """Renew this master's lease; on losing it, stop at once. True if the lease holds."""
        master = self.master
        state = "draining" if master.draining else "running"
        sent_at = master.clock()  # the store records a time no earlier than this: the lease runs from here
        alive = master.store.masters.heartbeat(master.id, state=state, daemons=sorted(master.pools))  # an outage: the caller's guard
        if not alive:
            self.lose()
            return False
        self.last_beat = sent_at
        if master.lease.renewed(sent_at):
            log.warning("master %s renewed its lease: nobody took its jobs over; running jobs again", master.id)
            self.hold_again()
            master.dispatcher.claim_soon()
        self.recover_orphans()
        if self.prune.ready():
            self.prune_finished()
        return True

    def valid(self) -> bool:
        """Whether this master may claim: its lease is fresh, or a heartbeat now renews it.

        A master that was frozen (SIGSTOP, a VM pause) past its lease must not
        claim before it learns whether another master declared it dead.
        """
        master = self.master
        if master.lease_lost:
            return False
        if master.clock() - self.last_beat < master.config.heartbeat_lease * 0.5:
            return True
        return self.beat()

    # -- losing it --------------------------------------------------------

    def check(self) -> None:
        """Stop every worker before this master's lease can have run out, if it could not renew it (``lease_guard``)."""
        master = self.master
        if master.lease_lost or not master.lease.must_fence(master.clock()):
            return
        log.critical("master %s could not renew the lease for %.1fs (lease %.1fs): its workers are killed and it "
                     "starts no job until it renews", master.id, master.clock() - master.lease.renewed_at, master.lease.lease)
        self.fence(FENCED_REASON)

    def kill_workers_now(self) -> None:
        """SIGKILL every live worker (called by the lease guard's thread: signals only, no bookkeeping)."""
        for pool in list(self.master.pools.values()):
            for worker in pool.live_workers():
                self.master.launcher.kill(worker.pid)

    def hold_again(self) -> None:
        """After a renewal, hold again the jobs the fence let go: still ours (running) in the store, held nowhere.

        Without this they would wait for this master's death to be recovered
        as orphans (the hand-off's periodic adoption finds them too, but only
        while the hand-off is switched on).
        """
        master = self.master
        ours = set(master.store.jobs.owned_running(master.id, started_before=time.time())) - master.handoff.jobs_in_hand()
        if ours:
            log.warning("holding again %s job(s) let go while the lease was in doubt: %s", len(ours), sorted(ours)[:20])
            master.handoff.adopt(master.store.jobs.handed(sorted(ours), master.id))

    def fence(self, reason: str) -> None:
        """Kill every worker now (SIGKILL) and start nothing: the jobs this master holds may be others' already."""
        master = self.master
        master.lease.fence(master.clock())
        master.handoff.withdraw_offer()
        for pool in master.pools.values():
            pool.give_back()  # still ours in the store: recovered as orphans, or adopted again after a renewal
            for worker in pool.live_workers():
                pool.kill(worker, reason)
                master.launcher.kill(worker.pid)

    def lose(self) -> None:
        """Another master declared us dead and took our jobs: stop now, own nothing, exit."""
        master = self.master
        if master.lease_lost:
            return
        log.critical("master %s lost its lease (declared dead by another master); its jobs belong to others now: exiting", master.id)
        self.fence("lease lost: declared dead by another master")
        master.lease_lost = True
        master.draining = True
        master.drain.started_at = master.clock()
        master.finished = True  # the shutdown kills the workers; their late results are refused by the store guards

    # -- other masters' jobs and old rows ---------------------------------

    def recover_orphans(self) -> None:
        master = self.master
        store = master.store
        lease = master.config.heartbeat_lease
        for record in store.masters.silent(lease=lease):
            if record.id == master.id or (fenced := self._fenced(record)) is None:
                continue
            # Refund before declaring it dead: once it is dead, any master's requeue_orphans below re-queues its
            # jobs with their attempt charged, and a master that lost the declare_dead race gets there first.
            self.refund_unstarted(fenced)
            if store.masters.declare_dead(record, lease=lease):
                log.warning("master %s on %s is dead (no heartbeat for %.0fs)", record.id, record.host, time.time() - record.heartbeat_at)
        recovered = store.jobs.requeue_orphans()
        if recovered:
            log.warning("re-queued %s job(s) of dead master(s): %s", len(recovered), recovered[:20])
            master.dispatcher.claim_soon()

    @staticmethod
    def _fenced(record: MasterRecord) -> fencing.Fenced | None:
        """Kill what a silent master of this host still runs (``fence.py``); None if some process survived."""
        if record.host != socket.gethostname() or not record.control_socket:
            return fencing.Fenced(None)  # another host's: its master stops its own workers before its lease ends
        return fencing.fence_other(Path(record.control_socket), record.id)

    def prune_finished(self) -> None:
        """Delete old finished jobs in small batches; one master at a time holds the lease."""
        master = self.master
        store = master.store
        if not store.leases.acquire("prune", master.id, ttl=master.config.prune_interval):
            return
        older_than = time.time() - master.config.retention
        deleted = 0
        for _ in range(PRUNE_BATCHES_PER_ROUND):
            pruned = store.jobs.prune_finished(older_than=older_than, batch=PRUNE_BATCH)
            store.job_logs.delete_for(pruned)  # a pruned job's own log lines go with it
            deleted += len(pruned)
            if len(pruned) < PRUNE_BATCH:
                break
        store.masters.prune(older_than=older_than)
        store.batches.prune(older_than=older_than)
        if deleted:
            log.info("pruned %s finished job(s) older than %s", deleted, master.config.retention)
