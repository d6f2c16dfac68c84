"""Wake-ups: a datagram socket beside the control socket that says "a job for daemon X is waiting".

``jobd.submit`` sends one tiny datagram naming the job's daemon right after
the job is committed, and returns without waiting for anything. The master
keeps the socket in the set its loop waits on, so the claim for that daemon
starts in the same loop turn: no connection to accept, no thread, no reply.

A wake-up is only a hint. The master still polls the store every
``poll_interval``, so a lost datagram (no master, a full buffer) costs at
most that delay, and a forged or garbled one costs at most one claim query.
Datagrams come from outside the master, so they are bounded in size,
checked against a fixed format and ignored (counted, logged at debug level)
when they do not fit. The socket is born with the control socket's mode
(0660): whoever may talk to the master may wake it, nobody else.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import defaults
from .names import NAME_PATTERN, TASK_NAME_PATTERN
from .unix_sockets import born_private, prepare_path

log = logging.getLogger("jobd.wakeup")

FORMAT_PREFIX = b"wake/1 "  # versioned: "wake/1 DAEMON"
HANDED_PREFIX = b"run/1 "  # "run/1 DAEMON JOB_ID": a job a submit claimed for this master (``handoff.py``)
# "run/2 DAEMON JOB_ID PRIORITY MAX_ATTEMPTS|- TASK ARGS_JSON": the same with the job's content, which
# the master takes as it is only from a process of its own user (see ``WakeSocket.take``).
HANDED_JOB_PREFIX = b"run/2 "
MAX_DATAGRAM_BYTES = 128  # a wake-up or a run/1: a daemon name (at most 64 characters) and a job id fit
MAX_HANDED_JOB_BYTES = 8192  # a run/2; a job whose args are longer is handed over as a run/1
MAX_JOB_ID = 2**63 - 1
_CREDENTIALS = struct.Struct("3i")  # SCM_CREDENTIALS: pid, uid, gid of the sending process, as the kernel saw it
MAX_DATAGRAMS_PER_TAKE = 256  # a flood cannot hold the loop: the rest are read on the next turn


def wake_socket_path(control_socket: Path) -> Path:
    """Where the wake socket of the master serving ``control_socket`` lives."""
    return control_socket.with_name(control_socket.name + ".wake")


@lru_cache(maxsize=16)
def _address(control_socket: Path) -> str:
    return str(wake_socket_path(control_socket))


def encode(daemon: str) -> bytes:
    return FORMAT_PREFIX + daemon.encode("ascii")


def decode(datagram: bytes) -> str | None:
    """The daemon a datagram names, or None if it is not a well-formed wake-up."""
    if len(datagram) > MAX_DATAGRAM_BYTES or not datagram.startswith(FORMAT_PREFIX):
        return None
    try:
        name = datagram[len(FORMAT_PREFIX):].decode("ascii")
    except UnicodeDecodeError:
        return None
    return name if NAME_PATTERN.fullmatch(name) else None


def encode_handed(daemon: str, job_id: int) -> bytes:
    return HANDED_PREFIX + f"{daemon} {job_id}".encode("ascii")


@dataclass(frozen=True)
class HandedJob:
    """A job a submit claimed for this master, as its datagram describes it (the row holds the same)."""

    daemon: str
    job_id: int
    priority: int
    max_attempts: int | None
    task: str
    args: str  # as stored: canonical JSON


@dataclass(frozen=True)
class Handed:
    """A hand-off received: the job's id, and its content when the sender may be taken at its word."""

    daemon: str
    job_id: int
    job: HandedJob | None = None


def encode_handed_job(job: HandedJob) -> bytes | None:
    """The run/2 datagram for ``job``, or None if it would be too long (send a run/1)."""
    limit = "-" if job.max_attempts is None else str(job.max_attempts)
    datagram = HANDED_JOB_PREFIX + f"{job.daemon} {job.job_id} {job.priority} {limit} {job.task} {job.args}".encode()
    return datagram if len(datagram) <= MAX_HANDED_JOB_BYTES else None


def decode_handed_job(datagram: bytes) -> HandedJob | None:
    """The job a run/2 datagram describes, or None if it is not a well-formed one."""
    if len(datagram) > MAX_HANDED_JOB_BYTES or not datagram.startswith(HANDED_JOB_PREFIX):
        return None
    try:
        fields = datagram[len(HANDED_JOB_PREFIX):].decode().split(" ", 5)
    except UnicodeDecodeError:
        return None
    if len(fields) != 6:
        return None
    daemon, number, priority, limit, task, args = fields
    job_id, priority_value = _integer(number), _integer(priority.removeprefix("-"))
    max_attempts = None if limit == "-" else _integer(limit)
    if (
        not NAME_PATTERN.fullmatch(daemon) or not TASK_NAME_PATTERN.fullmatch(task)
        or job_id is None or not 0 < job_id <= MAX_JOB_ID or priority_value is None
        or (limit != "-" and max_attempts is None) or not args.startswith("{")
    ):
        return None
    return HandedJob(daemon, job_id, -priority_value if priority.startswith("-") else priority_value, max_attempts, task, args)


def _integer(text: str) -> int | None:
    """A decimal integer written plainly (no sign, no spaces, no leading zeros), or None."""
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 19:
        return None
    return int(text)


def decode_handed(datagram: bytes) -> tuple[str, int] | None:
    """The (daemon, job id) a hand-off datagram names, or None if it is not a well-formed one."""
    if len(datagram) > MAX_DATAGRAM_BYTES or not datagram.startswith(HANDED_PREFIX):
        return None
    try:
        daemon, _, number = datagram[len(HANDED_PREFIX):].decode("ascii").partition(" ")
    except UnicodeDecodeError:
        return None
    job_id = _integer(number)
    if not NAME_PATTERN.fullmatch(daemon) or job_id is None or not 0 < job_id <= MAX_JOB_ID:
        return None
    return daemon, job_id


def announce(control_socket: Path, daemon: str) -> None:
    """Tell the master serving ``control_socket`` that a job of ``daemon`` is waiting.

    Fire-and-forget and never blocking: with no master, a master that cannot
    keep up, or no permission, the job simply waits for the next poll.
    """
    try:
        _send(control_socket, encode(daemon))
    except UnicodeEncodeError:
        pass  # not a daemon name any master has


def hand_over(control_socket: Path, job: HandedJob) -> bool:
    """Tell the master serving ``control_socket`` that ``job`` is its own to run now.

    The datagram carries the job's content (a run/2) when it fits, so a
    master of the same user starts it without reading it back; otherwise
    only its id. False if it could not be sent (no master, a full buffer,
    no permission): the caller puts the job back in the queue.
    """
    try:
        return _send(control_socket, encode_handed_job(job) or encode_handed(job.daemon, job.job_id))
    except UnicodeEncodeError:
        return False


def hand_to_worker(worker_socket: Path, job: HandedJob) -> bool:
    """Hand ``job`` straight to a worker (``jobd.workers.direct``); False if it could not be sent or does not fit.

    Only a run/2 goes to a worker: one that must be read back goes to the master.
    """
    try:
        datagram = encode_handed_job(job)
    except UnicodeEncodeError:
        return False
    return datagram is not None and _send_to(str(worker_socket), datagram)


def _send(control_socket: Path, datagram: bytes) -> bool:
    return _send_to(_address(control_socket), datagram)


def _send_to(address: str, datagram: bytes) -> bool:
    global _sender
    try:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
            atexit.register(_sender.close)
        _sender.sendto(datagram, address)
    except OSError:
        return False
    return True


def _sender_uid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _CREDENTIALS.size:
            return int(_CREDENTIALS.unpack_from(data)[1])
    return None


def trusted_uids() -> frozenset[int]:
    """Senders whose run/2 is taken as it is: root and this process's own user, who could do anything it does."""
    return frozenset({0, os.geteuid()})


def receive(receiver: socket.socket) -> tuple[bytes, int | None] | None:
    """One datagram waiting on ``receiver`` (non-blocking, ``SO_PASSCRED``) and its sender's uid; None if none waits.

    A datagram longer than any well-formed one comes back empty.
    """
    try:
        datagram, ancillary, flags, _address = receiver.recvmsg(MAX_HANDED_JOB_BYTES + 1, socket.CMSG_SPACE(_CREDENTIALS.size))
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        log.debug("reading a hand-off socket failed", exc_info=True)
        return None
    return (b"" if flags & socket.MSG_TRUNC else datagram), _sender_uid(ancillary)


def parse_handed(datagram: bytes, trusted: bool) -> Handed | None:
    """The hand-off in ``datagram``, if it is one; its content kept only if the sender is ``trusted``.

    Anyone else is only believed about the job's id: the master reads the row.
    """
    if datagram.startswith(HANDED_JOB_PREFIX):
        job = decode_handed_job(datagram)
        if job is None:
            return None
        return Handed(job.daemon, job.job_id, job if trusted else None)
    if datagram.startswith(HANDED_PREFIX):
        named = decode_handed(datagram)
        return Handed(*named) if named is not None else None
    return None


def listening_socket(path: Path) -> socket.socket:
    """A non-blocking datagram socket bound at ``path`` (born 0660) that tells who sent each datagram."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.setblocking(False)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        with born_private(path):
            receiver.bind(str(path))
    except OSError:
        receiver.close()
        raise
    return receiver


# One unbound datagram socket serves every announce of a process (and of its
# forked children: each datagram is sent whole, so sharing it is safe).
_sender: socket.socket | None = None


class WakeSocket:
    """The master's end: a non-blocking datagram socket the loop waits on (``fileno``) and drains (``take``)."""

    def __init__(self, control_socket: Path) -> None:
        self.path = wake_socket_path(control_socket)
        self.ignored = 0  # datagrams that were not well-formed wake-ups
        self.handed: list[Handed] = []  # hand-offs received, until taken
        self.trusted_uids = trusted_uids()
        self._socket: socket.socket | None = None

    def open(self) -> None:
        if len(os.fsencode(self.path)) > defaults.MAX_SOCKET_PATH_BYTES:
            # Unbound: nobody can wake us, and submits wait for the poll. Refusing
            # to start would break a deployment whose control socket path fits.
            log.warning("wake socket path %s is too long for a Unix socket: submits wait for the poll", self.path)
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            return
        prepare_path(self.path, socket.SOCK_DGRAM, f"a master already receives wake-ups on {self.path}")
        self._socket = listening_socket(self.path)

    def fileno(self) -> int:
        if self._socket is None:
            raise ValueError("the wake socket is not open")
        return self._socket.fileno()

    def take(self) -> set[str]:
        """The daemons named by the wake-ups and hand-offs received since the last call (never blocks).

        The hand-offs' job ids collect in ``handed`` (see ``take_handed``).
        """
        woken: set[str] = set()
        if self._socket is None:
            return woken
        for _ in range(MAX_DATAGRAMS_PER_TAKE):
            received = receive(self._socket)
            if received is None:
                break
            datagram, sender = received
            handed = parse_handed(datagram, sender in self.trusted_uids)
            if handed is not None:
                self.handed.append(handed)
                break  # a job waits to start: the rest (if any) on the next loop turn, one system call sooner
            name = decode(datagram)
            if name is None:
                self.ignored += 1
                log.debug("ignored a malformed wake-up datagram (%s bytes)", len(datagram))
            else:
                woken.add(name)
        return woken

    def drain(self) -> None:
        """Read every datagram waiting now (``take`` stops early at a hand-off); hand-offs collect in ``handed``."""
        for _ in range(MAX_DATAGRAMS_PER_TAKE):
            taken = len(self.handed)
            if not self.take() and len(self.handed) == taken:
                return

    def take_handed(self) -> list[Handed]:
        handed, self.handed = self.handed, []
        return handed

    def close(self) -> None:
        if self._socket is not None:
            bound = bool(self._socket.getsockname())
            self._socket.close()
            self._socket = None
            if bound:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
