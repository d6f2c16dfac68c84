"""Hand-off: a submit gives its job straight to an idle local master, with no claim in between.

On an idle system a submitted job used to be written twice before it could
start: the submit's INSERT (``queued``), then the master's claim (``running``,
owner, attempt counted), each a committed write transaction, with the
master's wake-up between them. When the local master has a worker with
nothing to do, the second write buys nothing: no other master should get
the job, and the submitter can record the claim itself.

So a master with an idle worker (and nothing prefetched) for a daemon
*offers* hand-offs: it keeps a small file beside its control socket,
``SOCKET.handoff``, naming itself, those daemons and their workers' own
sockets (``jobd.workers.direct``: a submit's datagram goes straight to a
worker when it can, and to the master when it cannot). A submit that finds
its daemon offered inserts the job already claimed by that master
(``running``, ``attempts = 1``, ``owner`` = the master) and sends a datagram
to the wake socket: ``run/2 DAEMON JOB_ID PRIORITY MAX_ATTEMPTS TASK ARGS``
(``run/1 DAEMON JOB_ID`` when the args are too long for it). A datagram
only names a job, whoever sent it: the master reads the row, and starts the
job only if it is running, its own, on its first attempt and not already in
hand (a worker that takes a datagram itself asks the store the same,
``store.handoff_check``). So a forged datagram, or one replayed after the
job ended, runs nothing. The kernel tells who sent it (``SO_PASSCRED``): a
worker runs only a job a process of the master's own user (or root) handed
it, with the args as described. Every invariant of a claim holds: the job is
durable and claimed before anything acknowledges it or runs it.

What can go wrong, and why no job is lost:

* The offer is stale (the master got busy): the job waits in the master's
  prefetch backlog like any job claimed ahead, and goes back to the queue
  on a drain or a daemon stop.
* No master receives the datagram (the master died and left its offer, or
  the socket buffer is full): the send fails and the submit puts the job
  back in the queue (``JobQueue.unpin``) before it returns.
* The submitter dies between its commit and its send: the master finds the
  running job it owns but never heard of (``JobQueue.owned_running``, every
  few seconds) and adopts it.
* The master dies after the hand-off: its running jobs are orphans,
  re-queued by the next master like any other (invariant 1).

The offer is only a hint; a submit that finds no offer (or an unreadable
one) submits as before: a queued job and a ``wake/1`` datagram.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import defaults
from .names import NAME_PATTERN
from .job import Job
from .states import JobState
from .store.jobs import row_to_job
from .wakeup import HandedJob
from .workers.direct import is_suffix, worker_socket_path

FORMAT = "handoff/2"
MAX_OFFER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Offer:
    """A master, the daemons it takes jobs for straight from a submit, and their workers' sockets."""

    master: str
    daemons: frozenset[str]
    workers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # daemon → socket suffixes ("w3")

    def worker_socket(self, control_socket: Path, daemon: str) -> Path | None:
        """One of ``daemon``'s workers' sockets, picked at random (submits spread over them), or None."""
        suffixes = self.workers.get(daemon)
        return worker_socket_path(control_socket, random.choice(suffixes)) if suffixes else None


@lru_cache(maxsize=16)
def offer_path(control_socket: Path) -> Path:
    """Where the master serving ``control_socket`` publishes its offer (asked for on every submit)."""
    return control_socket.with_name(control_socket.name + ".handoff")


def format_offer(offer: Offer) -> str:
    """``handoff/2 MASTER``, then a line per daemon: its name and its workers' socket suffixes."""
    lines = [f"{FORMAT} {offer.master}"]
    lines.extend(" ".join((daemon, *offer.workers.get(daemon, ()))) for daemon in sorted(offer.daemons))
    return "\n".join(lines) + "\n"


def parse_offer(text: str) -> Offer | None:
    """The offer in ``text``, or None if it is not one (a torn or foreign file offers nothing)."""
    lines = text.split("\n")
    if len(lines) < 2 or lines[-1] != "":
        return None
    head, _, master = lines[0].partition(" ")
    if head != FORMAT or not master or len(master) > 64 or not master.isprintable() or " " in master:
        return None
    workers: dict[str, tuple[str, ...]] = {}
    for line in lines[1:-1]:
        daemon, *suffixes = line.split(" ")
        if not NAME_PATTERN.fullmatch(daemon) or daemon in workers or not all(map(is_suffix, suffixes)):
            return None
        workers[daemon] = tuple(suffixes)
    return Offer(master, frozenset(workers), {daemon: found for daemon, found in workers.items() if found})


def publish(path: Path, offer: Offer | None) -> None:
    """Replace the offer at ``path`` in one rename (readers see the old or the new one), or remove it."""
    if offer is None or not offer.daemons:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, defaults.CONTROL_SOCKET_MODE)
    try:
        os.write(fd, format_offer(offer).encode("ascii"))
        os.fchmod(fd, defaults.CONTROL_SOCKET_MODE)  # whoever may wake the master may read whom to hand to
    finally:
        os.close(fd)
    os.replace(temporary, path)


class OfferReader:
    """A submitter's view of the offer: read again only when the file changed (one ``stat`` per submit)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int, int], Offer | None]] = {}

    def read(self, path: Path) -> Offer | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == version:
            return seen[1]
        offer = None
        if status.st_size <= MAX_OFFER_BYTES:
            try:
                with open(path, encoding="ascii") as file:
                    offer = parse_offer(file.read(MAX_OFFER_BYTES + 1))
            except (OSError, UnicodeDecodeError):
                offer = None
        self._seen[path] = (version, offer)
        return offer


def runnable_handed(jobs: list[Job], in_hand: set[int]) -> list[Job]:
    """Of the jobs the store confirmed as this master's running ones, those a hand-off may start.

    Only a first attempt was handed (``store.handoff_check``), and a job this
    master already holds (a datagram sent twice, or replayed) is not started again.
    """
    fresh, seen = [], set(in_hand)
    for job in jobs:
        if job.attempts == 1 and job.id not in seen:
            fresh.append(job)
            seen.add(job.id)
    return fresh


def handed_job(job: HandedJob, owner: str, now: float) -> Job:
    """The job a trusted hand-off describes, as the submit inserted it (running, attempt 1, ours)."""
    return row_to_job({
        "id": job.job_id, "daemon": job.daemon, "task": job.task, "args": job.args,
        "state": str(JobState.RUNNING), "priority": job.priority, "attempts": 1, "max_attempts": job.max_attempts,
        "run_at": None, "unique_key": None, "fire_key": None, "origin": "intent", "owner": owner,
        "worker_pid": None, "checkpoint": None, "progress": None, "error": None, "traceback": None,
        "result": None, "cancel_requested": False, "created_at": now, "started_at": now,
        "finished_at": None, "updated_at": now,
    })
