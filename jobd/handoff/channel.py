"""A worker's own hand-off socket and gate: bound by the master, shared with the worker it spawns.

A hand-off to the master still costs the master's wake-up and its loop
before the worker is told over its pipe: two process wake-ups after the
submit returns. So each worker also has a datagram socket of its own beside
the control socket (``SOCKET.wN``, 0660), which the master's offer names.
The worker reads it while it waits for work (``worker_side``); while the
master knows the worker busy, the master reads it itself (it holds the same
socket), and after the worker exits it reads what is left, so a datagram is
never stranded.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path

from .. import defaults
from ..unix_sockets import prepare_path
from ..workers.protocol import HandedJob
from .gate import Gate
from .sockets import WORKER_SUFFIX_PREFIX, is_worker_suffix, listening_socket, path_beside, read_datagrams, trusted_uids

log = logging.getLogger("jobd.direct")

_numbers = itertools.count(1)  # worker socket names, unique within a master


@dataclass
class Channel:
    """A worker's own hand-off socket (bound by the master, shared with the worker) and its gate."""

    suffix: str  # the socket is SOCKET.SUFFIX, beside the control socket; the offer names it so
    path: Path
    socket: socket.socket
    gate: Gate

    def fileno(self) -> int:
        return self.socket.fileno()

    def drain(self) -> list[HandedJob]:
        """Every hand-off waiting on the socket now (the master's side: the worker is busy or gone)."""
        received = read_datagrams(self.socket, limit=defaults.MAX_DIRECT_DATAGRAMS_PER_READ, trusted=trusted_uids())
        return received.handed  # anything else is ignored, as on the master's wake socket

    def close(self) -> None:
        """Close the master's end and remove the socket's name (the worker is gone)."""
        self.socket.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def open_channel(control_socket: Path, context: BaseContext) -> Channel | None:
    """A new worker's channel, or None if it cannot have one (the worker is then fed by the master alone)."""
    suffix = f"{WORKER_SUFFIX_PREFIX}{next(_numbers)}"
    path = path_beside(control_socket, suffix)
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
    prefix = f"{control_socket.name}.{WORKER_SUFFIX_PREFIX}"
    try:
        names = [name for name in os.listdir(folder) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        if is_worker_suffix(name[len(control_socket.name) + 1:]):
            try:
                prepare_path(folder / name, socket.SOCK_DGRAM, "in use")
            except Exception:
                log.debug("left %s in place", folder / name, exc_info=True)
