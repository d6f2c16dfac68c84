"""Signals are recorded, not handled: the handler notes the signal and wakes the loop.

The master loop asks ``SignalReceiver.take()`` what arrived and acts on it in
its own time, so no handler ever runs supervision code halfway through
another step.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class WakePipe:
    """A non-blocking pipe whose read end wakes ``select``; writes never block."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def wake(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups: the loop will wake anyway

    def clear(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class SignalReceiver:
    """Records SIGTERM, SIGINT and SIGHUP for the master loop."""

    def __init__(self, wake_pipe: WakePipe) -> None:
        self._pending: list[int] = []
        self._wake_pipe = wake_pipe
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self.receive)
        signal.set_wakeup_fd(self._wake_pipe.write_fd, warn_on_full_buffer=False)

    def uninstall(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def receive(self, signum: int, _frame: FrameType | None = None) -> None:
        """The signal handler (and what tests call directly)."""
        self._pending.append(signum)

    def take(self) -> list[int]:
        pending, self._pending = self._pending, []
        return pending
