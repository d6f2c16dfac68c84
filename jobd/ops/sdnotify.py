"""The sd_notify protocol, spoken by the master itself (no libsystemd, no dependency).

Under ``Type=notify`` systemd hands the service a datagram socket in
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading
``@``) and waits for newline-separated ``KEY=VALUE`` assignments on it:
``READY=1`` ends start-up, ``RELOADING=1``/``READY=1`` bracket a reload,
``STOPPING=1`` announces a stop, ``WATCHDOG=1`` proves the main loop still
turns (with ``WatchdogSec=``, a silent service is killed and restarted), and
``STATUS=`` is the line ``systemctl status`` shows.

Outside systemd there is no socket and every call is a cheap no-op, so the
master calls the notifier unconditionally. Sending never raises: a lost
notification must not take the master down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("jobd.sdnotify")

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
MAX_STATUS_LENGTH = 200


def socket_address(name: str) -> str | bytes:
    """The ``connect`` address for a ``$NOTIFY_SOCKET`` value ('@' means the abstract namespace)."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``, or None if no watchdog is asked for.

    Half the timeout is what sd_watchdog_enabled(3) recommends: one late
    loop turn must not get a healthy master killed. ``$WATCHDOG_PID``, when
    set, names the process the watchdog is meant for; a child that inherited
    the environment must not ping on the master's behalf.
    """
    usec = environ.get(WATCHDOG_USEC_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get(WATCHDOG_PID_ENV, "")
    if owner and owner.isdigit() and int(owner) != pid:
        return None
    return int(usec) / 1_000_000 / 2


def status_line(text: str) -> str:
    """A ``STATUS=`` value: one line, bounded, so a long summary cannot break the datagram."""
    flat = " ".join(text.split())
    return flat[:MAX_STATUS_LENGTH]


class SystemdNotifier:
    """Sends sd_notify messages for the process that systemd started."""

    def __init__(
        self,
        address: str | bytes | None,
        watchdog_every: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.watchdog_every = watchdog_every
        self.clock = clock
        self._last_watchdog: float | None = None
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls, *, unset: bool = True) -> "SystemdNotifier":
        """The notifier systemd asked for; with ``unset``, the variables are removed from
        ``os.environ`` (like ``sd_notify(unset_environment=1)``) so workers and alert
        commands started later do not think they are the service."""
        name = os.environ.get(NOTIFY_SOCKET_ENV, "")
        address = socket_address(name) if name else None
        every = watchdog_interval(os.environ, os.getpid()) if address is not None else None
        if unset:
            for variable in (NOTIFY_SOCKET_ENV, WATCHDOG_USEC_ENV, WATCHDOG_PID_ENV):
                os.environ.pop(variable, None)
        return cls(address, every)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **assignments: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False if nobody listens or it failed."""
        if self.address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in assignments.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(payload, self.address)
        except OSError as error:
            log.warning("sd_notify to %r failed: %s", self.address, error)
            return False
        return True

    def ready(self, status: str | None = None) -> None:
        self.send(READY="1", **({"STATUS": status_line(status)} if status else {}))

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd ≥ 253 (Type=notify-reload) match the
        # reload with its request; older systemd ignores unknown keys.
        self.send(RELOADING="1", MONOTONIC_USEC=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))

    def stopping(self, status: str | None = None) -> None:
        self.send(STOPPING="1", **({"STATUS": status_line(status)} if status else {}))

    def status(self, text: str) -> None:
        self.send(STATUS=status_line(text))

    def watchdog_due(self) -> bool:
        if self.watchdog_every is None:
            return False
        now = self.clock()
        return self._last_watchdog is None or now - self._last_watchdog >= self.watchdog_every

    def ping_watchdog(self, status: str | None = None) -> None:
        """Send ``WATCHDOG=1`` if half the watchdog timeout has passed since the last one.

        Called from the master's loop, never from a thread: a master stuck in
        a step stops pinging, which is exactly what the watchdog is for.
        """
        if not self.watchdog_due():
            return
        self._last_watchdog = self.clock()
        self.send(WATCHDOG="1", **({"STATUS": status_line(status)} if status else {}))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
