"""The pure pieces behind outage handling: the lease guard's deadline and fence, the store's health."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from jobd.lease_guard import LeaseGuard, safety_margin
from jobd.store.health import StoreHealth, is_outage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_fence_falls_a_margin_before_the_lease_can_run_out_and_a_renewal_lifts_it() -> None:
    clock = Clock()
    guard = LeaseGuard(30.0, clock)
    assert safety_margin(30.0) == 7.5 and safety_margin(3.0) == 1.0 and safety_margin(1.0) == 0.5
    assert guard.deadline == 100.0 + 30.0 - 7.5
    assert guard.may_start(122.0) and not guard.must_fence(122.0)
    assert not guard.may_start(122.5)
    assert guard.must_fence(122.5) and not guard.must_fence(123.0)  # once per fence
    assert guard.fenced and not guard.may_start(110.0)
    assert guard.renewed(121.0) is True  # nobody declared us dead: go on
    assert not guard.fenced and guard.may_start(130.0) and guard.deadline == 121.0 + 22.5
    assert guard.renewed(90.0) is False and guard.renewed_at == 121.0  # an older heartbeat never moves it back


def test_the_guards_thread_kills_at_the_deadline_even_if_the_loop_never_looks() -> None:
    killed = threading.Event()
    guard = LeaseGuard(0.4)  # margin 0.2 s: the thread fires 0.2 s after the start
    guard.start(killed.set)
    try:
        assert killed.wait(timeout=5)
        assert guard.fenced and guard.must_fence(guard.clock())  # the loop then does its part, once
    finally:
        guard.stop()


def test_a_down_store_is_tried_again_only_after_its_probe_answers() -> None:
    answer = threading.Event()

    def probe() -> None:
        if not answer.is_set():
            raise OSError("still down")

    health = StoreHealth(probe, retry_interval=0.01)
    import pymysql

    error = sa.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2013, "Lost connection"))
    assert is_outage(error)
    assert health.failed(error) is True and not health.available and not health.may_try()
    assert health.failed(error) is False and health.outage is not None and health.outage.failures == 2
    assert health.to_dict()["available"] is False and "Lost connection" in health.to_dict()["error"]
    answer.set()
    deadline = threading.Event()
    for _ in range(500):
        if health.may_try():
            break
        deadline.wait(0.01)
    assert health.may_try()
    ended = health.succeeded()
    assert ended is not None and health.available and health.to_dict()["available"] is True
    health.stop()


def test_what_the_master_treats_as_an_outage() -> None:
    import sqlite3

    import pymysql

    assert not is_outage(sa.exc.IntegrityError("INSERT", {}, pymysql.err.IntegrityError(1062, "Duplicate entry")))
    assert not is_outage(sa.exc.DataError("INSERT", {}, pymysql.err.DataError(1406, "Data too long for column 'error'")))
    assert is_outage(sa.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2013, "Lost connection")))
    assert is_outage(sa.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked")))
