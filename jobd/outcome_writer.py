"""The one writer of every job's ending: plan it, write it, then tell whoever listens.

``EndingWriter.write`` takes endings (``outcomes.Ending``), plans each with
``plan_outcome`` and writes the burst in one transaction; the store, the
master's observers (metrics, alerts), live activity and the log hear of an
ending from here and from nowhere else.

Writing so that one job's refused data never holds back the others:

The master writes a burst of outcomes in one transaction (a group commit).
If the store refuses that write because of one job's data (a value too long
for its column, text it cannot encode), retrying the same batch would fail
forever and every job behind it would wait: the whole host would stop over
one job. So a refusal that is not an outage (``store.errors``) is split up:
each outcome is written on its own, and the one the store refuses becomes a
``dead`` outcome carrying the store's reason; if even that is refused, a
fixed, minimal error. An outage (connection lost, server gone, lock timeout)
is raised for the caller to retry the whole burst later: rewriting outcomes
already written is harmless, each write only changes an attempt still
running under this owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from . import defaults
from .job import Job
from .outcomes import Ending, Limits, log_outcome, plan_outcome
from .output_caps import truncate_text
from .states import JobState
from .store.errors import describe, is_outage
from .store.jobs import JobQueue, Outcome

log = logging.getLogger("jobd.outcomes")

REFUSED_PREFIX = "the store refused this job's outcome: "
REFUSED_MINIMAL = "the store refused this job's outcome (see the master's log)"
_REASON_BYTES = 2 * 1024  # fits every store's error column, whatever max_error_bytes says


class EndingListener(Protocol):
    def job_ended(self, job: Job, ending: Ending, outcome: Outcome) -> None:
        """``job``'s attempt ended as ``ending`` and the store now holds ``outcome`` (as written)."""


class EndingWriter:
    """Writes the endings of one owner's attempts and tells the listeners, in that order."""

    def __init__(
        self, queue: JobQueue, owner: str, listeners: Sequence[EndingListener] = (), *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.owner = owner
        self.listeners = list(listeners)
        self.clock = clock

    def write(self, endings: Sequence[tuple[Job, Ending, Limits]]) -> list[Outcome]:
        """Plan and write ``endings`` in one transaction; return the outcomes as written.

        Raises the store's error only for an outage, before any listener
        heard of anything: the caller keeps the endings and writes them again.
        """
        if not endings:
            return []
        now = self.clock()
        planned = [plan_outcome(job, ending, limits, now) for job, ending, limits in endings]
        written = write_outcomes(self.queue, self.owner, planned, now)
        for (job, ending, _limits), outcome in zip(endings, written):
            log_outcome(job, ending, outcome, now)
            for listener in self.listeners:
                listener.job_ended(job, ending, outcome)
        return written


def write_outcomes(queue: JobQueue, owner: str, outcomes: Sequence[Outcome], now: float) -> list[Outcome]:
    """Write ``outcomes``; return them as written (one the store refused replaced by its ``dead`` outcome).

    Raises the store's error only for an outage (the caller retries later).
    """
    try:
        queue.apply_outcomes(owner, outcomes, now=now)
        return list(outcomes)
    except Exception as error:
        if is_outage(error) or len(outcomes) == 0:
            raise
        if len(outcomes) > 1:
            log.warning("the store refused a batch of %s outcomes (%s); writing them one by one", len(outcomes), _short(error))
    return [_write_one(lambda one: queue.apply_outcomes(owner, [one], now=now), outcome) for outcome in outcomes]


def _write_one(write: Callable[[Outcome], object], outcome: Outcome) -> Outcome:
    try:
        write(outcome)
        return outcome
    except Exception as error:
        if is_outage(error):
            raise
        log.error(
            "job %s attempt %s: the store refused its outcome (%s); the job is dead", outcome.job_id, outcome.attempt, _short(error)
        )
        dead = _dead(outcome, _refused(error))
    try:
        write(dead)
        return dead
    except Exception as error:
        if is_outage(error):
            raise
    dead = _dead(outcome, REFUSED_MINIMAL)
    write(dead)  # short fixed text: if this fails too, the store is sick, not the data (retried as an outage)
    return dead


def _dead(outcome: Outcome, error: str) -> Outcome:
    return Outcome(outcome.job_id, outcome.attempt, JobState.DEAD, {"error": error, "traceback": None, "run_at": None}, outcome.batch_id)


def _refused(error: BaseException) -> str:
    return truncate_text(REFUSED_PREFIX + describe(error), _REASON_BYTES)


def _short(error: BaseException) -> str:
    return truncate_text(describe(error), defaults.MAX_ERROR_BYTES)
