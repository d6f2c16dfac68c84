"""Waiting on the master's file descriptors with one selector kept across loop turns.

``multiprocessing.connection.wait`` builds and registers a new selector on
every call; the master waits thousands of times a second under load, so it
keeps one epoll set and re-registers only when its workers change.
"""

from __future__ import annotations

import selectors
from collections.abc import Hashable, Mapping


class Readiness:
    """Which of a changing set of file descriptors are readable."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, Hashable] = {}  # fd → its owner's token (an fd number is reused once closed)

    def wait(self, watched: Mapping[int, Hashable], timeout: float | None) -> set[int]:
        """Wait up to ``timeout`` seconds for any of ``watched`` (fd → a token of its owner, e.g. a pid).

        Returns the readable fds.
        """
        if watched != self._watched:
            self._follow(watched)
        return {key.fd for key, _events in self._selector.select(timeout)}

    def _follow(self, watched: Mapping[int, Hashable]) -> None:
        for fd, owner in list(self._watched.items()):
            if watched.get(fd) != owner:
                self._forget(fd)
        for fd, owner in watched.items():
            if fd not in self._watched:
                self._selector.register(fd, selectors.EVENT_READ)
                self._watched[fd] = owner

    def _forget(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass  # closed already: the kernel dropped it from the set
        del self._watched[fd]

    def close(self) -> None:
        self._selector.close()
        self._watched.clear()
