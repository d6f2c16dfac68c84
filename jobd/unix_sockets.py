"""The master's Unix sockets (control and wake-up): born with restrictive rights, and
what a killed master left behind cleared before binding.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import defaults
from .errors import MasterAlreadyRunning


def prepare_path(path: Path, kind: socket.SocketKind, in_use: str) -> None:
    """Make ``path``'s folder and remove a socket nobody serves any more.

    ``in_use`` is the error raised (as ``MasterAlreadyRunning``) when a live
    master still answers there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody serves it: left over from a crash (or not a socket at all)
        return
    finally:
        probe.close()
    raise MasterAlreadyRunning(in_use)


@contextmanager
def born_private(path: Path) -> Iterator[None]:
    """Bind inside this block: the socket is born 0660 (no window with wider rights), then set to the mode."""
    old_umask = os.umask(0o117)
    try:
        yield
    finally:
        os.umask(old_umask)
    os.chmod(path, defaults.CONTROL_SOCKET_MODE)
