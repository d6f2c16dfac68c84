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
from functools import lru_cache
from pathlib import Path

from . import defaults
from .config import NAME_PATTERN
from .unix_sockets import born_private, prepare_path

log = logging.getLogger("jobd.wakeup")

FORMAT_PREFIX = b"wake/1 "  # versioned: "wake/1 DAEMON"
HANDED_PREFIX = b"run/1 "  # "run/1 DAEMON JOB_ID": a job a submit claimed for this master (``handoff.py``)
MAX_DATAGRAM_BYTES = 128  # the prefix, a daemon name (at most 64 characters) and a job id fit with room to spare
MAX_JOB_ID = 2**63 - 1
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


def decode_handed(datagram: bytes) -> tuple[str, int] | None:
    """The (daemon, job id) a hand-off datagram names, or None if it is not a well-formed one."""
    if len(datagram) > MAX_DATAGRAM_BYTES or not datagram.startswith(HANDED_PREFIX):
        return None
    try:
        daemon, _, number = datagram[len(HANDED_PREFIX):].decode("ascii").partition(" ")
    except UnicodeDecodeError:
        return None
    if not NAME_PATTERN.fullmatch(daemon) or not number.isdigit() or not number.isascii():
        return None
    job_id = int(number)
    return (daemon, job_id) if 0 < job_id <= MAX_JOB_ID and str(job_id) == number else None


def announce(control_socket: Path, daemon: str) -> None:
    """Tell the master serving ``control_socket`` that a job of ``daemon`` is waiting.

    Fire-and-forget and never blocking: with no master, a master that cannot
    keep up, or no permission, the job simply waits for the next poll.
    """
    try:
        _send(control_socket, encode(daemon))
    except UnicodeEncodeError:
        pass  # not a daemon name any master has


def hand_over(control_socket: Path, daemon: str, job_id: int) -> bool:
    """Tell the master serving ``control_socket`` that job ``job_id`` is its own to run now.

    False if the datagram could not be sent (no master, a full buffer, no
    permission): the caller puts the job back in the queue.
    """
    try:
        return _send(control_socket, encode_handed(daemon, job_id))
    except UnicodeEncodeError:
        return False


def _send(control_socket: Path, datagram: bytes) -> bool:
    global _sender
    try:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
            atexit.register(_sender.close)
        _sender.sendto(datagram, _address(control_socket))
    except OSError:
        return False
    return True


# One unbound datagram socket serves every announce of a process (and of its
# forked children: each datagram is sent whole, so sharing it is safe).
_sender: socket.socket | None = None


class WakeSocket:
    """The master's end: a non-blocking datagram socket the loop waits on (``fileno``) and drains (``take``)."""

    def __init__(self, control_socket: Path) -> None:
        self.path = wake_socket_path(control_socket)
        self.ignored = 0  # datagrams that were not well-formed wake-ups
        self.handed: list[tuple[str, int]] = []  # (daemon, job id) of hand-offs received, until taken
        self._socket: socket.socket | None = None

    def open(self) -> None:
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setblocking(False)
        if len(os.fsencode(self.path)) > defaults.MAX_SOCKET_PATH_BYTES:
            # Unbound: nobody can wake us, and submits wait for the poll. Refusing
            # to start would break a deployment whose control socket path fits.
            log.warning("wake socket path %s is too long for a Unix socket: submits wait for the poll", self.path)
            self._socket = receiver
            return
        prepare_path(self.path, socket.SOCK_DGRAM, f"a master already receives wake-ups on {self.path}")
        try:
            with born_private(self.path):
                receiver.bind(str(self.path))
        except OSError:
            receiver.close()
            raise
        self._socket = receiver

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
            try:
                datagram = self._socket.recv(MAX_DATAGRAM_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                log.debug("reading the wake socket failed", exc_info=True)
                break
            handed = decode_handed(datagram) if datagram.startswith(HANDED_PREFIX) else None
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

    def take_handed(self) -> list[tuple[str, int]]:
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
