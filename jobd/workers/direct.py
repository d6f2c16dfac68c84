"""Direct hand-off: a submit gives its job straight to an idle worker, past the master.

A hand-off to the master (``jobd.handoff``) still costs the master's wake-up
and its loop before the worker is told over its pipe: two process wake-ups
after the submit returns. So each worker also has a datagram socket of its
own beside the control socket (``SOCKET.wN``, 0660), and the master's offer
names them. A submit that finds its daemon offered inserts the job already
claimed by the master (exactly as for a hand-off to the master) and sends
the same ``run/2`` datagram to one of the workers instead.

Two parties may now give a worker its next job: the master over the pipe,
and a submit over the socket. A ``Gate`` in shared memory decides, under a
lock, which one holds the worker: the master takes it for every job it
hands over and gives it back when the worker holds none of its jobs; the
worker takes it for a submit's job and gives it back when that job ends.
So a submit's job never waits behind the master's, and the master never
queues a job behind one it has not heard of yet.

A datagram only names a job. Before running one, the worker asks the store
whether it is its master's running first attempt (``store.handoff_check``,
one primary-key read): a forged datagram, or one replayed after the job
ended, is dropped with a warning. When the store cannot say, the datagram
goes to the master, which reads the row itself.

The worker only reads its socket while it waits for work. Whatever it
cannot run at once (the master holds it, it is stopping, the sender is not
trusted) it passes to the master unread (``PassedHandoff``), which treats
it like any hand-off. While the master knows the worker busy, the master
reads the socket itself (it holds the same socket), and after the worker
exits it reads what is left, so a datagram is never stranded. What happens
to a job in every failure is as for the hand-off to the master: the submit
falls back to the master's wake socket, then to the queue; a job whose
datagram never arrives is adopted by the master after a few seconds.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from .. import defaults
from ..wakeup import Handed, HandedJob, listening_socket, parse_handed, receive, trusted_uids
from ..unix_sockets import prepare_path
from . import protocol

log = logging.getLogger("jobd.direct")

FREE, MASTER, DIRECT = 0, 1, 2  # who holds a worker: nobody, the master's jobs, a submit's job
_HOLDER, _CLOSED = 0, 1  # the gate's two shared cells
SUFFIX_PREFIX = "w"
_numbers = itertools.count(1)  # worker socket names, unique within a master


class Gate:
    """Shared by the master and one worker: who may give the worker its next job.

    A lock (a POSIX semaphore) guards two bytes of shared memory: the holder
    and whether submits are shut out for good (the worker is retiring). A
    take waits at most a few milliseconds for the lock: the other side holds
    it for a few instructions, so a longer wait means it died holding it,
    and the worker is about to be replaced.
    """

    def __init__(self, context: BaseContext) -> None:
        self._lock = context.Lock()
        self._cells = context.RawArray("b", 2)

    def take(self, holder: int) -> bool:
        """Hold the worker for ``holder``; False if the other holds it (or, for a submit, it is closed)."""
        if not self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            return False
        try:
            held = self._cells[_HOLDER]
            if held not in (FREE, holder) or (holder == DIRECT and self._cells[_CLOSED]):
                return False
            self._cells[_HOLDER] = holder
            return True
        finally:
            self._lock.release()

    def release(self, holder: int) -> None:
        """Let the worker go, if ``holder`` holds it."""
        if self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            try:
                if self._cells[_HOLDER] == holder:
                    self._cells[_HOLDER] = FREE
            finally:
                self._lock.release()

    def close(self) -> None:
        """No more submits' jobs for this worker (it is retiring); the master may still give it jobs."""
        if self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            try:
                self._cells[_CLOSED] = 1
            finally:
                self._lock.release()

    @property
    def holder(self) -> int:
        return int(self._cells[_HOLDER])

    @property
    def closed(self) -> bool:
        return bool(self._cells[_CLOSED])


@dataclass
class Channel:
    """A worker's own hand-off socket (bound by the master, shared with the worker) and its gate."""

    suffix: str  # the socket is SOCKET.SUFFIX, beside the control socket; the offer names it so
    path: Path
    socket: socket.socket
    gate: Gate

    def fileno(self) -> int:
        return self.socket.fileno()

    def drain(self) -> list[Handed]:
        """Every hand-off waiting on the socket now (the master's side: the worker is busy or gone)."""
        trusted = trusted_uids()
        handed = []
        for _ in range(defaults.MAX_DIRECT_DATAGRAMS_PER_READ):
            received = receive(self.socket)
            if received is None:
                break
            datagram, sender = received
            one = parse_handed(datagram, sender in trusted)
            if one is not None:  # anything else is ignored, as on the master's wake socket
                handed.append(one)
        return handed

    def close(self) -> None:
        """Close the master's end and remove the socket's name (the worker is gone)."""
        self.socket.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


@lru_cache(maxsize=64)
def worker_socket_path(control_socket: Path, suffix: str) -> Path:
    """Where worker socket ``suffix`` of the master serving ``control_socket`` lives (asked for on every submit)."""
    return control_socket.with_name(f"{control_socket.name}.{suffix}")


def is_suffix(text: str) -> bool:
    """Whether ``text`` names a worker socket (``w`` and a number), as an offer may."""
    number = text[len(SUFFIX_PREFIX):]
    return text.startswith(SUFFIX_PREFIX) and 0 < len(number) <= 9 and number.isascii() and number.isdigit() and number[0] != "0"


def open_channel(control_socket: Path, context: BaseContext) -> Channel | None:
    """A new worker's channel, or None if it cannot have one (the worker is then fed by the master alone)."""
    suffix = f"{SUFFIX_PREFIX}{next(_numbers)}"
    path = worker_socket_path(control_socket, suffix)
    if len(os.fsencode(path)) > defaults.MAX_SOCKET_PATH_BYTES:
        return None
    try:
        prepare_path(path, socket.SOCK_DGRAM, f"{path} is in use")
        return Channel(suffix, path, listening_socket(path), Gate(context))
    except Exception as error:  # a worker without a channel still works: never fail a spawn for it
        log.warning("worker socket %s: %s; its jobs come through the master only", path, error)
        return None


def remove_stale(control_socket: Path) -> None:
    """Remove worker sockets a killed master left beside ``control_socket`` (nobody reads them)."""
    folder = control_socket.parent
    prefix = f"{control_socket.name}.{SUFFIX_PREFIX}"
    try:
        names = [name for name in os.listdir(folder) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        if is_suffix(name[len(control_socket.name) + 1:]):
            try:
                prepare_path(folder / name, socket.SOCK_DGRAM, "in use")
            except Exception:
                log.debug("left %s in place", folder / name, exc_info=True)


#: Asks the store whether a handed job is this worker's master's to run (``store.handoff_check``);
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
        job = handed.job
        args = _args(job) if job is not None and job.daemon == self.daemon else None
        if job is not None and args is not None and self.guard is not None:
            # A datagram only names a job: run it only if the store holds it as our
            # master's running first attempt (not a forged id, not a finished job).
            allowed = self.guard(job.job_id)
            if allowed is False:
                log.warning("ignored a hand-off of job %s: the store does not hold it as this master's to run", job.job_id)
                return None
            if allowed is None:
                args = None  # the store could not say: the master decides
        if job is None or args is None or self.guard is None or not self.channel.gate.take(DIRECT):
            self.send(protocol.PassedHandoff(datagram, trusted))
            return None
        self.send(protocol.TookHandoff(job.job_id, job.priority, job.max_attempts, job.task, job.args))
        return protocol.RunJob(job.job_id, 1, job.task, args, None)

    def done(self) -> None:
        """A job ended: a submit's job no longer holds the worker."""
        self.channel.gate.release(DIRECT)


def _args(job: HandedJob) -> dict[str, Any] | None:
    try:
        args = json.loads(job.args)
    except ValueError:
        return None
    return args if isinstance(args, dict) else None
