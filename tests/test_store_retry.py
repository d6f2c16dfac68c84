"""A starting master rides out a passing store outage (``jobd.store.retry``), and never a refused write."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from jobd.errors import StoreUnavailable
from jobd.store.retry import retry_outages


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def locked() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))


def test_a_step_that_fails_twice_with_an_outage_is_tried_until_it_succeeds() -> None:
    clock, failures = ManualClock(), [locked(), StoreUnavailable("cannot reach")]
    failures[1].__cause__ = locked()

    def step() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert retry_outages(step, what="test", within=5, clock=clock, sleep=clock.sleep) == "done"
    assert 0 < clock.now < 1


def test_an_outage_that_outlasts_the_window_is_raised() -> None:
    clock = ManualClock()

    def step() -> None:
        raise locked()

    with pytest.raises(sa.exc.OperationalError):
        retry_outages(step, what="test", within=5, clock=clock, sleep=clock.sleep)
    assert clock.now <= 5


def test_a_refused_write_or_a_plain_unavailable_store_is_raised_at_once() -> None:
    clock = ManualClock()
    refused = sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    for error in (refused, StoreUnavailable("the store is not initialised; run `jobd init`")):
        def step(error: BaseException = error) -> None:
            raise error

        with pytest.raises(type(error)):
            retry_outages(step, what="test", within=5, clock=clock, sleep=clock.sleep)
        assert clock.now == 0
