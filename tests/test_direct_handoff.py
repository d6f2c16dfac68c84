"""Direct hand-off: a submit's job goes straight to an idle worker's own socket, past the master.

The master still owns every such job (the submit inserts it claimed for
the master) and hears of it before it starts. A gate in shared memory lets
either the master or a submit hold a worker, never both, and whatever a
worker cannot run at once (busy, stopping, a sender it does not trust)
reaches the master, which runs it or puts it back in the queue.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jobd
from jobd import defaults
from jobd.handoff.datagrams import encode_handed_job
from jobd.handoff.gate import DIRECT, FREE, MASTER, Gate
from jobd.handoff.offer import OfferReader
from jobd.handoff.sockets import OFFER_SUFFIX, path_beside
from jobd.states import JobState
from jobd.store import NewJob
from jobd.workers.protocol import HandedJob
from support import Deployment, needs_handoff, send_as_nobody, wait_until

POLL_NEVER = 600  # a job that starts in time was handed over, not found by a poll


def worker_sockets(deployment: Deployment, daemon: str, count: int) -> list[Path]:
    """The sockets of ``daemon``'s workers as the master offers them, once all ``count`` are offered."""
    def offered() -> list[Path] | None:
        offer = OfferReader().read(path_beside(deployment.socket, OFFER_SUFFIX))
        suffixes = offer.workers.get(daemon, ()) if offer is not None else ()
        return [path_beside(deployment.socket, suffix) for suffix in suffixes] if len(suffixes) == count else None

    return wait_until(offered, message=f"the master to offer {count} worker socket(s) for {daemon}")


def hand_to(deployment: Deployment, path: Path, task: str, args: dict[str, Any]) -> int:
    """Do what a submit does for a worker: insert the job claimed for the master, send its run/2 to ``path``."""
    new_job = NewJob("main", task, args, handed_to=deployment.status()["master"]["id"])
    job_id = deployment.store.jobs.insert(new_job)
    send(path, encode_handed_job(HandedJob("main", job_id, 0, None, task, new_job.encoded_args)) or b"")
    return job_id


def send(path: Path, datagram: bytes) -> None:
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sender.sendto(datagram, str(path))
    finally:
        sender.close()


def handoffs(deployment: Deployment) -> dict[str, int]:
    return deployment.status()["master"]["handoffs"]


def state_of(deployment: Deployment, job_id: int) -> JobState:
    return deployment.store.jobs.get(job_id).state


# -- the gate ------------------------------------------------------------------


def test_the_gate_lets_the_master_or_a_submit_hold_a_worker_never_both() -> None:
    gate = Gate(multiprocessing.get_context("fork"))
    assert gate.holder == FREE
    assert gate.take(DIRECT) and not gate.take(MASTER)  # a submit's job runs: nothing may queue behind it
    gate.release(MASTER)
    assert gate.holder == DIRECT  # only the holder lets go
    gate.release(DIRECT)
    assert gate.take(MASTER) and gate.take(MASTER)  # the master may hand it several jobs
    assert not gate.take(DIRECT)  # a submit's datagram now goes to the master
    gate.release(MASTER)
    gate.close()
    assert not gate.take(DIRECT) and gate.take(MASTER)  # retiring: the master's jobs only


def _take_direct_in_child(gate: Gate) -> None:
    os._exit(0 if gate.take(DIRECT) else 1)


def test_the_gate_is_shared_with_the_worker_process() -> None:
    context = multiprocessing.get_context("fork")
    gate = Gate(context)
    child = context.Process(target=_take_direct_in_child, args=(gate,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert gate.holder == DIRECT and not gate.take(MASTER)


# -- with a real master ------------------------------------------------------


@needs_handoff
def test_a_submit_to_an_idle_worker_starts_there_without_the_master(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    for path in worker_sockets(deployment, "main", 2):
        assert oct(os.stat(path).st_mode & 0o777) == oct(defaults.CONTROL_SOCKET_MODE)
    job_id = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=20, message="the job to run")
    job = deployment.store.jobs.get(job_id)
    assert (job.attempts, job.owner) == (1, deployment.status()["master"]["id"]) and job.result == {"n": 1}
    assert handoffs(deployment) == {"to_workers": 1, "through_master": 0, "passed_by_workers": 0}


@needs_handoff
def test_a_hand_off_to_a_busy_worker_is_read_by_the_master_and_runs_on_another(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    busy_socket, _idle = worker_sockets(deployment, "main", 2)
    long_job = hand_to(deployment, busy_socket, "t.sleep", {"seconds": 30})
    wait_until(lambda: deployment.lines("started.log"), message="the long job to start")
    wait_until(lambda: handoffs(deployment)["to_workers"] == 1, message="the master to hear of it")

    job_id = hand_to(deployment, busy_socket, "t.record", {"n": 2})
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=20, message="the job on the other worker")
    assert state_of(deployment, long_job) is JobState.RUNNING  # it did not wait for the busy worker
    assert handoffs(deployment) == {"to_workers": 1, "through_master": 1, "passed_by_workers": 1}
    assert not any("adopting" in line for line in deployment.lines("jobd.log"))


@needs_handoff
def test_a_worker_killed_while_running_a_submitted_job_runs_it_again(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=0.2)
    deployment.start_master()
    worker_sockets(deployment, "main", 1)
    job_id = jobd.submit("main", "t.sleep", {"seconds": 2}, config=deployment.config_path)
    started = wait_until(lambda: deployment.lines("started.log"), message="the job to start")
    wait_until(lambda: handoffs(deployment)["to_workers"] == 1, message="the master to hear of it")
    os.kill(int(started[0].split()[1]), signal.SIGKILL)
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=60, message="the job run again")
    assert deployment.store.jobs.get(job_id).attempts == 2


@needs_handoff
def test_a_draining_master_returns_a_hand_off_sent_to_a_worker(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER, drain_timeout=30)
    master = deployment.start_master()
    busy_socket, _idle = worker_sockets(deployment, "main", 2)  # the idle one is retired (and its socket gone) at once
    busy = hand_to(deployment, busy_socket, "t.sleep", {"seconds": 3})
    wait_until(lambda: deployment.lines("started.log"), message="a job keeping the drain open")
    master.send_signal(signal.SIGTERM)
    wait_until(lambda: not path_beside(deployment.socket, OFFER_SUFFIX).exists(), message="the offer withdrawn on SIGTERM")

    late = hand_to(deployment, busy_socket, "t.record", {"n": 3})
    assert master.wait(timeout=60) == 0
    job = deployment.store.jobs.get(late)
    assert (job.state, job.owner, job.attempts) == (JobState.QUEUED, None, 0)  # refunded: it never started
    assert state_of(deployment, busy) is JobState.SUCCEEDED
    assert not list(deployment.root.glob("*.sock.w*"))  # the workers' sockets are removed with them


@needs_handoff
def test_a_master_removes_worker_sockets_a_killed_master_left(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    leftover = path_beside(deployment.socket, "w999")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(leftover))
    stale.close()  # bound, then abandoned: what a SIGKILL leaves
    deployment.start_master()
    worker_sockets(deployment, "main", 1)
    assert not leftover.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="sending as another user needs root")
@needs_handoff
def test_a_hand_off_from_another_user_to_a_worker_is_checked_against_the_store(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    (path,) = worker_sockets(deployment, "main", 1)
    queued = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 8}))
    forged = encode_handed_job(HandedJob("main", queued, 0, None, "t.record", '{"n":666}')) or b""
    send_as_nobody(deployment.root, path, forged)
    wait_until(lambda: handoffs(deployment)["passed_by_workers"] == 1, message="the worker to pass it to the master")
    time.sleep(0.5)
    assert state_of(deployment, queued) is JobState.QUEUED
    assert str(queued) not in deployment.lines("runs.log"), "the forged hand-off ran"
    assert handoffs(deployment)["to_workers"] == 0


@needs_handoff
def test_a_burst_of_submits_from_several_processes_runs_every_job_exactly_once(
    store_url: str, deployment_factory: Callable[[str], Deployment]
) -> None:
    """Submits race each other, the master and the workers for the gates: no job is lost or run twice."""
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    worker_sockets(deployment, "main", 2)
    first = jobd.submit("main", "t.record", {"n": -1}, config=deployment.config_path)
    wait_until(lambda: state_of(deployment, first) is JobState.SUCCEEDED, message="a lone submit to run")
    assert handoffs(deployment)["to_workers"] == 1  # straight to a worker; in the burst the master may take over
    submitters, per_submitter = 4, 50
    ids_file = deployment.root / "submitted"
    children = []
    for _ in range(submitters):
        pid = os.fork()
        if pid == 0:
            try:
                ids = [jobd.submit("main", "t.record", {"n": n}, config=deployment.config_path) for n in range(per_submitter)]
                with open(ids_file, "a", encoding="ascii") as handle:
                    handle.write("".join(f"{job_id}\n" for job_id in ids))
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        children.append(pid)
    deadline = time.monotonic() + 60
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.remove(pid)
                assert os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.05)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not children, "submitters hung (a connection shared with the parent after fork?)"
    submitted = sorted(int(line) for line in ids_file.read_text().split())
    assert len(submitted) == submitters * per_submitter
    deployment.wait_all_final(submitted, timeout=60)
    assert sorted(int(line) for line in deployment.lines("runs.log")) == sorted([first, *submitted])  # each once
    assert {deployment.store.jobs.get(job_id).state for job_id in submitted} == {JobState.SUCCEEDED}
    counted = handoffs(deployment)
    assert counted["to_workers"] + counted["through_master"] <= len(submitted) + 1
    log = deployment.lines("jobd.log")
    assert not any("adopting" in line or "which it was not running" in line for line in log)  # the master's view held


@needs_handoff
def test_submits_follow_workers_recycled_after_every_job(deployment: Deployment) -> None:
    """Each job retires its worker: submits meet sockets that are closing or gone, and every job still runs once."""
    deployment.write_config({"main": {"workers": 1, "max_tasks_per_worker": 1}}, poll_interval=0.2)
    deployment.start_master()
    (first,) = worker_sockets(deployment, "main", 1)
    submitted = []
    for n in range(20):
        submitted.append(jobd.submit("main", "t.record", {"n": n}, config=deployment.config_path))
        time.sleep(0.02)
    deployment.wait_all_final(submitted, timeout=90)
    assert sorted(int(line) for line in deployment.lines("runs.log")) == submitted  # each once
    assert {deployment.store.jobs.get(job_id).state for job_id in submitted} == {JobState.SUCCEEDED}
    assert not first.exists()  # its worker was recycled: the socket went with it
    assert not any("which it was not running" in line for line in deployment.lines("jobd.log"))
