"""The master's side of the hand-off, as one object: what it waits on, reads, offers and takes.

The master's loop asks the desk for the descriptors to wait on (``fds``),
lets it read the ready ones (``collect``: wake-ups name daemons to claim
for, hand-offs wait in ``pending``), and on its ticks lets it publish or
withdraw the offer and look for jobs handed over without a word. The
master only decides what to do with the jobs the desk gives it: run them
on a free worker, or put them back in the queue (``jobd.master.handoff_side``).

A datagram only names a job, whoever sent it: ``take_handed`` asks the
store which are this master's to start (running, ours, first attempt), so a
forged or stale one runs nothing, and one the master already holds is not
started twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from .. import defaults
from ..job import Job
from ..store.jobs import JobQueue
from ..throttle import Throttle
from ..workers.protocol import HandedJob, PassedHandoff
from .channel import Channel, remove_stale
from .datagrams import parse_handed
from .offer import Offer, publish
from .sockets import OFFER_SUFFIX, WAKE_SUFFIX, WakeSocket, Woken, path_beside

log = logging.getLogger("jobd.master")


class HandoffDesk:
    """Everything of the hand-off the master holds: its wake socket, its offer, the hand-offs it received.

    With ``enabled`` False (``handoff = false``) the desk only reads
    wake-ups: it publishes no offer, ignores ``run`` datagrams and never
    adopts, so the master's plain queued path runs alone.
    """

    def __init__(self, control_socket: Path, owner: str, *, enabled: bool, clock: Callable[[], float]) -> None:
        self.control_socket = control_socket
        self.owner = owner
        self.enabled = enabled
        self.wake = WakeSocket(control_socket, handoffs=enabled)
        self.offer_path = path_beside(control_socket, OFFER_SUFFIX)
        self.pending: list[HandedJob] = []  # hand-offs received and not yet confirmed against the store
        # How submits' jobs reached a worker: straight ("to_workers"), or through this
        # master ("through_master"), of which workers passed on "passed_by_workers".
        self.counts = {"to_workers": 0, "through_master": 0, "passed_by_workers": 0}
        self._offered: Offer | None = None  # daemons whose jobs submits may hand straight to us, and to which workers
        self._offer_check = Throttle(defaults.HANDOFF_OFFER_INTERVAL_SECONDS, clock)
        self._adopt_check = Throttle(defaults.HANDOFF_ADOPT_AFTER_SECONDS, clock)
        self._watched: dict[int, Channel] = {}

    def open(self) -> None:
        """Bind the wake socket; remove what a killed master left (its workers' sockets, its offer)."""
        self.wake.open()
        remove_stale(self.control_socket)
        publish(self.offer_path, None)  # a dead master's offer would send submits' jobs to it until a new one is written

    def close(self) -> None:
        self.wake.close()

    # -- the loop's wait and read ----------------------------------------

    def fds(self, busy: Iterable[Channel]) -> dict[int, str]:
        """The descriptors to wait on: the wake socket, and the sockets of ``busy`` workers (they cannot read them now).

        Each with a token naming its socket, so a number the kernel reuses for a new socket is watched anew.
        """
        self._watched = {channel.fileno(): channel for channel in busy}
        return {self.wake.fileno(): WAKE_SUFFIX, **{fd: channel.suffix for fd, channel in self._watched.items()}}

    def collect(self, ready: Collection[int]) -> Woken:
        """Read the desk's sockets among ``ready``: the daemons wake-ups named; hand-offs wait in ``pending``."""
        woken = self.read_wake() if self.wake.fileno() in ready else {}
        for fd, channel in self._watched.items():
            if fd in ready:
                self.passed_on(channel.drain())
        return woken

    def read_wake(self) -> Woken:
        """What waits on the wake socket (a read that never waits): the wake-ups; hand-offs go to ``pending``."""
        woken = self.wake.take()
        self.pending.extend(self.wake.handed)
        self.wake.handed.clear()
        return woken

    def read_everything(self) -> None:
        """Read all that waits on the wake socket (a stopping master refuses those hand-offs)."""
        self.wake.take(everything=True)
        self.pending.extend(self.wake.handed)
        self.wake.handed.clear()

    # -- hand-offs that reach the master ---------------------------------

    def took(self, daemon: str, handed: HandedJob) -> Job:
        """A worker started a job a submit handed it directly: that job, as the submit inserted it."""
        self.counts["to_workers"] += 1
        args = json.loads(handed.args or "{}")  # the worker ran them: a JSON object
        return Job.handed(
            handed.job_id, daemon, handed.task or "", args if isinstance(args, dict) else {},
            priority=handed.priority, max_attempts=handed.max_attempts, owner=self.owner, now=time.time(),
        )

    def passed(self, message: PassedHandoff) -> None:
        """A hand-off a worker could not run at once: taken like one sent to the master."""
        handed = parse_handed(message.datagram, message.trusted)
        self.passed_on([handed] if handed is not None else [])

    def passed_on(self, handed: list[HandedJob]) -> None:
        """Hand-offs sent to a worker that did not run them: the master takes them like its own."""
        self.pending.extend(handed)
        self.counts["passed_by_workers"] += len(handed)

    def channel_closed(self, channel: Channel) -> None:
        """Keep what submits sent to an exited worker's socket (taken like any hand-off), then close it."""
        self.passed_on(channel.drain())
        channel.close()

    def take_handed(self, jobs: JobQueue, in_hand: Callable[[], set[int]]) -> list[Job]:
        """The pending hand-offs the store confirms as this master's to start now (none it already holds)."""
        handed, self.pending = self.pending, []
        self.counts["through_master"] += len(handed)
        confirmed = jobs.handed(sorted({h.job_id for h in handed}), self.owner) if handed else []
        return runnable_handed(confirmed, in_hand()) if confirmed else []

    def lost(self, jobs: JobQueue, in_hand: Callable[[], set[int]]) -> list[Job]:
        """Running jobs of ours we never heard of: a submit claimed them for us and died before saying so."""
        started_before = time.time() - defaults.HANDOFF_ADOPT_AFTER_SECONDS
        lost = set(jobs.owned_running(self.owner, started_before=started_before)) - in_hand()
        if not lost:
            return []
        log.warning("adopting %s job(s) handed to this master without a word: %s", len(lost), sorted(lost)[:20])
        return jobs.handed(sorted(lost), self.owner)

    def adopt_due(self) -> bool:
        """Whether it is time to look for jobs handed over without a word (never with the hand-off off)."""
        return self.enabled and self._adopt_check.ready()

    # -- the offer --------------------------------------------------------

    def offer_due(self) -> bool:
        """Whether it is time to republish the offer (never with the hand-off off)."""
        return self.enabled and self._offer_check.ready()

    def publish(self, rooms: Mapping[str, tuple[str, ...]]) -> None:
        """Offer hand-offs for the daemons in ``rooms`` (each with its offered workers' socket suffixes).

        An empty ``rooms`` withdraws the offer; the file is rewritten only when it changes.
        """
        offered = None
        if rooms and self.enabled:
            offered = Offer(self.owner, frozenset(rooms), {daemon: found for daemon, found in rooms.items() if found})
        if offered != self._offered:
            publish(self.offer_path, offered)
            self._offered = offered

    def withdraw(self) -> None:
        """No more hand-offs (stopping, or fenced): remove the offer now."""
        if self._offered:
            self._offered = None
            try:
                publish(self.offer_path, None)
            except OSError:
                log.warning("could not remove the hand-off offer %s", self.offer_path, exc_info=True)

    def counted(self) -> dict[str, int]:
        """How submits' jobs reached a worker (``master.handoffs`` in the status)."""
        return dict(self.counts)


def runnable_handed(jobs: list[Job], in_hand: set[int]) -> list[Job]:
    """Of the jobs the store confirmed as this master's running ones, those a hand-off may start.

    Only a first attempt was handed (``store.driver_sql``), and a job this
    master already holds (a datagram sent twice, or replayed) is not started again.
    """
    fresh, seen = [], set(in_hand)
    for job in jobs:
        if job.attempts == 1 and job.id not in seen:
            fresh.append(job)
            seen.add(job.id)
    return fresh
