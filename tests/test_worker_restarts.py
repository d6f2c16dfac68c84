"""When a dead worker is replaced: at once unless workers cannot get going (pure, on a given clock)."""

from __future__ import annotations

import signal

from jobd.workers.restarts import RestartState, WorkerDeath, after_death

BASE, MAXIMUM, STABLE = 0.5, 30.0, 10.0


def died(state: RestartState, death: WorkerDeath, now: float) -> RestartState:
    return after_death(state, death, now, base=BASE, maximum=MAXIMUM, stable_after=STABLE)


def killed(signum: int, *, ready: bool = True, ran_jobs: bool = False, lived: float = 1.0) -> WorkerDeath:
    return WorkerDeath(lived=lived, ready=ready, ran_jobs=ran_jobs, exit_code=-signum)


def exited(code: int, *, ready: bool = False, ran_jobs: bool = False, lived: float = 0.2) -> WorkerDeath:
    return WorkerDeath(lived=lived, ready=ready, ran_jobs=ran_jobs, exit_code=code)


def test_a_storm_of_outside_kills_of_ready_workers_never_delays_a_replacement() -> None:
    state, now = RestartState(), 100.0
    for _ in range(50):  # one kill -9 every 0.5 s, idle or busy workers alike
        now += 0.5
        state = died(state, killed(signal.SIGKILL, ran_jobs=now % 1 == 0, lived=0.5), now)
        assert state.spawn_at <= now and state.crash_streak == 0


def test_a_worker_that_crashes_in_a_job_is_replaced_at_once() -> None:
    for death in (exited(0, ready=True, ran_jobs=True), killed(signal.SIGSEGV, ran_jobs=True), exited(7, ready=True, ran_jobs=True)):
        state = died(RestartState(crash_streak=4, spawn_at=0.0), death, now=50.0)
        assert state == RestartState(crash_streak=0, spawn_at=0.0)


def test_workers_that_cannot_start_back_off_doubling_up_to_the_cap() -> None:
    state, now, delays = RestartState(), 0.0, []
    for _ in range(9):
        state = died(state, exited(3), now)
        delays.append(round(state.spawn_at - now, 6))
        now = state.spawn_at + 0.2  # the next one starts when allowed and dies 0.2 s later
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_ready_worker_that_exits_on_its_own_before_any_job_backs_off_too() -> None:
    state = died(RestartState(), exited(1, ready=True), now=10.0)
    state = died(state, killed(signal.SIGABRT, ready=True), now=10.8)
    assert state.crash_streak == 2 and state.spawn_at == 10.8 + 0.5


def test_an_outside_kill_during_start_counts_as_a_failed_start_after_one_quick_retry() -> None:
    """The OOM killer at import time looks like this: restarting at once every time would loop."""
    state = died(RestartState(), killed(signal.SIGKILL, ready=False, lived=0.1), now=5.0)
    assert state == RestartState(crash_streak=1, spawn_at=5.0)
    state = died(state, killed(signal.SIGKILL, ready=False, lived=0.1), now=5.2)
    assert state == RestartState(crash_streak=2, spawn_at=5.7)


def test_a_worker_that_serves_again_ends_the_streak_and_its_pending_backoff() -> None:
    state = died(RestartState(crash_streak=5), exited(3), now=0.0)
    assert state.spawn_at == 8.0
    state = died(state, killed(signal.SIGKILL, ran_jobs=True), now=1.0)
    assert state == RestartState(crash_streak=0, spawn_at=1.0)


def test_a_worker_that_lived_long_starts_a_new_streak() -> None:
    state = died(RestartState(crash_streak=6, spawn_at=0.0), exited(1, lived=STABLE + 1), now=100.0)
    assert state == RestartState(crash_streak=1, spawn_at=100.0)
