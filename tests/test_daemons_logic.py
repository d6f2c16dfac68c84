"""Pure daemon-management logic: run states, desired size, rolling restart steps, /proc parsing."""

from __future__ import annotations

import pytest

from jobd.config import DaemonConfig
from jobd.daemons.plan import DaemonState, Desired, WorkerView, change_daemon_state, default_desired, rolling_step
from jobd.errors import InvalidTransition
from jobd.observability.procstats import ProcessSample, cpu_percent, parse_cpu_seconds, parse_rss_bytes
from jobd.workers.states import WorkerState

IDLE, BUSY, STARTING, STOPPING = WorkerState.IDLE, WorkerState.BUSY, WorkerState.STARTING, WorkerState.STOPPING


def views(*states: tuple[int, WorkerState]) -> list[WorkerView]:
    return [WorkerView(pid, state) for pid, state in states]


def test_a_stopped_daemon_is_started_again_only_through_started() -> None:
    assert change_daemon_state(DaemonState.STOPPING, DaemonState.STARTED) is DaemonState.STARTED
    with pytest.raises(InvalidTransition, match="from started to stopped"):
        change_daemon_state(DaemonState.STARTED, DaemonState.STOPPED)


def test_desired_size_follows_the_config_until_scaled_and_is_zero_when_stopped() -> None:
    settings = DaemonConfig(workers=3)
    assert Desired(running=True).size(settings) == 3
    assert Desired(running=True, workers=5).size(settings) == 5
    assert Desired(running=False, workers=5).size(settings) == 0
    assert default_desired(DaemonConfig(enabled=False)).running is False


def test_rolling_restart_starts_a_new_worker_before_retiring_an_old_one() -> None:
    old = frozenset({1, 2})
    step = rolling_step(views((1, IDLE), (2, IDLE)), old, target=2)
    assert step == rolling_step(views((1, IDLE), (2, IDLE), (3, STARTING)), old, target=2)
    assert step.pool_size == 3 and step.retire == () and not step.done
    ready = rolling_step(views((1, IDLE), (2, IDLE), (3, IDLE)), old, target=2)
    assert ready.retire == (1,), "one old worker at a time, once the new one is ready"


def test_rolling_restart_never_interrupts_a_busy_old_worker() -> None:
    old = frozenset({1, 2})
    step = rolling_step(views((1, BUSY), (2, BUSY), (3, IDLE)), old, target=2)
    assert step.retire == () and step.pool_size == 3
    assert rolling_step(views((1, IDLE), (2, BUSY), (3, BUSY)), old, target=2).retire == (1,)


def test_rolling_restart_stalls_while_new_workers_cannot_start() -> None:
    old = frozenset({1})
    assert rolling_step(views((1, IDLE)), old, target=1).retire == ()  # the new one crashed and is gone
    assert rolling_step(views((1, IDLE), (4, STARTING)), old, target=1).retire == ()


def test_rolling_restart_is_done_when_no_old_worker_serves() -> None:
    step = rolling_step(views((1, STOPPING), (3, IDLE), (4, BUSY)), frozenset({1, 2}), target=2)
    assert step.done and step.pool_size == 2


def test_proc_stat_fields_are_counted_after_the_last_parenthesis() -> None:
    fields = " ".join(["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 30)
    assert parse_cpu_seconds(f"42 (jobd (worker) x) {fields}", clock_ticks=100) == 4.0
    assert parse_rss_bytes("1000 256 20 1 0 100 0", page_size=4096) == 1024 * 1024


def test_cpu_percent_is_over_the_last_interval_or_the_whole_life() -> None:
    first = ProcessSample(cpu_seconds=1.0, rss_bytes=0, taken_at=10.0)
    later = ProcessSample(cpu_seconds=1.5, rss_bytes=0, taken_at=11.0)
    assert cpu_percent(first, later, lifetime=20.0) == 50.0
    assert cpu_percent(None, first, lifetime=4.0) == 25.0
