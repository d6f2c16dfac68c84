"""The charts' last hour: the per-minute queue-depth ring (injected clock), minute points, and the store's query."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jobd import defaults
from jobd.activity import MemoryActivity
from jobd.activity.base import bucket_of
from jobd.activity.history import finished_points, last_hour, queued_points
from jobd.activity.recorder import ActivityRecorder
from jobd.config import parse_config
from jobd.dashboard import view_from_store
from jobd.states import JobState
from jobd.store import NewJob, Store

MINUTE = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingActivity(MemoryActivity):
    """The master's memory activity, counting the queue-depth writes it gets."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.queued_writes = 0

    def record_queued(self, bucket: int, queued: dict[str, int]) -> None:
        self.queued_writes += 1
        super().record_queued(bucket, queued)


def snapshot(queued: int, scheduled: int = 0) -> dict[str, Any]:
    return {"master": {"id": "m"}, "daemons": {"main": {"workers": [], "counts": {"queued": queued, "scheduled": scheduled}},
                                              "other": {"workers": [], "counts": {"queued": 1}}}}


def test_the_master_writes_queue_depth_once_a_minute_into_a_ring_that_holds_the_last_hour() -> None:
    clock = Clock(T0)
    shared = CountingActivity(clock)
    recorder = ActivityRecorder("m", shared, clock=clock, wall_clock=clock)
    for second in range(0, 90 * MINUTE, 1):  # 90 minutes of once-a-second snapshots
        clock.now = T0 + second
        recorder.publish(snapshot(queued=second // MINUTE, scheduled=2))
    assert shared.queued_writes == 90, "one write per minute, however often the snapshot is published"
    assert len(shared._queued) == defaults.ACTIVITY_QUEUED_SLOTS, "the ring has a fixed number of slots"

    now = clock.now
    points = queued_points(shared.queued_history(list(range(bucket_of(now) - 60, bucket_of(now) + 1))), now)
    assert len(points) == 61, "every minute of the last hour, this one included"
    assert points[-1] == [float(bucket_of(now) * MINUTE), 89.0 + 2 + 1], "queued + scheduled, all daemons, at the minute's start"
    assert points[0] == [float((bucket_of(now) - 60) * MINUTE), 29.0 + 2 + 1]
    only_main = queued_points(shared.queued_history([bucket_of(now)]), now, ["main"])
    assert only_main == [[float(bucket_of(now) * MINUTE), 91.0]]
    gone = bucket_of(now) - defaults.ACTIVITY_QUEUED_SLOTS  # its slot was reused by this minute
    assert recorder.local.queued_history([gone]) == {}, "a minute older than the ring is gone, not read from a reused slot"


def test_a_minute_without_counts_in_the_snapshot_is_written_by_the_next_snapshot_that_has_them() -> None:
    clock = Clock(T0 + 5)
    recorder = ActivityRecorder("m", None, clock=clock, wall_clock=clock)
    recorder.publish({"master": {"id": "m"}, "daemons": {"main": {"workers": []}}})
    assert recorder.local.queued_history([bucket_of(T0)]) == {}
    clock.now = T0 + 6
    recorder.publish(snapshot(queued=4))
    assert recorder.local.queued_history([bucket_of(T0)]) == {bucket_of(T0): {"main": 4, "other": 1}}


def test_masters_owning_different_daemons_merge_into_one_minute() -> None:
    activity = MemoryActivity(Clock(T0))
    activity.record_queued(bucket_of(T0), {"a": 1})
    activity.record_queued(bucket_of(T0), {"b": 2})
    assert activity.queued_history([bucket_of(T0)]) == {bucket_of(T0): {"a": 1, "b": 2}}
    activity.record_queued(bucket_of(T0) + defaults.ACTIVITY_QUEUED_SLOTS, {"a": 7})
    assert activity.queued_history([bucket_of(T0)]) == {}, "the slot now holds a later minute"


def test_finished_per_minute_covers_complete_minutes_from_the_first_with_data() -> None:
    now = T0 + 30  # half-way through minute T0
    current = bucket_of(now)
    points = finished_points({current - 3: 4, current - 1: 2, current: 9}, now)
    assert points == [[float((current - 2) * MINUTE), 4.0], [float((current - 1) * MINUTE), 0.0], [float(current * MINUTE), 2.0]]
    assert finished_points({current: 9}, now) == [], "the current minute is still filling up: the live samples cover it"


def test_the_last_hour_adds_succeeded_and_failed_attempts_of_every_daemon() -> None:
    clock = Clock(T0 + 30)
    activity = MemoryActivity(clock)
    activity.count("a", "succeeded", 3, T0 - 120)
    activity.count("b", "succeeded", 1, T0 - 120)
    activity.count("b", "failed", 2, T0 - 60)
    activity.count("b", "dead", 2, T0 - 60)  # counted as failed too, not twice
    activity.record_queued(bucket_of(T0 - 120), {"a": 5, "b": 1})
    found = last_hour(activity, ["a", "b"], clock.now)
    assert found == {"finished": [[T0 - 60, 4.0], [T0, 2.0]], "queued": [[T0 - 120, 6.0]]}


def test_the_store_gives_jobs_finished_per_minute_when_no_activity_answers(store: Store) -> None:
    now = time.time()
    minute = bucket_of(now) * MINUTE
    ends = {minute - 2 * MINUTE + 5: JobState.SUCCEEDED, minute - 2 * MINUTE + 50: JobState.DEAD,
            minute - MINUTE + 1: JobState.SUCCEEDED, minute - 2 * 3600: JobState.SUCCEEDED, now: JobState.SUCCEEDED}
    jobs = store.jobs.table
    for finished_at, state in ends.items():
        job_id = store.jobs.insert(NewJob("main", "t.noop", {}))
        with store.engine.begin() as connection:
            connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(state=str(state), finished_at=finished_at))
    cancelled = store.jobs.insert(NewJob("main", "t.noop", {}))
    with store.engine.begin() as connection:
        connection.execute(sa.update(jobs).where(jobs.c.id == cancelled).values(state="cancelled", finished_at=minute - MINUTE + 2))
    config = parse_config("[daemons.main]\nmodules = ['testtasks']\n", Path("/nonexistent/jobd.toml"))
    view = view_from_store(store, config, now=now, last_hour=True)
    assert view["last_hour"] == {"finished": [[float(minute - MINUTE), 2.0], [float(minute), 1.0]], "queued": []}
