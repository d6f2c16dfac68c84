"""Live activity with real masters, workers and memcached: what operators watch."""

from __future__ import annotations

import json
import time

import pytest

from jobd.activity import MemcachedActivity
from jobd.activity.progress import JobProgress
from jobd.config import load_config
from jobd.context import TaskContext
from jobd.dashboard import Dashboard
from jobd.states import JobState
from jobd.store import NewJob

from support import Deployment, MemcachedServer, wait_until

pytestmark = pytest.mark.memcached


def _submit(deployment: Deployment, task: str, daemon: str = "main", **args) -> int:  # type: ignore[no-untyped-def]
    return deployment.store.jobs.insert(NewJob(daemon, task, dict(args)))


def _running_with_progress(deployment: Deployment, job_id: int, source: str) -> dict | None:
    dashboard = Dashboard(load_config(deployment.config_path))
    try:
        view = dashboard.view()
    finally:
        dashboard.close()
    if view["source"] != source:
        return None
    for job in view["running"]:
        if job["job_id"] == job_id and job.get("percent") and str(job.get("message", "")).startswith("step"):
            return job
    return None


def test_progress_shows_in_top_and_status_json_within_a_second(deployment: Deployment, memcached: MemcachedServer) -> None:
    deployment.write_config({"main": {"workers": 1}}, memcached=[memcached.address])
    deployment.start_master()
    job_id = _submit(deployment, "t.progress", steps=600, step_seconds=0.05)  # 30 s: still running when two CLI processes have started
    wait_until(lambda: deployment.lines("started.log"), message="the task to start")
    started = float(deployment.lines("started.log")[0].split()[2])
    job = wait_until(lambda: _running_with_progress(deployment, job_id, "memcached"), timeout=5, interval=0.05)
    seen_after = time.time() - started
    assert seen_after < 1.0, f"progress reached memcached {seen_after:.2f}s after the task started"
    assert 0 < job["percent"] < 100 and job["total"] == 600 and job["host"] and job["worker_pid"]

    top = deployment.jobd("top", "--once")
    assert top.returncode == 0, top.stderr
    assert "t.progress" in top.stdout and "main" in top.stdout
    assert "%" in top.stdout and "step " in top.stdout and "[memcached]" in top.stdout

    status = json.loads(deployment.jobd("status", "--json").stdout)
    assert status["version"] == 1 and status["master"]["running"] is True
    running = status["daemons"]["main"]["running_jobs"]
    assert [job["job_id"] for job in running] == [job_id]
    assert 0 < running[0]["percent"] < 100 and running[0]["message"].startswith("step ")
    assert [master["id"] for master in status["masters"]] == [status["master"]["id"]]


def test_jobs_survive_a_memcached_outage_and_live_data_returns_after_it(deployment: Deployment) -> None:
    server = MemcachedServer().start()
    try:
        deployment.write_config({"main": {"workers": 2}}, memcached=[server.address])
        deployment.start_master()
        first = _submit(deployment, "t.progress", steps=40, step_seconds=0.05)
        wait_until(lambda: _running_with_progress(deployment, first, "memcached"), timeout=10)
        server.stop()  # mid-run
        during = [first] + [_submit(deployment, "t.progress", steps=10, step_seconds=0.05) for _ in range(6)]
        deployment.wait_all_final(during, timeout=60)
        assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in during)
        # Meanwhile top falls back to the master's own view.
        assert Dashboard(load_config(deployment.config_path)).view()["source"] == "master"

        server = MemcachedServer(server.port).start()  # same port; jobd is not restarted
        after = _submit(deployment, "t.progress", steps=400, step_seconds=0.05)
        wait_until(lambda: _running_with_progress(deployment, after, "memcached"), timeout=20, interval=0.2,
                   message="progress in memcached after it came back")
        warnings = [line for line in deployment.lines("jobd.log") if "unavailable" in line]
        assert 1 <= len(warnings) <= 4, warnings  # rate-limited: once per process and minute
        deployment.wait_all_final([after], timeout=60)
    finally:
        server.stop()


def test_100000_progress_calls_make_a_bounded_number_of_memcached_writes(memcached: MemcachedServer) -> None:
    """The worker's path exactly: TaskContext → JobProgress → memcached (stats counted by memcached)."""

    class Pipe:
        reports = 0

        def report(self, job_id: int, progress: dict) -> None:
            Pipe.reports += 1

    activity = MemcachedActivity([memcached.address], "jobdtest:flood")
    sink = JobProgress(Pipe(), activity, "main")
    sink.job_started(1, "t.progress_flood", 1)
    ctx = TaskContext(job_id=1, attempt=1, daemon="main", task="t.progress_flood", last_checkpoint=None,
                      progress_sink=sink, checkpoint_sink=None, is_cancelled=lambda: False)  # type: ignore[arg-type]
    before = memcached.stats()["cmd_set"]
    started = time.monotonic()
    for done in range(1, 100_001):
        ctx.progress(done, 100_000, "flooding")
    for _ in range(1000):
        ctx.progress(100_000, 100_000, "done, again and again")
    took = time.monotonic() - started
    activity.progress_of([1])  # a round trip on the same connection: the noreply sets before it are processed
    activity.close()
    writes = memcached.stats()["cmd_set"] - before
    print(f"100k progress calls in {took:.2f}s -> {writes} memcached sets, {Pipe.reports} pipe reports")
    assert writes == Pipe.reports
    assert 1 <= writes <= took / 0.2 + 2


def test_a_flooding_task_on_a_real_worker_stays_bounded(deployment: Deployment) -> None:
    server = MemcachedServer().start()
    try:
        deployment.write_config({"main": {"workers": 1}}, memcached=[server.address])
        deployment.start_master()
        before = server.stats()["cmd_set"]
        started = time.monotonic()
        job_id = _submit(deployment, "t.progress_flood", calls=100_000)
        deployment.wait_all_final([job_id])
        wall = time.monotonic() - started
        writes = server.stats()["cmd_set"] - before
    finally:
        server.stop()
    assert deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED
    took = float(deployment.lines("flood.log")[0].split()[1])
    print(f"100k progress calls took {took:.2f}s in the task; {writes} memcached sets in {wall:.1f}s (master included)")
    # the worker: ≤ 5 sets a second; the master: snapshot, events and counters ≤ ~8 a second
    assert writes <= (took / 0.2 + 2) + 8 * (wall + 1), writes


def test_the_same_report_submitted_twice_with_reuse_cached_runs_once(deployment: Deployment, memcached: MemcachedServer) -> None:
    import jobd

    deployment.write_config({"main": {"workers": 2}}, memcached=[memcached.address])
    deployment.start_master()
    first = jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path, reuse_cached=True)
    joined = jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path, reuse_cached=True)
    assert joined == first, "an equal request in flight is joined"
    deployment.wait_all_final([first])
    # ...and once it is done, the cached result is reused (the cache is written right after the store).
    again = wait_until(lambda: jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path, reuse_cached=True) == first,
                       timeout=5, message="the cached result")
    assert again
    assert jobd.get_job(first, config=deployment.config_path).result == {"kind": "sales", "rows": 42}
    other = jobd.submit("main", "t.report", {"kind": "costs"}, config=deployment.config_path, reuse_cached=True)
    plain = jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path)
    assert other != first and plain != first, "other args, or no reuse_cached, run anew"
    deployment.wait_all_final([other, plain])
    assert sorted(deployment.lines("runs.log")) == sorted([f"{first} sales", f"{other} costs", f"{plain} sales"])


def test_reuse_cached_works_without_memcached_through_the_master(deployment: Deployment) -> None:
    import jobd

    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    first = jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path, reuse_cached=True)
    deployment.wait_all_final([first])
    wait_until(lambda: jobd.submit("main", "t.report", {"kind": "sales"}, config=deployment.config_path, reuse_cached=True) == first,
               timeout=5, message="the master's cached result")
    assert deployment.lines("runs.log") == [f"{first} sales"]
