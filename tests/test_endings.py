"""Every way a job ends goes through ``plan_outcome`` and the one ``EndingWriter``, on each store.

The master turns what it learns (a worker's report, a worker's death, a job
it cannot run, a job it hands back) into an ``Ending``; these tests give
the writer each kind and read back what the store holds and what a
listener heard.
"""

from __future__ import annotations

import pytest

from jobd.job import Job
from jobd.outcome_writer import EndingWriter
from jobd.outcomes import Ending, EndingKind, Limits
from jobd.output_caps import OutputCaps
from jobd.states import JobState
from jobd.store import NewJob, Store
from jobd.store.jobs import Outcome

OWNER = "m1"
NOW = 1_000.0
LIMITS = Limits(timeout=60, max_attempts=2, backoff_base=10, backoff_max=10)


class Heard:
    """A listener that records what it heard."""

    def __init__(self) -> None:
        self.endings: list[tuple[int, EndingKind, JobState]] = []

    def job_ended(self, job: Job, ending: Ending, outcome: Outcome) -> None:
        self.endings.append((job.id, ending.kind, outcome.state))


def _claimed(store: Store, **fields: object) -> Job:
    store.jobs.insert(NewJob("main", "t.record", {}, **fields), now=NOW)  # type: ignore[arg-type]
    (job,) = store.jobs.claim("main", 1, OWNER, now=NOW)
    return job


def _end(store: Store, job: Job, ending: Ending, limits: Limits = LIMITS) -> tuple[Job, Heard]:
    heard = Heard()
    EndingWriter(store.jobs, OWNER, [heard], clock=lambda: NOW).write([(job, ending, limits)])
    return store.jobs.get(job.id), heard


def test_a_success_stores_the_result_and_finishes_the_job(store: Store) -> None:
    job = _claimed(store)
    stored, heard = _end(store, job, Ending(EndingKind.SUCCEEDED, result={"sent": 3}, duration=0.5))
    assert stored.state is JobState.SUCCEEDED and stored.result == {"sent": 3} and stored.finished_at == NOW
    assert heard.endings == [(job.id, EndingKind.SUCCEEDED, JobState.SUCCEEDED)]


def test_a_result_over_its_cap_fails_the_attempt_instead(store: Store) -> None:
    job = _claimed(store)
    small = Limits(timeout=60, max_attempts=2, backoff_base=10, backoff_max=10, caps=OutputCaps(result_bytes=16))
    stored, _heard = _end(store, job, Ending(EndingKind.SUCCEEDED, result="x" * 100), small)
    assert stored.state is JobState.RETRYING and "result" in (stored.error or "")


def test_a_failure_retries_after_the_backoff_then_the_last_attempt_dies(store: Store) -> None:
    job = _claimed(store)
    stored, heard = _end(store, job, Ending(EndingKind.FAILED, error="boom", traceback="Traceback…"))
    assert stored.state is JobState.RETRYING and stored.error == "boom" and stored.traceback == "Traceback…"
    assert stored.run_at is not None and NOW + 8 <= stored.run_at <= NOW + 12 and stored.owner is None
    (again,) = store.jobs.claim("main", 1, OWNER, now=stored.run_at)
    dead, heard = _end(store, again, Ending(EndingKind.FAILED, error="boom again"))
    assert dead.state is JobState.DEAD and dead.error == "boom again" and dead.attempts == 2
    assert heard.endings == [(job.id, EndingKind.FAILED, JobState.DEAD)]


def test_a_permanent_failure_dies_at_once(store: Store) -> None:
    job = _claimed(store)
    stored, _heard = _end(store, job, Ending(EndingKind.FAILED, error="args do not fit", permanent=True))
    assert stored.state is JobState.DEAD


def test_a_cancel_finishes_the_job_cancelled_with_its_reason(store: Store) -> None:
    job = _claimed(store)
    stored, heard = _end(store, job, Ending(EndingKind.CANCELLED, error="cancelled by an operator"))
    assert stored.state is JobState.CANCELLED and stored.error == "cancelled by an operator" and stored.finished_at == NOW
    assert heard.endings == [(job.id, EndingKind.CANCELLED, JobState.CANCELLED)]


def test_a_cancel_reported_with_a_failure_counts_as_cancelled(store: Store) -> None:
    from jobd.workers.protocol import JobFinished

    job = _claimed(store)
    ending = Ending.reported(JobFinished(job.id, job.attempts, "failed", error="interrupted"), cancel_requested=True)
    stored, _heard = _end(store, job, ending)
    assert ending.kind is EndingKind.CANCELLED and stored.state is JobState.CANCELLED


@pytest.mark.parametrize("kind", [EndingKind.CRASHED, EndingKind.TIMED_OUT])
def test_a_worker_that_died_or_was_killed_for_the_timeout_is_a_failed_attempt(store: Store, kind: EndingKind) -> None:
    job = _claimed(store)
    stored, heard = _end(store, job, Ending(kind, error="worker killed by SIGKILL while running the job", duration=3.0))
    assert stored.state is JobState.RETRYING and stored.error == "worker killed by SIGKILL while running the job"
    assert stored.traceback is None and stored.attempts == 1
    assert heard.endings == [(job.id, kind, JobState.RETRYING)]


def test_a_job_that_cannot_run_dies_at_once_with_the_reason(store: Store) -> None:
    job = _claimed(store)
    stored, heard = _end(store, job, Ending(EndingKind.UNRUNNABLE, error="daemon 'main' has no task 't.record'"))
    assert stored.state is JobState.DEAD and stored.error == "daemon 'main' has no task 't.record'" and stored.attempts == 1
    assert heard.endings == [(job.id, EndingKind.UNRUNNABLE, JobState.DEAD)]


def test_a_job_whose_attempts_were_used_up_dies_without_charging_the_claim(store: Store) -> None:
    store.jobs.insert(NewJob("main", "t.record", {}, max_attempts=1), now=NOW)
    (first,) = store.jobs.claim("main", 1, OWNER, now=NOW)
    store.jobs.requeue([first.id], OWNER, refund_attempt=False)  # its master died mid-attempt: recovered, charged
    (second,) = store.jobs.claim("main", 1, OWNER, now=NOW)
    assert second.attempts == 2
    stored, _heard = _end(store, second, Ending(EndingKind.UNRUNNABLE, error="its last attempt was interrupted", charged=False))
    assert stored.state is JobState.DEAD and stored.attempts == 1


def test_a_returned_job_is_queued_again_with_its_attempt_refunded_and_its_checkpoint_kept(store: Store) -> None:
    job = _claimed(store)
    assert store.jobs.save_checkpoint(job.id, job.attempts, {"sent": 500})
    stored, heard = _end(store, job, Ending(EndingKind.RETURNED))
    assert stored.state is JobState.QUEUED and stored.attempts == 0 and stored.owner is None
    assert stored.checkpoint == {"sent": 500}
    assert heard.endings == [(job.id, EndingKind.RETURNED, JobState.QUEUED)]


def test_an_ending_for_an_attempt_the_master_no_longer_holds_changes_nothing(store: Store) -> None:
    job = _claimed(store)
    store.jobs.requeue([job.id], OWNER, refund_attempt=False)
    (taken,) = store.jobs.claim("main", 1, "m2", now=NOW)
    stored, _heard = _end(store, job, Ending(EndingKind.SUCCEEDED, result=1))
    assert stored.state is JobState.RUNNING and stored.owner == "m2" and stored.attempts == taken.attempts


def test_a_burst_of_different_endings_is_written_in_one_call(store: Store) -> None:
    jobs = [_claimed(store) for _ in range(3)]
    heard = Heard()
    endings = [Ending(EndingKind.SUCCEEDED), Ending(EndingKind.FAILED, error="x"), Ending(EndingKind.RETURNED)]
    EndingWriter(store.jobs, OWNER, [heard], clock=lambda: NOW).write([(job, e, LIMITS) for job, e in zip(jobs, endings)])
    assert [store.jobs.get(job.id).state for job in jobs] == [JobState.SUCCEEDED, JobState.RETRYING, JobState.QUEUED]
    assert [kind for _id, kind, _state in heard.endings] == [e.kind for e in endings]
