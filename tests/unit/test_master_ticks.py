"""A due schedule tick on the master: its jobs are created claimed and reach free workers in the same turn.

The fake launcher and a SQLite file, as in ``test_master_dispatch``; the
ticker reads a manual UTC clock.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobd.master import Master
from jobd.schedules import parse_schedule_text
from jobd.states import JobState
from jobd.workers import protocol

from .fakes import UNREACHABLE_SOCKET, FakeLauncher, ManualClock
from .test_master_dispatch import built_master, ready_pool

ENTRIES = 10


class WallClock:
    """The ticker's UTC clock, moved by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=1)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def master(tmp_path: Path, launcher: FakeLauncher, clock: ManualClock) -> Iterator[Master]:
    with built_master(tmp_path, launcher, clock, "t.tick") as built:
        built.store.masters.register(built.id, pid=os.getpid(), version="test", daemons=["main"], control_socket=str(UNREACHABLE_SOCKET))
        built.create_pool("main", built.config.daemons["main"])
        text = "".join(f'[entries.e{n:02d}]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\n' for n in range(ENTRIES))
        built.ticker.set_schedule(parse_schedule_text(text, "ticks.toml", "UTC"))
        yield built


def test_a_due_tick_reaches_the_free_workers_in_its_own_turn_and_the_rest_waits_in_the_queue(
    master: Master, launcher: FakeLauncher,
) -> None:
    pool, workers = ready_pool(master)
    wall = WallClock()
    master.ticker.clock = wall
    master.periodic.tick()  # new entries: their history starts now, nothing fires
    assert master.ticker.seconds_until_due() == pytest.approx(1.0)

    wall.now += dt.timedelta(seconds=1)
    master.periodic.tick()

    handed = [m for worker in workers for m in launcher.workers[worker.pid].read() if isinstance(m, protocol.RunJob)]
    assert len(handed) == 2, "each free worker got a tick's job without a claim"
    running = master.store.jobs.list(states=[JobState.RUNNING])
    assert len(running) == 2 + 3 and all(job.owner == master.id and job.attempts == 1 for job in running)
    assert all(job.started_at == job.created_at for job in running), "claimed as they were created, not by a later claim"
    assert pool.waiting == 3 and master.dispatcher.claim_requested is False, "enough waits: no claim yet"
    assert len(master.store.jobs.list(states=[JobState.QUEUED])) == ENTRIES - 5, "the rest wait in the queue"
    assert master.ticker.seconds_until_due() == pytest.approx(1.0), "the next tick is planned after the hand-over"


def test_a_master_that_may_not_start_jobs_leaves_every_tick_in_the_queue(master: Master, launcher: FakeLauncher) -> None:
    ready_pool(master)
    wall = WallClock()
    master.ticker.clock = wall
    master.periodic.tick()
    wall.now += dt.timedelta(seconds=1)
    master.lease_lost = True

    master.periodic.tick()

    assert master.ticker.fired == ENTRIES
    assert len(master.store.jobs.list(states=[JobState.QUEUED])) == ENTRIES
    assert master.pools["main"].waiting == 0
