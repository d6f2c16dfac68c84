"""The live snapshot's job counts: read in a thread, never on the master loop's turn."""

from __future__ import annotations

import threading

from jobd.master.job_counts import BackgroundCounts

from .fakes import ManualClock


def test_stale_counts_are_shown_while_fresh_ones_are_read_in_the_background(clock: ManualClock) -> None:
    reads = iter([{"main": {"queued": 1_000_000}}, {"main": {"queued": 999_000}}])
    release = threading.Event()
    read_in: list[str] = []

    def read() -> dict[str, dict[str, int]]:
        read_in.append(threading.current_thread().name)
        release.wait(10)
        return next(reads)

    counts = BackgroundCounts(read, clock)
    assert counts.get(max_age=5) is None  # nothing read yet: a read starts, the caller does not wait for it
    release.set()
    counts._reading.join(10)  # type: ignore[union-attr]
    assert counts.get(max_age=5) == {"main": {"queued": 1_000_000}}
    assert read_in == ["jobd-job-counts"]

    release.clear()
    clock.advance(6)
    assert counts.get(max_age=5) == {"main": {"queued": 1_000_000}}  # stale, shown while the next read runs
    release.set()
    counts._reading.join(10)  # type: ignore[union-attr]
    assert counts.get(max_age=5) == {"main": {"queued": 999_000}}


def test_a_failed_read_keeps_the_last_counts(clock: ManualClock) -> None:
    def read() -> dict[str, dict[str, int]]:
        raise OSError("the store is down")

    counts = BackgroundCounts(read, clock)
    counts.store({"main": {"running": 2}})
    clock.advance(6)
    assert counts.get(max_age=5) == {"main": {"running": 2}}
    counts._reading.join(10)  # type: ignore[union-attr]
    assert counts.get(max_age=5) == {"main": {"running": 2}}
