"""Pure logic: state machine, backoff, durations, retry decisions, throttling."""

from __future__ import annotations

import random

import pytest

from jobd.backoff import backoff_delay
from jobd.durations import parse_duration
from jobd.errors import InvalidTransition
from jobd.job import Job
from jobd.outcomes import Limits, retry_at
from jobd.states import FINAL, JobState, can_transition, transition
from jobd.throttle import Throttle
from jobd.workers.states import WorkerState, change_worker_state


def test_a_finished_job_never_runs_again_without_an_explicit_retry() -> None:
    assert not can_transition(JobState.SUCCEEDED, JobState.RUNNING)
    with pytest.raises(InvalidTransition, match="from dead to running"):
        transition(JobState.DEAD, JobState.RUNNING)
    assert transition("dead", "queued") is JobState.QUEUED


def test_every_final_state_is_left_only_by_retry() -> None:
    for state in FINAL:
        for target in JobState:
            if can_transition(state, target):
                assert target is JobState.QUEUED


def test_worker_states_are_guarded() -> None:
    assert change_worker_state(WorkerState.IDLE, WorkerState.BUSY) is WorkerState.BUSY
    with pytest.raises(InvalidTransition):
        change_worker_state(WorkerState.EXITED, WorkerState.IDLE)


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(attempt, base=2, maximum=30) for attempt in range(1, 7)]
    assert delays == [2, 4, 8, 16, 30, 30]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(3, base=1, maximum=100, jitter=0.2, rng=rng) for _ in range(200)]
    assert min(delays) >= 3.2 - 1e-9 and max(delays) <= 4.8 + 1e-9
    assert len(set(delays)) > 100


def test_retry_until_max_attempts_then_dead() -> None:
    limits = Limits(timeout=10, max_attempts=3, backoff_base=1, backoff_max=60)
    assert retry_at(1, limits, 100.0, rng=random.Random(1)) is not None
    assert retry_at(2, limits, 100.0, rng=random.Random(1)) is not None
    assert retry_at(3, limits, 100.0) is None
    assert retry_at(1, limits, 100.0, permanent=True) is None


def test_limits_prefer_the_job_then_the_task_then_the_daemon() -> None:
    from jobd.config import DaemonConfig
    from jobd.inventory import TaskInfo
    from jobd.tasks import TaskOptions

    daemon = DaemonConfig(timeout=60, max_attempts=5)
    job = Job(id=1, daemon="d", task="t", args={}, state=JobState.RUNNING)
    assert Limits.for_job(job, daemon, None).max_attempts == 5
    task = TaskInfo("t", TaskOptions(timeout=5, max_attempts=2))
    assert (Limits.for_job(job, daemon, task).timeout, Limits.for_job(job, daemon, task).max_attempts) == (5, 2)
    own = Job(id=1, daemon="d", task="t", args={}, state=JobState.RUNNING, max_attempts=9)
    assert Limits.for_job(own, daemon, task).max_attempts == 9


@pytest.mark.parametrize("text, seconds", [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("2d", 172800.0)])
def test_durations_as_operators_write_them(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-3", "1x", True, [1]])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_throttle_allows_once_per_interval_on_an_injected_clock() -> None:
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle.ready() and not throttle.ready()
    now[0] = 0.99
    assert not throttle.ready()
    now[0] = 1.0
    assert throttle.ready()
