"""A freshly started `jobd web` draws the last hour: from the master's memory (embedded default) and from memcached."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobd.activity.base import bucket_of
from jobd.store import NewJob
from support import Deployment, MemcachedServer, wait_until

from .webserver import WebProcess

pytestmark = pytest.mark.memcached
FINISHED = 5


def test_a_fresh_jobd_web_shows_the_minutes_before_it_started_from_the_master_and_from_memcached(
    deployment_factory: Callable[[str | None], Deployment], memcached: MemcachedServer,
) -> None:
    embedded, shared = deployment_factory(None), deployment_factory(None)
    embedded.write_config({"main": {"workers": 2}})
    shared.write_config({"main": {"workers": 2}}, memcached=[memcached.address])
    for deployment in (embedded, shared):
        deployment.store.initialise()
        deployment.store.jobs.insert(NewJob("main", "t.noop", {}, run_at=time.time() + 3600))  # queue depth 1 (scheduled)
        deployment.start_master()
    for deployment in (embedded, shared):
        deployment.wait_all_final([deployment.store.jobs.insert(NewJob("main", "t.noop", {})) for _ in range(FINISHED)])
    finished_in = bucket_of(time.time())
    # Only complete minutes are history (the live samples cover the current one): wait for the next minute.
    wait_until(lambda: bucket_of(time.time()) > finished_in, timeout=65, interval=0.2, message="the next minute")

    for deployment, source in ((embedded, "master"), (shared, "memcached")):
        started = time.time()
        server = WebProcess(deployment).start()
        try:
            view = server.request("GET", "/api/v1/view").data
        finally:
            server.stop()
        assert view["source"] == source
        seeded = [point for point in view["history"] if point[0] < started]
        finished = [point[1] for point in seeded if point[1] is not None]
        queued = [point[2] for point in seeded if point[2] is not None]
        print(f"{source}: {len(seeded)} minute points read at start, finished {finished}, queued {queued}")
        assert sum(finished) == FINISHED, f"{source}: the jobs finished before jobd web started are on the chart: {seeded}"
        assert queued and queued[0] == 1, f"{source}: the queue depth of the minutes before: {seeded}"
        assert view["history_notes"] == {"rate": None, "queue": None}
