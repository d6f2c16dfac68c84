"""Rate limits held in the store: every backend, several masters (Store objects) claiming at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from jobd.concurrency_caps import ConcurrencyCaps
from jobd.rate_limits import Rate, RateLimits
from jobd.states import JobState
from jobd.store import SCHEMA_VERSION, NewJob, Store, open_store

T0 = 1_000_000.0
PER_SECOND = RateLimits(daemon=Rate(per_second=5.0, burst=5.0))


@pytest.fixture
def store(store_both_ways: Store) -> Store:
    """Every test here runs on the store through SQLAlchemy and the master's way, through the driver."""
    return store_both_ways


def submit(store: Store, count: int, task: str = "t.send") -> list[int]:
    return [store.jobs.insert(NewJob("main", task, {}), now=T0 - 10) for _ in range(count)]


@pytest.fixture
def masters(store: Store, store_url: str) -> Iterator[list[Store]]:
    """Three stores on one database, standing for three masters on three hosts."""
    others = [open_store(store_url) for _ in range(2)]
    yield [store, *others]
    for other in others:
        other.dispose()


def test_a_claim_takes_at_most_the_burst_and_leaves_the_rest_queued(store: Store) -> None:
    ids = submit(store, 12)
    claimed = store.jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND)
    assert [job.id for job in claimed] == ids[:5]
    assert store.jobs.counts()["main"] == {"running": 5, "queued": 7}
    assert store.jobs.next_token_at("main") == pytest.approx(T0 + 1.0)  # a token at T0 + 0.2, but this second is full


def test_tokens_come_back_at_the_rate_and_each_second_starts_at_most_the_burst(store: Store) -> None:
    limits = RateLimits(daemon=Rate(per_second=5.0, burst=10.0))
    submit(store, 30)
    assert len(store.jobs.claim("main", 100, "m1", now=T0, rates=limits)) == 10
    assert store.jobs.claim("main", 100, "m1", now=T0 + 0.5, rates=limits) == []  # 2.5 tokens, no room
    assert len(store.jobs.claim("main", 100, "m1", now=T0 + 1.0, rates=limits)) == 5
    assert len(store.jobs.claim("main", 100, "m1", now=T0 + 1.3, rates=limits)) == 1
    assert store.jobs.next_token_at("main") == pytest.approx(T0 + 1.4)


def test_an_empty_queue_leaves_no_wait(store: Store) -> None:
    submit(store, 3)
    assert len(store.jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND)) == 3
    assert store.jobs.next_token_at("main") is None


def test_a_task_limit_holds_only_that_task(store: Store) -> None:
    limits = RateLimits(tasks={"t.send": Rate(per_second=1.0, burst=2.0)})
    submit(store, 4, "t.send")
    reports = submit(store, 3, "t.report")
    claimed = store.jobs.claim("main", 100, "m1", now=T0, rates=limits)
    assert sorted(job.task for job in claimed) == ["t.report"] * 3 + ["t.send"] * 2
    assert {job.id for job in claimed} >= set(reports)
    assert store.jobs.next_token_at("main") == pytest.approx(T0 + 1.0)


def test_rates_and_concurrency_caps_both_hold(store: Store) -> None:
    submit(store, 10)
    claimed = store.jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND, caps=ConcurrencyCaps(daemon=3))
    assert len(claimed) == 3  # the cap, though the bucket holds 5
    assert len(store.jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND)) == 2  # the tokens the cap left


def test_the_bucket_is_the_stores_not_a_masters(masters: list[Store]) -> None:
    submit(masters[0], 12)
    assert len(masters[0].jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND)) == 5
    assert masters[1].jobs.claim("main", 100, "m2", now=T0, rates=PER_SECOND) == []
    assert masters[1].jobs.next_token_at("main") == pytest.approx(T0 + 1.0)


def test_masters_claiming_at_once_never_spend_a_token_twice(masters: list[Store]) -> None:
    """Rounds in which three masters claim in the same instant: together they take exactly what the limit lets start."""
    submit(masters[0], 200)
    rounds = [T0, T0 + 0.5, T0 + 1.0, T0 + 2.1, T0 + 3.05, T0 + 3.97]
    # burst; 2.5 tokens but the second is full; 5 tokens; 5.5 capped at 5; 4.75 tokens; 4.6 but the closing margin
    expected = [5, 0, 5, 5, 4, 0]
    for now, wanted in zip(rounds, expected):
        barrier = threading.Barrier(len(masters))
        taken: list[int] = []
        errors: list[BaseException] = []

        def claim(store: Store, owner: str) -> None:
            try:
                barrier.wait()
                taken.extend(job.id for job in store.jobs.claim("main", 100, owner, now=now, rates=PER_SECOND))
            except BaseException as error:  # reported below, with the round
                errors.append(error)

        threads = [threading.Thread(target=claim, args=(store, f"m{n}")) for n, store in enumerate(masters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, (now, errors)
        assert len(taken) == len(set(taken)) == wanted, now
    assert masters[0].jobs.counts()["main"]["running"] == sum(expected)


def test_status_shows_what_waits_for_which_key_and_when_the_next_token_comes(store: Store) -> None:
    limits = RateLimits(daemon=Rate(10.0, 10.0), tasks={"t.send": Rate(2.0, 2.0), "t.idle": Rate(1.0, 1.0)})
    submit(store, 6, "t.send")
    submit(store, 1, "t.report")
    store.jobs.claim("main", 100, "m1", now=T0, rates=limits)
    waits = {wait["key"]: wait for wait in store.jobs.rate_buckets.waits("main", limits, T0 + 0.025)}
    assert set(waits) == {"main", "main:t.send"}  # t.idle has nothing waiting
    assert waits["main"]["waiting"] == 4 and waits["main"]["task"] is None
    assert waits["main"]["next_token_in"] == pytest.approx(0.0)  # 7 tokens left (3 taken) plus 0.25, room for 7
    assert waits["main"]["started_this_second"] == 3
    assert waits["main:t.send"] == {
        "key": "main:t.send", "task": "t.send", "per_second": 2.0, "burst": 2.0, "waiting": 4,
        "tokens": pytest.approx(0.05), "started_this_second": 2,
        "next_token_in": pytest.approx(0.975),  # a token at T0 + 0.475, but its second is full: T0 + 1
    }


def test_a_v4_store_gains_the_bucket_table_on_upgrade(store: Store) -> None:
    """A store at v4 (before rate limits) gains the table on upgrade, whatever the current version."""
    with store.engine.begin() as connection:
        store.tables["rate_buckets"].drop(connection)
        meta = store.tables["meta"]
        connection.execute(meta.update().where(meta.c.key == "schema_version").values(value="4"))
    assert store.initialise() == SCHEMA_VERSION
    assert sa.inspect(store.engine).has_table("jobd_rate_buckets")
    submit(store, 6)
    assert len(store.jobs.claim("main", 100, "m1", now=T0, rates=PER_SECOND)) == 5
    assert store.jobs.get(1).state is JobState.RUNNING


def test_a_claim_behind_a_later_clock_claims_at_the_buckets_time(masters: list[Store]) -> None:
    """Another host's clock runs ahead: jobs a slower clock takes never start before the tokens they spend."""
    submit(masters[0], 12)
    assert len(masters[0].jobs.claim("main", 2, "m1", now=T0 + 1.0, rates=PER_SECOND)) == 2  # 3 tokens left
    behind = masters[1].jobs.claim("main", 100, "m2", now=T0, rates=PER_SECOND)
    assert [job.started_at for job in behind] == [T0 + 1.0] * 3
    assert masters[1].jobs.claim("main", 100, "m2", now=T0 + 0.5, rates=PER_SECOND) == []  # nothing added meanwhile
