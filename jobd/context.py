"""What a running task sees of jobd: its ``ctx``.

A task is called as ``function(ctx, **args)``. Through ``ctx`` it reports
progress (cheap: throttled), saves checkpoints (durable: in the store when
the call returns, so a retry after any crash resumes from there), logs with
its job id attached, notices when an operator cancelled it, and notices
when its worker is stopping (``ctx.stopping``: the master drains, or the
worker is retired), so a long task can save its place and yield the job back
to the queue (``ctx.stop_early``) instead of being cut off at the drain
timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from . import defaults
from .errors import JobdError
from .trailing import Flusher, TrailingThrottle

_Call = tuple[float, float | None, str | None, float]  # done, total, message, when it was made


class Cancelled(JobdError):
    """Raised by ``ctx.raise_if_cancelled()`` when an operator cancelled the job."""


class StopEarly(JobdError):
    """Raised by ``ctx.stop_early()``: the job goes back to the queue, its attempt given back."""


class ProgressSink(Protocol):
    """Where a task's progress reports go (the worker's pipe to the master, ``activity.progress.JobProgress``)."""

    def report(self, job_id: int, progress: dict[str, Any]) -> None: ...


class CheckpointSink(Protocol):
    def save(self, job_id: int, attempt: int, state: Any) -> bool: ...


@dataclass(frozen=True)
class Progress:
    """One progress report of a running job (display data)."""

    done: float
    total: float | None
    message: str | None
    started_at: float
    updated_at: float

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.done / self.total))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the average rate so far; None until there is a rate."""
        if not self.total or self.done <= 0 or self.done >= self.total:
            return None
        elapsed = self.updated_at - self.started_at
        return elapsed / self.done * (self.total - self.done)

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "message": self.message,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "eta_seconds": self.eta_seconds,
        }


class TaskContext:
    """The ``ctx`` argument of every task."""

    def __init__(
        self,
        *,
        job_id: int,
        attempt: int,
        daemon: str,
        task: str,
        last_checkpoint: Any,
        progress_sink: ProgressSink,
        checkpoint_sink: CheckpointSink,
        is_cancelled: Callable[[], bool],
        is_stopping: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
        progress_interval: float = defaults.PROGRESS_SEND_INTERVAL_SECONDS,
        flusher: Flusher | None = None,
        batch: Any = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.daemon = daemon
        self.task = task
        self.last_checkpoint = last_checkpoint
        self.batch = batch  # the batch this job is a member of (``batch.submit(...)`` adds to it), else None
        self.logger = logging.getLogger(f"jobd.task.{task}")
        self._progress_sink = progress_sink
        self._checkpoint_sink = checkpoint_sink
        self._is_cancelled = is_cancelled
        self._is_stopping = is_stopping
        self._clock = clock
        self._started_at = clock()
        self._throttle: TrailingThrottle[_Call] = TrailingThrottle(progress_interval)
        self._flusher = flusher  # sends a held-back report when its window ends; None: only a later call does
        self._flush_scheduled = False
        self._lock = threading.Lock()  # the flusher's thread sends too
        self._finished_sent = False

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far the job has got. Call it as often as you like; it is throttled.

        A report inside the throttle window is not lost: the latest one goes
        out when the window ends, even if the task makes no further call.
        """
        # The final report always goes out (a finished bar must not stick at
        # 99%), but only once: a loop calling progress(n, n) is throttled too.
        now = self._clock()
        with self._lock:
            finished = total is not None and done >= total and not self._finished_sent
            call = self._throttle.offer((done, total, message, now), now, force=finished)
            if call is not None:
                self._send(call)
            else:
                self._schedule_flush(now)

    def close(self) -> None:
        """The job ended: a report still held back is dropped, never sent after the job's outcome."""
        with self._lock:
            self._throttle.close()

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            now = self._clock()
            call = self._throttle.due(now)
            if call is not None:
                self._send(call)
            else:
                self._schedule_flush(now)  # not due yet by our clock (or nothing held back: a no-op)

    def _schedule_flush(self, now: float) -> None:
        due = self._throttle.next_due()
        if self._flusher is None or self._flush_scheduled or due is None:
            return
        self._flush_scheduled = True
        self._flusher.schedule(due - now, self._flush)

    def _send(self, call: _Call) -> None:
        done, total, message, when = call
        self._finished_sent = total is not None and done >= total
        report = Progress(done, total, message, self._started_at, when)
        try:
            self._progress_sink.report(self.job_id, report.to_dict())
        except Exception:  # progress is display data: never fail a job over it
            self.logger.debug("progress report dropped", exc_info=True)

    def checkpoint(self, state: Any) -> None:
        """Durably save ``state`` (JSON); a retry of this job gets it as ``ctx.last_checkpoint``."""
        if not self._checkpoint_sink.save(self.job_id, self.attempt, state):
            raise Cancelled(f"job {self.job_id} attempt {self.attempt} no longer runs here")
        self.last_checkpoint = state

    @property
    def cancelled(self) -> bool:
        """True once an operator cancelled this job; stop soon and return."""
        return self._is_cancelled()

    def raise_if_cancelled(self) -> None:
        if self._is_cancelled():
            raise Cancelled(f"job {self.job_id} was cancelled")

    @property
    def stopping(self) -> bool:
        """True once this worker is on its way out: the master drains (``jobd stop``, SIGTERM) or retires it.

        A task that runs long should look at it between units of work and,
        when it is set, save its place and call ``ctx.stop_early(state)``;
        one that ignores it keeps running until the drain timeout.
        """
        return self._is_stopping()

    def stop_early(self, state: Any = None, *, save: bool = True) -> NoReturn:
        """Save ``state`` as the checkpoint and hand the job back to the queue; never returns.

        The job is queued again with this attempt given back, and the next
        run (on whichever worker or master claims it) starts with
        ``ctx.last_checkpoint == state``. ``save=False`` keeps the checkpoint
        already saved. Only for a worker that is stopping: a job that yielded
        while nothing asked it to would be claimed again at once, forever.
        """
        if not self._is_stopping():
            raise JobdError(f"job {self.job_id}: ctx.stop_early() is for a stopping worker; check ctx.stopping first")
        if save:
            self.checkpoint(state)
        raise StopEarly(f"job {self.job_id} yielded to a stop")
