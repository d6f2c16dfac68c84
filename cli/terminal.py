"""Single keys from the terminal without Enter, and the terminal given back as it was.

``KeyReader`` puts the tty in cbreak mode (keys arrive one by one, not
echoed; Ctrl-C still raises KeyboardInterrupt) and restores the saved
termios settings on exit, however the dashboard ends. Without a tty (stdin
is a pipe or /dev/null) it reads nothing and just waits out the timeout.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any


class KeyReader:
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdin
        self.fd: int | None = None
        self.saved: list[Any] | None = None
        self.pending = ""  # keys read together (typed fast, or a busy machine) and not yet handed out

    def __enter__(self) -> "KeyReader":
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        if os.isatty(fd):
            self.fd = fd
            self.saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def read(self, timeout: float) -> str | None:
        """The next key pressed within ``timeout`` seconds, '' at end of input, or None.

        One read may bring several keys: each is handed out in turn, none dropped.
        """
        if self.pending:
            key, self.pending = self.pending[0], self.pending[1:]
            return key
        if self.fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 32)
        if not data:
            return ""
        text = data.decode(errors="replace")
        key, self.pending = text[0], text[1:]
        return key

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
