"""Batches with real masters and workers: callbacks exactly once, after the last member, across a kill -9."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from typing import Any

import pytest

import jobd
from jobd.batch_record import BatchState
from jobd.errors import InvalidArgs, UnknownTask
from jobd.states import FINAL, JobState

from support import Deployment, wait_until

DONE = ("main", "t.batch_done", {"tag": "complete"})
FAILED = ("main", "t.batch_done", {"tag": "failure"})


def callbacks(deployment: Deployment) -> list[dict[str, Any]]:
    return [json.loads(line) for line in deployment.lines("callbacks.log")]


def wait_batch_done(deployment: Deployment, batch_id: int, timeout: float = 120) -> None:
    wait_until(lambda: deployment.store.batches.get(batch_id).state is not BatchState.OPEN, timeout=timeout,
               interval=0.2, message=f"batch {batch_id} to complete")


def test_a_batch_of_a_few_hundred_members_with_a_fan_out_and_a_dead_member_runs_each_callback_once(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 3}})
    deployment.start_master()
    with jobd.batch("campaign-42", on_complete=DONE, on_failure=FAILED, config=deployment.config_path) as batch:
        records = batch.submit_many("main", "t.record", [{"n": n} for n in range(300)])
        (fan_out,) = [batch.submit("main", "t.fan_out", {"children": 25})]
        (failing,) = [batch.submit("main", "t.fail", max_attempts=1)]
    wait_batch_done(deployment, batch.id)
    children = [int(job_id) for job_id in deployment.lines("fanned.log")[0].split()]
    assert len(children) == 25

    found = deployment.store.batches.get(batch.id)
    assert (found.state, found.total, found.succeeded, found.dead, found.cancelled) == (BatchState.COMPLETE, 327, 326, 1, 0)
    members = [deployment.store.jobs.get(job_id) for job_id in [*records, fan_out, failing, *children]]
    assert all(job.batch_id == batch.id and job.state in FINAL for job in members)
    complete = deployment.store.jobs.get(found.complete_job_id)
    assert complete.created_at >= max(job.finished_at for job in members), "on_complete was queued before the last member ended"
    deployment.wait_all_final([found.complete_job_id, found.failure_job_id])

    ran = callbacks(deployment)
    assert Counter(entry["tag"] for entry in ran) == {"complete": 1, "failure": 1}
    (done,) = [entry for entry in ran if entry["tag"] == "complete"]
    assert done["batch"] == {"id": batch.id, "name": "campaign-42", "total": 327, "succeeded": 326, "dead": 1, "cancelled": 0}
    (alert,) = [entry for entry in ran if entry["tag"] == "failure"]
    assert alert["batch"]["dead"] == 1 and alert["job_id"] == found.failure_job_id

    shown = deployment.jobd("batch", str(batch.id), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["members"] == {"succeeded": 326, "dead": 1}
    listed = deployment.jobd("batches")
    assert "campaign-42" in listed.stdout and "327/327" in listed.stdout
    status = json.loads(deployment.jobd("status", "--json").stdout)
    assert [(entry["id"], entry["state"], entry["finished"]) for entry in status["batches"]] == [(batch.id, "complete", 327)]


def test_kill_9_of_the_master_mid_batch_still_runs_on_complete_once_after_every_member(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    master = deployment.start_master()
    with jobd.batch("resilient", on_complete=DONE, config=deployment.config_path) as batch:
        members = batch.submit_many("main", "t.sleep", [{"seconds": 0.1} for _ in range(80)])
    wait_until(lambda: deployment.store.batches.get(batch.id).succeeded >= 10, message="some members to finish")
    os.killpg(master.pid, signal.SIGKILL)  # master, fork server and workers: the whole host dies
    master.wait(10)
    assert deployment.store.batches.get(batch.id).state is BatchState.OPEN

    deployment.start_master()
    wait_batch_done(deployment, batch.id)
    found = deployment.store.batches.get(batch.id)
    assert (found.state, found.total, found.succeeded, found.dead) == (BatchState.COMPLETE, 80, 80, 0)
    deployment.wait_all_final([found.complete_job_id])
    (done,) = callbacks(deployment)
    assert done["batch"]["succeeded"] == 80
    finished = [deployment.store.jobs.get(job_id).finished_at for job_id in members]
    assert deployment.store.jobs.get(found.complete_job_id).created_at >= max(finished)


def test_cancelling_a_batch_cancels_its_waiting_members_and_no_callback_runs(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "prefetch": 0}})
    deployment.start_master()
    with jobd.batch("stopped", on_complete=DONE, on_failure=FAILED, config=deployment.config_path) as batch:
        (first, *waiting) = batch.submit_many("main", "t.sleep", [{"seconds": 8.0} for _ in range(5)])  # outlasts the CLI's start
    wait_until(lambda: deployment.lines("started.log"), message="the first member to start")
    result = deployment.jobd("batch", str(batch.id), "--cancel")
    assert result.returncode == 0, result.stderr
    assert f"batch {batch.id} cancelled" in result.stdout
    deployment.wait_all_final([first, *waiting], timeout=90)  # the running one: killed after the cancel grace
    assert all(deployment.store.jobs.get(job_id).state is JobState.CANCELLED for job_id in waiting)
    found = deployment.store.batches.get(batch.id)
    assert found.state is BatchState.CANCELLED and found.cancelled >= 4
    assert found.complete_job_id is None and found.failure_job_id is None and callbacks(deployment) == []


def test_a_batch_with_a_bad_callback_or_member_is_refused_and_one_whose_block_raises_is_cancelled(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    with pytest.raises(InvalidArgs, match="on_complete.*batch"):
        with jobd.batch("b", on_complete=("main", "t.record"), config=deployment.config_path):
            pass  # t.record takes no `batch` argument
    with pytest.raises(UnknownTask):
        with jobd.batch("b", on_failure=("main", "no.such.task"), config=deployment.config_path):
            pass
    with pytest.raises(InvalidArgs, match="name"):
        with jobd.batch("", config=deployment.config_path):
            pass
    assert deployment.store.batches.list() == []

    with pytest.raises(RuntimeError, match="the application failed"):
        with jobd.batch("half", on_complete=DONE, config=deployment.config_path) as batch:
            batch.submit("main", "t.record", {"n": 1})
            with pytest.raises(InvalidArgs):
                batch.submit("main", "t.record", {"nope": 1})  # refused, nothing added
            raise RuntimeError("the application failed")
    (found,) = deployment.store.batches.list()
    assert (found.state, found.total, found.cancelled) == (BatchState.CANCELLED, 1, 1)
