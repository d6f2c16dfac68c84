"""Operators manage each daemon on a running master: real master, workers, CLI processes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

from jobd.states import JobState
from jobd.store import NewJob

from support import Deployment, wait_until

DEPLOYED_TASK = '''
import os, time
import jobd

VERSION = {version!r}


@jobd.task("deploy.work")
def work(ctx, seconds: float = 0.05) -> str:
    time.sleep(seconds)
    with open(os.path.join(os.environ["JOBD_TEST_DIR"], "deployed.log"), "a") as log:
        log.write(f"{{ctx.job_id}} {{os.getpid()}} {{VERSION}}\\n")
    return VERSION
'''


def submit(deployment: Deployment, daemon: str, task: str, count: int = 1, **args) -> list[int]:  # type: ignore[no-untyped-def]
    return [deployment.store.jobs.insert(NewJob(daemon, task, dict(args))) for _ in range(count)]


def started_ids(deployment: Deployment) -> set[int]:
    return {int(line.split()[0]) for line in deployment.lines("started.log")}


def serving(deployment: Deployment, daemon: str) -> list[int]:
    return [w["pid"] for w in deployment.status()["daemons"][daemon]["workers"] if w["state"] != "stopping"]


def test_stop_sms_lets_its_running_jobs_finish_starts_no_new_one_and_mailing_goes_on(deployment: Deployment) -> None:
    deployment.write_config({"mailing": {"workers": 1}, "sms": {"workers": 2, "drain_timeout": 30}})
    deployment.start_master()
    running = submit(deployment, "sms", "t.sleep", count=2, seconds=8)  # outlasts the `jobd stop` process start-up even on a busy machine: the stop must find them running
    wait_until(lambda: started_ids(deployment) >= set(running), message="both sms jobs to start")
    waiting = submit(deployment, "sms", "t.sleep", count=3, seconds=0.1)

    result = deployment.jobd("stop", "sms")
    assert result.returncode == 0, result.stderr
    assert "sms: stopped" in result.stdout
    assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in running)
    assert all(deployment.store.jobs.get(job_id).state is JobState.QUEUED for job_id in waiting)
    assert deployment.status()["daemons"]["sms"]["workers"] == []

    mailing = submit(deployment, "mailing", "t.record", count=3)
    deployment.wait_all_final(mailing)
    assert not started_ids(deployment) & set(waiting), "a stopped daemon started a job"
    assert all(deployment.store.jobs.get(job_id).state is JobState.QUEUED for job_id in waiting)

    result = deployment.jobd("start", "sms")
    assert result.returncode == 0, result.stderr
    assert "sms: started (2 workers)" in result.stdout
    deployment.wait_all_final(waiting)
    assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in waiting)


def test_stop_of_a_daemon_returns_jobs_unfinished_at_its_drain_timeout_to_the_queue(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "drain_timeout": 0.5}})
    deployment.start_master()
    (job_id,) = submit(deployment, "main", "t.sleep", seconds=30)
    wait_until(lambda: started_ids(deployment), message="the job to start")
    assert deployment.jobd("stop", "main").returncode == 0
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.QUEUED and job.attempts == 0, "a drain must not use up an attempt"


def test_rolling_restart_replaces_every_worker_runs_every_job_once_and_loads_new_code(deployment: Deployment) -> None:
    module = deployment.root / "deployed_tasks.py"
    module.write_text(DEPLOYED_TASK.format(version="v1"))
    deployment.write_config({"mailing": {"workers": 2, "modules": ["deployed_tasks"]}}, python_path=[str(deployment.root)])
    deployment.start_master()
    wait_until(lambda: len(deployment.worker_pids("mailing", "idle")) == 2, message="two idle workers")
    old_pids = set(deployment.worker_pids("mailing"))

    submitted: list[int] = []
    restarting = threading.Event()

    def stream() -> None:  # a steady flow of mailing jobs while the restart runs
        while not restarting.is_set():
            submitted.extend(submit(deployment, "mailing", "deploy.work", seconds=0.05))
            time.sleep(0.02)

    submitter = threading.Thread(target=stream)
    submitter.start()
    try:
        wait_until(lambda: len(deployment.lines("deployed.log")) >= 5, message="the stream to be served")
        module.write_text(DEPLOYED_TASK.format(version="version-2"))  # the deploy: a different size defeats stale .pyc
        result = deployment.jobd("restart", "mailing")
    finally:
        restarting.set()
        submitter.join(10)
    assert result.returncode == 0, result.stderr
    assert "mailing: restarted" in result.stdout
    new_pids = set(serving(deployment, "mailing"))
    assert len(new_pids) == 2 and not new_pids & old_pids, "every worker pid changes"

    after = submit(deployment, "mailing", "deploy.work", count=4)
    deployment.wait_all_final(submitted + after)
    runs = Counter(int(line.split()[0]) for line in deployment.lines("deployed.log"))
    assert set(runs) == set(submitted + after) and max(runs.values()) == 1, "every job runs exactly once"
    jobs = [deployment.store.jobs.get(job_id) for job_id in submitted + after]
    assert all(job.state is JobState.SUCCEEDED and job.attempts == 1 for job in jobs)
    assert {deployment.store.jobs.get(job_id).result for job_id in after} == {"version-2"}


def test_scale_up_and_down_live_without_killing_a_running_job(deployment: Deployment) -> None:
    deployment.write_config({"reports": {"workers": 2}})
    deployment.start_master()
    result = deployment.jobd("scale", "reports", "4")
    assert result.returncode == 0, result.stderr
    assert "reports: 2 → 4 workers" in result.stdout
    wait_until(lambda: len(deployment.worker_pids("reports", "idle")) == 4, message="four idle workers")

    busy = submit(deployment, "reports", "t.sleep", count=4, seconds=1.5)
    wait_until(lambda: started_ids(deployment) >= set(busy), message="four running jobs")
    assert deployment.jobd("scale", "reports", "2").returncode == 0
    deployment.wait_all_final(busy)
    jobs = [deployment.store.jobs.get(job_id) for job_id in busy]
    assert all(job.state is JobState.SUCCEEDED and job.attempts == 1 for job in jobs), "scale-down killed a job"
    wait_until(lambda: len(deployment.worker_pids("reports")) == 2, message="two workers left")


def test_a_master_restart_and_a_reload_keep_sms_stopped_and_scaled_counts(deployment: Deployment) -> None:
    deployment.write_config({"mailing": {"workers": 1}, "sms": {"workers": 1}})
    master = deployment.start_master()
    assert deployment.jobd("stop", "sms").returncode == 0
    assert deployment.jobd("scale", "mailing", "3").returncode == 0
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(30) == 0

    deployment.start_master()
    (job_id,) = submit(deployment, "sms", "t.record")
    wait_until(lambda: len(deployment.worker_pids("mailing", "idle")) == 3, message="mailing back at 3 workers")
    assert deployment.jobd("reload").returncode == 0
    time.sleep(1.0)  # five poll intervals: a started sms would have claimed the job
    sms = deployment.status()["daemons"]["sms"]
    assert sms["state"] == "stopped" and sms["workers"] == [] and sms["desired"]["state"] == "stopped"
    assert deployment.store.jobs.get(job_id).state is JobState.QUEUED
    report = json.loads(deployment.jobd("status", "--json").stdout)
    assert report["daemons"]["sms"]["desired"] == {"state": "stopped", "workers": None, "size": 0}
    assert report["daemons"]["mailing"]["desired"] == {"state": "started", "workers": 3, "size": 3}


def test_an_unknown_daemon_exits_2_naming_the_known_ones_with_or_without_a_master(deployment: Deployment) -> None:
    deployment.write_config({"mailing": {"workers": 1}, "sms": {"workers": 1}})
    down = deployment.jobd("stop", "nosuch")
    assert down.returncode == 2 and "unknown daemon 'nosuch' (known daemons: mailing, sms)" in down.stderr
    assert deployment.jobd("restart", "mailing").returncode == 4, "the master is down"
    deployment.start_master()
    for command in (["stop", "nosuch"], ["start", "nosuch"], ["restart", "nosuch"], ["scale", "nosuch", "2"], ["status", "nosuch"]):
        result = deployment.jobd(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "unknown daemon 'nosuch' (known daemons: mailing, sms)" in " ".join(result.stderr.split())


def test_start_with_names_runs_only_those_and_status_shows_desired_versus_actual(deployment: Deployment) -> None:
    deployment.write_config({"mailing": {"workers": 2}, "sms": {"workers": 1}})
    deployment.start_master("mailing")
    status = deployment.status()["daemons"]
    assert status["sms"]["state"] == "stopped" and status["sms"]["desired"]["state"] == "stopped"
    wait_until(lambda: len(deployment.worker_pids("mailing", "idle")) == 2, message="mailing's workers")
    submit(deployment, "sms", "t.record", count=2)

    text = deployment.jobd("status").stdout
    assert "started/2" in text and "stopped" in text
    for pid in deployment.worker_pids("mailing"):
        assert str(pid) in text
    assert "MiB" in text and "%" in text
    worker = deployment.status()["daemons"]["mailing"]["workers"][0]
    assert worker["rss_bytes"] > 1024 * 1024 and worker["cpu_percent"] is not None

    detail = deployment.jobd("status", "sms").stdout
    assert "desired stopped, actual stopped" in detail
    assert "queue: 2 queued, oldest" in detail and "next schedule ticks: -" in detail


def test_desired_state_is_kept_per_host_and_daemon_on_every_backend(store) -> None:  # type: ignore[no-untyped-def]
    from jobd.daemons.plan import Desired

    store.daemon_states.save("sms", Desired(running=False), host="a")
    store.daemon_states.save("sms", Desired(running=True, workers=4), host="a")
    store.daemon_states.save("sms", Desired(running=False), host="b")
    assert store.daemon_states.load("a") == {"sms": Desired(running=True, workers=4)}
    assert store.daemon_states.load("b") == {"sms": Desired(running=False)}
    assert store.daemon_states.load("c") == {}
