"""The hand-off's Unix datagram sockets: where each lives, how one is bound, written, and read.

Everything lives beside the control socket (``path_beside``): the master's
wake socket ``SOCKET.wake``, its offer file ``SOCKET.handoff`` and each
worker's socket ``SOCKET.w1``, ``SOCKET.w2``…, all born with the control
socket's mode (0660): whoever may talk to the master may wake it, nobody
else. A send never blocks: with no receiver, a full buffer or no
permission it fails, and the caller falls back. Every socket is read by one
loop (``read_datagrams``) that knows who sent each datagram: the kernel
says (``SO_PASSCRED``), and only root and the receiver's own user are taken
at their word about a job's content (``trusted_uids``).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .. import defaults
from ..unix_sockets import born_private, prepare_path
from ..workers.protocol import HandedJob
from .datagrams import MAX_HANDED_JOB_BYTES, decode, encode, parse_handed

log = logging.getLogger("jobd.wakeup")

WAKE_SUFFIX = "wake"
OFFER_SUFFIX = "handoff"
WORKER_SUFFIX_PREFIX = "w"  # a worker's socket: "w" and a number, unique within a master
MAX_DATAGRAMS_PER_TAKE = 256  # a flood cannot hold the loop: the rest are read on the next turn
_CREDENTIALS = struct.Struct("3i")  # SCM_CREDENTIALS: pid, uid, gid of the sending process, as the kernel saw it


@lru_cache(maxsize=64)
def path_beside(control_socket: Path, suffix: str) -> Path:
    """``SOCKET.SUFFIX`` beside the control socket (asked for on every submit, hence cached)."""
    return control_socket.with_name(f"{control_socket.name}.{suffix}")


def is_worker_suffix(text: str) -> bool:
    """Whether ``text`` names a worker socket (``w`` and a number), as an offer may."""
    number = text[len(WORKER_SUFFIX_PREFIX):]
    return (
        text.startswith(WORKER_SUFFIX_PREFIX) and 0 < len(number) <= 9 and number.isascii() and number.isdigit()
        and number[0] != "0"
    )


def trusted_uids() -> frozenset[int]:
    """Senders whose run/2 is taken as it is: root and this process's own user, who could do anything it does."""
    return frozenset({0, os.geteuid()})


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


# One unbound datagram socket serves every send of a process (and of its
# forked children: each datagram is sent whole, so sharing it is safe).
_sender: socket.socket | None = None


def send(path: Path, datagram: bytes) -> bool:
    """Send ``datagram`` to the socket at ``path`` without blocking; False if it could not be sent."""
    global _sender
    try:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
            atexit.register(_sender.close)
        _sender.sendto(datagram, str(path))
    except OSError:
        return False
    return True


def receive(receiver: socket.socket) -> tuple[bytes, int | None] | None:
    """One datagram waiting on ``receiver`` (non-blocking) and its sender's uid; None if none waits.

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


def _sender_uid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _CREDENTIALS.size:
            return int(_CREDENTIALS.unpack_from(data)[1])
    return None


Woken = dict[str, int]  # daemon -> the highest priority of the jobs a wake-up announced for it


def merge_woken(into: Woken, more: Woken) -> None:
    """Add ``more``'s wake-ups to ``into``, keeping each daemon's highest announced priority."""
    for daemon, priority in more.items():
        into[daemon] = max(priority, into.get(daemon, priority))


@dataclass
class Received:
    """What one read of a socket brought: daemons woken for, hand-offs, and how many datagrams fit neither."""

    woken: Woken = field(default_factory=dict)
    handed: list[HandedJob] = field(default_factory=list)
    ignored: int = 0


def read_datagrams(
    receiver: socket.socket, *, limit: int, trusted: frozenset[int], handoffs: bool = True, stop_at_handed: bool = False,
) -> Received:
    """Read up to ``limit`` datagrams waiting on ``receiver`` (never blocks).

    ``handoffs`` False: ``run`` datagrams are ignored like any garbage (the
    hand-off is switched off). ``stop_at_handed``: stop after a hand-off, so
    its job starts one system call sooner; the rest is read on the next call.
    """
    received = Received()
    for _ in range(limit):
        one = receive(receiver)
        if one is None:
            break
        datagram, sender = one
        handed = parse_handed(datagram, sender in trusted) if handoffs else None
        if handed is not None:
            received.handed.append(handed)
            if stop_at_handed:
                break
            continue
        wake = decode(datagram)
        if wake is None:
            received.ignored += 1
            log.debug("ignored a malformed datagram (%s bytes)", len(datagram))
        else:
            merge_woken(received.woken, {wake[0]: wake[1]})
    return received


def announce(control_socket: Path, daemon: str, priority: int = 0) -> None:
    """Tell the master serving ``control_socket`` that a job of ``daemon`` (of ``priority``) is waiting.

    With no master, a master that cannot keep up, or no permission, the job
    simply waits for the next poll.
    """
    try:
        send(path_beside(control_socket, WAKE_SUFFIX), encode(daemon, priority))
    except UnicodeEncodeError:
        pass  # not a daemon name any master has


class WakeSocket:
    """The master's own socket: wake-ups and hand-offs from submits, read when the loop finds it readable."""

    def __init__(self, control_socket: Path, *, handoffs: bool = True) -> None:
        self.path = path_beside(control_socket, WAKE_SUFFIX)
        self.handoffs = handoffs  # False: run datagrams are ignored (the hand-off is switched off)
        self.ignored = 0  # datagrams that were neither a wake-up nor a hand-off
        self.handed: list[HandedJob] = []  # hand-offs received, until the master takes them
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

    def take(self, *, everything: bool = False) -> Woken:
        """The daemons named by the wake-ups received since the last call; hand-offs collect in ``handed``.

        Stops at the first hand-off unless ``everything`` (a stopping master reads what is left).
        """
        if self._socket is None:
            return {}
        limit = MAX_DATAGRAMS_PER_TAKE * (MAX_DATAGRAMS_PER_TAKE if everything else 1)
        received = read_datagrams(
            self._socket, limit=limit, trusted=self.trusted_uids, handoffs=self.handoffs, stop_at_handed=not everything,
        )
        self.handed.extend(received.handed)
        self.ignored += received.ignored
        return received.woken

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
