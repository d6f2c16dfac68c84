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
MAX_DATAGRAM_BYTES = 128  # the prefix and a daemon name (at most 64 characters) fit with room to spare
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


def announce(control_socket: Path, daemon: str) -> None:
    """Tell the master serving ``control_socket`` that a job of ``daemon`` is waiting.

    Fire-and-forget and never blocking: with no master, a master that cannot
    keep up, or no permission, the job simply waits for the next poll.
    """
    global _sender
    try:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
            atexit.register(_sender.close)
        _sender.sendto(encode(daemon), _address(control_socket))
    except (OSError, UnicodeEncodeError):
        pass


# One unbound datagram socket serves every announce of a process (and of its
# forked children: each datagram is sent whole, so sharing it is safe).
_sender: socket.socket | None = None


class WakeSocket:
    """The master's end: a non-blocking datagram socket the loop waits on (``fileno``) and drains (``take``)."""

    def __init__(self, control_socket: Path) -> None:
        self.path = wake_socket_path(control_socket)
        self.ignored = 0  # datagrams that were not well-formed wake-ups
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
        """The daemons named by the wake-ups received since the last call (never blocks)."""
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
            name = decode(datagram)
            if name is None:
                self.ignored += 1
                log.debug("ignored a malformed wake-up datagram (%s bytes)", len(datagram))
            else:
                woken.add(name)
        return woken

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
