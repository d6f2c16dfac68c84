"""The submit's side: find the local master's offer, hand the inserted job over, or wake the master.

``jobd.submit`` asks ``offer_for`` before it inserts: with an offer, the job
is inserted already claimed by that master (``NewJob(handed_to=...)``) and
``hand_off`` sends it; without one the job is inserted queued and
``announce`` wakes the master, which claims for that daemon in the same
loop turn. Both are fire-and-forget and never block.

No SQLAlchemy here: the full submit (``jobd.api``) and `jobd trigger`'s
driver path (``jobd.ops.quick_submit``) both hand jobs over, each putting a
job nobody took back in the queue through its own connection (``PutBack``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..workers.protocol import HandedJob
from .datagrams import encode_handed, encode_handed_job
from .offer import Offer, OfferReader
from .sockets import OFFER_SUFFIX, WAKE_SUFFIX, announce, path_beside, send

log = logging.getLogger("jobd.api")

_offers = OfferReader()

#: Put a handed job nobody took back in the queue, its attempt refunded: ``put_back(job_id, master)``.
#: Only a running job still owned by ``master`` moves (``JobQueue.requeue``'s guard).
PutBack = Callable[[int, str], object]


def offer_for(control_socket: Path, daemon: str) -> Offer | None:
    """The local master's offer to take ``daemon``'s jobs straight from a submit, if it makes one."""
    offer = _offers.read(path_beside(control_socket, OFFER_SUFFIX))
    return offer if offer is not None and daemon in offer.daemons else None


def hand_off(
    control_socket: Path, offer: Offer, job: HandedJob, put_back: PutBack, store_errors: tuple[type[BaseException], ...],
) -> None:
    """Give ``job``, inserted claimed for ``offer.master``, to one of its workers, else to the master.

    If nobody takes it (the master is gone, or cannot keep up) it goes back
    to the queue through ``put_back``, attempt refunded, and the master is
    woken for it. ``store_errors``: what ``put_back`` raises when the store
    fails it (logged; the job is recovered as below).
    """
    worker = offer.worker_socket(control_socket, job.daemon)
    if (worker is not None and hand_to_worker(worker, job)) or hand_to_master(control_socket, job):
        return
    try:
        put_back(job.job_id, offer.master)
    except store_errors:
        # Committed all the same: the master adopts it, or recovers it as an orphan if it is gone.
        log.warning("job %s: could not put it back in the queue after a failed hand-off", job.job_id, exc_info=True)
    announce(control_socket, job.daemon, job.priority)


def hand_to_master(control_socket: Path, job: HandedJob) -> bool:
    """Send ``job`` to the master's wake socket: its content (a run/2) when it fits, else its id (a run/1).

    False if it could not be sent (no master, a full buffer, no permission).
    """
    try:
        return send(path_beside(control_socket, WAKE_SUFFIX), encode_handed_job(job) or encode_handed(job.daemon, job.job_id))
    except UnicodeEncodeError:
        return False


def hand_to_worker(worker_socket: Path, job: HandedJob) -> bool:
    """Send ``job`` straight to a worker's socket; False if it could not be sent or does not fit in a run/2.

    Only a run/2 goes to a worker: one that must be read back goes to the master.
    """
    try:
        datagram = encode_handed_job(job)
    except UnicodeEncodeError:
        return False
    return datagram is not None and send(worker_socket, datagram)
