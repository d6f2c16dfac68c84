"""The worker's side: take a submit's job from its own socket when idle, pass on what it cannot run.

A datagram only names a job. Before running one, the worker asks the store
whether it is its master's running first attempt (``store.driver_sql``,
one primary-key read): a forged datagram, or one replayed after the job
ended, is dropped with a warning. When the store cannot say, the datagram
goes to the master, which reads the row itself. Whatever the worker cannot
run at once (the master holds it, it is stopping, the sender is not
trusted) it passes to the master unread (``PassedHandoff``), which treats
it like any hand-off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import defaults
from ..workers import protocol
from .channel import Channel
from .datagrams import parse_handed
from .gate import DIRECT
from .sockets import receive, trusted_uids

log = logging.getLogger("jobd.direct")

#: Asks the store whether a handed job is this worker's master's to run (``store.driver_sql``);
#: None when the store cannot be asked (the job then goes to the master, which asks).
Guard = Callable[[int], "bool | None"]


def handoff_guard(settings: Any, statements: Any) -> Guard | None:
    """The guard of a worker of master ``settings.owner`` (a ``WorkerSettings``), asking through
    ``statements`` (its ``store.driver_sql.WorkerStatements``), connected now so the first job waits less.

    If the store cannot be reached, the guard says "cannot tell" (the master
    then decides) and tries to connect again at most every few seconds.
    """
    if not settings.owner:
        return None
    retry_at = [0.0]

    def connect() -> bool:
        if not statements.connected and time.monotonic() >= retry_at[0]:
            try:
                statements.connect()
            except Exception as error:
                retry_at[0] = time.monotonic() + defaults.HANDOFF_GUARD_RETRY_SECONDS
                log.warning("cannot check hand-offs against the store (%s): submits' jobs go through the master", error)
        return bool(statements.connected)

    def guard(job_id: int) -> bool | None:
        if not connect():
            return None
        try:
            return bool(statements.handed_runnable(job_id, settings.owner, settings.daemon))
        except Exception:
            log.warning("could not check hand-off of job %s against the store; passing it to the master", job_id, exc_info=True)
            return None

    connect()
    return guard


class WorkerEnd:
    """The worker's side of its channel: take a submit's job when idle, pass on the rest."""

    def __init__(self, channel: Channel, daemon: str, send: Callable[[protocol.Message], None], guard: Guard | None = None) -> None:
        self.channel = channel
        self.daemon = daemon
        self.send = send  # sends one message to the master
        self.trusted_uids = trusted_uids()
        self.guard = guard  # None: every datagram goes through the master, which checks it

    def fileno(self) -> int:
        return self.channel.fileno()

    def take(self) -> protocol.RunJob | None:
        """The job in the next datagram if this worker may run it now (the master is told first), else None."""
        received = receive(self.channel.socket)
        if received is None:
            return None  # the master read it first, or nothing at all
        datagram, sender = received
        trusted = sender in self.trusted_uids
        handed = parse_handed(datagram, trusted)
        if handed is None:
            return None  # not a hand-off: ignored, like the master's wake socket does
        args = _args(handed) if handed.daemon == self.daemon else None
        if args is not None and self.guard is not None:
            # A datagram only names a job: run it only if the store holds it as our
            # master's running first attempt (not a forged id, not a finished job).
            allowed = self.guard(handed.job_id)
            if allowed is False:
                log.warning("ignored a hand-off of job %s: the store does not hold it as this master's to run", handed.job_id)
                return None
            if allowed is None:
                args = None  # the store could not say: the master decides
        if args is None or handed.task is None or self.guard is None or not self.channel.gate.take(DIRECT):
            self.send(protocol.PassedHandoff(datagram, trusted))
            return None
        self.send(handed)  # the master hears of the job before it starts
        return protocol.RunJob(handed.job_id, 1, handed.task, args, None)

    def done(self) -> None:
        """A job ended: a submit's job no longer holds the worker."""
        self.channel.gate.release(DIRECT)


def _args(job: protocol.HandedJob) -> dict[str, Any] | None:
    """The args a described hand-off carries, if they are a JSON object; None if it carries none."""
    if job.args is None:
        return None
    try:
        args = json.loads(job.args)
    except ValueError:
        return None
    return args if isinstance(args, dict) else None
