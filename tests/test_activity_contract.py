"""The activity store's contract, run against memcached (real server) and the master's memory."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator

import pytest

from jobd import defaults
from jobd.activity import MemcachedActivity, MemoryActivity
from jobd.activity.base import Activity, bucket_of, buckets_for, total_in_window
from jobd.activity.memcached import Breaker

from support import MemcachedServer, free_port, wait_until


@pytest.fixture(params=["memory", "memcached"])
def activity(request: pytest.FixtureRequest) -> Iterator[Activity]:
    if request.param == "memory":
        yield MemoryActivity()
        return
    server: MemcachedServer = request.getfixturevalue("memcached")
    store = MemcachedActivity([server.address], f"jobdtest:{secrets.token_hex(4)}")
    yield store
    store.close()


def test_a_published_master_is_listed_until_it_is_forgotten(activity: Activity) -> None:
    activity.publish_master("host:1:a", {"master": {"id": "host:1:a"}, "daemons": {}})
    activity.publish_master("host:2:b", {"master": {"id": "host:2:b"}, "daemons": {}})
    assert sorted(m["master"]["id"] for m in activity.masters()) == ["host:1:a", "host:2:b"]
    activity.publish_master("host:1:a", {"master": {"id": "host:1:a"}, "daemons": {"x": {}}})
    assert len(activity.masters()) == 2, "a refresh replaces the snapshot"
    activity.forget_master("host:2:b")
    assert [m["master"]["id"] for m in activity.masters()] == ["host:1:a"]


def test_progress_is_replaced_read_in_bulk_and_cleared(activity: Activity) -> None:
    activity.set_progress(7, {"job_id": 7, "done": 1, "total": 10, "message": "one"})
    activity.set_progress(7, {"job_id": 7, "done": 5, "total": 10, "message": "five"})
    activity.set_progress(8, {"job_id": 8, "done": 1, "total": None, "message": None})
    found = activity.progress_of([7, 8, 9])
    assert set(found) == {7, 8}, "jobs without progress are left out"
    assert found[7]["message"] == "five"
    activity.clear_progress(7)
    assert set(activity.progress_of([7, 8])) == {8}


def test_the_events_ring_keeps_the_latest_in_order(activity: Activity) -> None:
    kept = defaults.ACTIVITY_EVENTS_KEPT
    activity.add_events("mailing", [{"job_id": n} for n in range(kept)])
    activity.add_events("mailing", [{"job_id": kept}, {"job_id": kept + 1}])
    activity.add_events("sms", [{"job_id": -1}])
    events = activity.events("mailing")
    assert [e["job_id"] for e in events] == list(range(2, kept + 2))
    assert activity.events("sms") == [{"job_id": -1}]
    assert activity.events("nobody") == []


def test_counters_add_up_per_minute(activity: Activity) -> None:
    now = time.time()
    activity.count("mailing", "succeeded", 3, now)
    activity.count("mailing", "succeeded", 2, now)
    activity.count("mailing", "succeeded", 4, now - 60)
    activity.count("mailing", "dead", 1, now)
    counts = activity.counts("mailing", "succeeded", buckets_for(now, 3600))
    assert counts == {bucket_of(now): 5, bucket_of(now - 60): 4}
    assert activity.counts("mailing", "dead", [bucket_of(now)]) == {bucket_of(now): 1}
    assert total_in_window(counts, now, 3600) == 9


def test_queue_depth_is_kept_per_minute_merged_per_daemon_in_a_ring(activity: Activity) -> None:
    minute = bucket_of(time.time())
    activity.record_queued(minute, {"mailing": 3})
    activity.record_queued(minute, {"reports": 1})  # another master's daemons, same minute
    activity.record_queued(minute - 1, {"mailing": 7})
    assert activity.queued_history(buckets_for(time.time(), 3600)) == {minute: {"mailing": 3, "reports": 1}, minute - 1: {"mailing": 7}}
    activity.record_queued(minute + defaults.ACTIVITY_QUEUED_SLOTS, {"mailing": 0})  # the same slot, a ring later
    assert activity.queued_history([minute]) == {}


def test_a_cached_result_is_served_while_fresh_then_expires(activity: Activity) -> None:
    assert activity.get_result("k") is None
    assert activity.put_result("k", {"job_id": 3, "result": {"rows": 1}}, ttl=1)
    assert activity.get_result("k") == {"job_id": 3, "result": {"rows": 1}}
    wait_until(lambda: activity.get_result("k") is None, timeout=5, interval=0.2, message="the entry to expire")


def test_jobs_per_minute_counts_the_older_bucket_pro_rata() -> None:
    size = defaults.ACTIVITY_COUNTER_BUCKET_SECONDS
    now = 100 * size + size / 4  # a quarter into bucket 100
    counts = {99: 40, 100: 5}
    assert total_in_window(counts, now, size) == pytest.approx(5 + 40 * 0.75)


def test_memcached_that_does_not_answer_costs_little_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    dead = MemcachedActivity([f"127.0.0.1:{free_port()}"], "jobdtest:down")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="jobd.activity"):
        for n in range(200):
            dead.set_progress(n, {"done": n})
            assert dead.progress_of([n]) == {}
        assert dead.masters() == []
        assert dead.put_result("k", {"result": 1}, ttl=10) is False
    assert time.monotonic() - started < 2.0
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_the_breaker_backs_off_doubling_and_resets_on_success() -> None:
    now = [0.0]
    breaker = Breaker("memcached x", clock=lambda: now[0], retry_after=1, retry_after_max=8)
    for expected in (1, 2, 4, 8, 8):
        breaker.failed(OSError("refused"))
        assert breaker.open
        now[0] += expected - 0.01
        assert breaker.open
        now[0] += 0.02
        assert not breaker.open
    breaker.succeeded()
    breaker.failed(OSError("refused"))
    now[0] += 1.01
    assert not breaker.open
