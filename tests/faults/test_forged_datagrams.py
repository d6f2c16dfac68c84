"""Forged and stale hand-off datagrams run nothing, whichever socket they reach.

A ``run/2`` datagram describes a job completely, and one from the master's
own user used to be run as described: naming a job that does not exist ran
it, naming one that had succeeded ran it again. Now the store must hold the
job as the master's running first attempt, for a worker that takes the
datagram and for the master alike. Each forged datagram is followed on the
same socket by a genuine hand-off: once that one has run, the forged one
was read before it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import jobd
from jobd.handoff.datagrams import encode_handed_job
from jobd.handoff.offer import OfferReader
from jobd.handoff.sockets import OFFER_SUFFIX, WAKE_SUFFIX, path_beside
from jobd.states import JobState
from jobd.store import NewJob
from jobd.workers.protocol import HandedJob

from support import Deployment, needs_handoff, wait_until

POLL_NEVER = 600  # nothing is found by a poll: only hand-offs start jobs
MISSING = 10**9


def _send(path: Path, datagram: bytes) -> None:
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sender.sendto(datagram, str(path))
    finally:
        sender.close()


def _run_datagram(job_id: int, n: int) -> bytes:
    return encode_handed_job(HandedJob("main", job_id, 0, None, "t.record", f'{{"n":{n}}}')) or b""


def _worker_sockets(deployment: Deployment, count: int) -> list[Path]:
    def offered() -> list[Path] | None:
        offer = OfferReader().read(path_beside(deployment.socket, OFFER_SUFFIX))
        suffixes = offer.workers.get("main", ()) if offer is not None else ()
        return [path_beside(deployment.socket, suffix) for suffix in suffixes] if len(suffixes) == count else None

    return wait_until(offered, message=f"the master to offer {count} worker socket(s)")


def _genuine(deployment: Deployment, path: Path, n: int) -> int:
    """What a submit does: insert the job claimed for the master, then send its datagram to ``path``."""
    new_job = NewJob("main", "t.record", {"n": n}, handed_to=deployment.status()["master"]["id"])
    job_id = deployment.store.jobs.insert(new_job)
    _send(path, _run_datagram(job_id, n))
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED, timeout=20,
               message=f"the genuine hand-off of job {job_id} sent after the forged ones to run")
    return job_id


def _runs(deployment: Deployment) -> list[int]:
    return [int(line) for line in deployment.lines("runs.log")]


@needs_handoff
def test_a_forged_run_datagram_for_a_missing_or_finished_job_runs_nothing_on_a_worker_or_the_master(
    deployment: Deployment,
) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    sockets = _worker_sockets(deployment, 2)
    finished = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    wait_until(lambda: deployment.store.jobs.get(finished).state is JobState.SUCCEEDED, message="the first job")
    queued = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 2}))  # waits: nothing polls
    genuine = []
    for path in [*sockets, path_beside(deployment.socket, WAKE_SUFFIX)]:
        for job_id in (MISSING, finished, queued):
            _send(path, _run_datagram(job_id, 666))
        genuine.append(_genuine(deployment, path, 3))

    runs = _runs(deployment)
    assert MISSING not in runs and runs.count(finished) == 1, f"a forged hand-off ran: {runs}"
    assert set(runs) <= {finished, queued, *genuine} and len(runs) == len(set(runs)), runs
    job = deployment.store.jobs.get(finished)
    assert (job.state, job.attempts, job.result) == (JobState.SUCCEEDED, 1, {"n": 1})
    # The datagram for the queued job only woke the master, which may have claimed it as usual: with its own args.
    job = deployment.store.jobs.get(queued)
    assert job.state is JobState.QUEUED or (job.state, job.result) == (JobState.SUCCEEDED, {"n": 2}), job
    assert deployment.answers()
    assert any("ignored a hand-off of job" in line for line in deployment.lines("jobd.log"))


@needs_handoff
def test_a_run_datagram_sent_again_for_a_job_the_master_holds_does_not_start_it_twice(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    _worker_sockets(deployment, 2)
    running = jobd.submit("main", "t.sleep", {"seconds": 2}, config=deployment.config_path)
    wait_until(lambda: deployment.lines("started.log"), message="the sleeping job to start")
    replay = encode_handed_job(HandedJob("main", running, 0, None, "t.sleep", '{"seconds":2}')) or b""
    _send(path_beside(deployment.socket, WAKE_SUFFIX), replay)  # the master reads its wake socket itself
    _genuine(deployment, path_beside(deployment.socket, WAKE_SUFFIX), 4)
    wait_until(lambda: deployment.store.jobs.get(running).state is JobState.SUCCEEDED, message="the sleeping job")
    assert len(deployment.lines("started.log")) == 1, deployment.lines("started.log")
