"""Who may give a worker its next job: the master over the pipe, or a submit over the worker's socket.

A ``Gate`` in shared memory decides, under a lock, which one holds the
worker: the master takes it for every job it hands over and gives it back
when the worker holds none of its jobs; the worker takes it for a submit's
job and gives it back when that job ends. So a submit's job never waits
behind the master's, and the master never queues a job behind one it has
not heard of yet.
"""

from __future__ import annotations

from multiprocessing.context import BaseContext

from .. import defaults

FREE, MASTER, DIRECT = 0, 1, 2  # who holds a worker: nobody, the master's jobs, a submit's job
_HOLDER, _CLOSED = 0, 1  # the gate's two shared cells


class Gate:
    """Shared by the master and one worker: who may give the worker its next job.

    A lock (a POSIX semaphore) guards two bytes of shared memory: the holder
    and whether submits are shut out for good (the worker is retiring). A
    take waits at most a few milliseconds for the lock: the other side holds
    it for a few instructions, so a longer wait means it died holding it,
    and the worker is about to be replaced.
    """

    def __init__(self, context: BaseContext) -> None:
        self._lock = context.Lock()
        self._cells = context.RawArray("b", 2)

    def take(self, holder: int) -> bool:
        """Hold the worker for ``holder``; False if the other holds it (or, for a submit, it is closed)."""
        if not self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            return False
        try:
            held = self._cells[_HOLDER]
            if held not in (FREE, holder) or (holder == DIRECT and self._cells[_CLOSED]):
                return False
            self._cells[_HOLDER] = holder
            return True
        finally:
            self._lock.release()

    def release(self, holder: int) -> None:
        """Let the worker go, if ``holder`` holds it."""
        if self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            try:
                if self._cells[_HOLDER] == holder:
                    self._cells[_HOLDER] = FREE
            finally:
                self._lock.release()

    def close(self) -> None:
        """No more submits' jobs for this worker (it is retiring); the master may still give it jobs."""
        if self._lock.acquire(timeout=defaults.DIRECT_GATE_LOCK_SECONDS):
            try:
                self._cells[_CLOSED] = 1
            finally:
                self._lock.release()

    @property
    def holder(self) -> int:
        return int(self._cells[_HOLDER])

    @property
    def closed(self) -> bool:
        return bool(self._cells[_CLOSED])
