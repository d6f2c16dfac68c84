"""Hand-off: a submit gives its job straight to an idle local master, claimed as it is inserted.

The job is durable and claimed before the submit returns; whatever goes
wrong afterwards (no master, a dead submitter, a stopping master) leaves it
queued or adopted, never stuck.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

import jobd
from jobd import defaults
from jobd.config import parse_config
from jobd.errors import ConfigError
from jobd.handoff.desk import HandoffDesk
from jobd.handoff.submit_side import announce, hand_to_master
from jobd.handoff.datagrams import (
    MAX_HANDED_JOB_BYTES, decode_handed, decode_handed_job, encode_handed, encode_handed_job,
)
from jobd.handoff.offer import FORMAT, Offer, OfferReader, format_offer, parse_offer, publish
from jobd.handoff.sockets import OFFER_SUFFIX, WAKE_SUFFIX, path_beside
from jobd.states import JobState
from jobd.store import NewJob
from jobd.workers.protocol import HandedJob
from support import Deployment, needs_handoff, send_as_nobody, wait_until

POLL_NEVER = 600  # a job that starts in time was handed over, not found by a poll


def offer_of(deployment: Deployment) -> Offer | None:
    return OfferReader().read(path_beside(deployment.socket, OFFER_SUFFIX))


def offered(deployment: Deployment, daemon: str) -> Offer:
    return wait_until(
        lambda: (offer := offer_of(deployment)) is not None and daemon in offer.daemons and offer,
        message=f"the master to offer hand-offs for {daemon}",
    )


def state_of(deployment: Deployment, job_id: int) -> JobState:
    return deployment.store.jobs.get(job_id).state


# -- the formats -------------------------------------------------------------


def test_an_offer_reads_back_as_written() -> None:
    offer = Offer("vm:4242:0badcafe", frozenset({"mailing", "sms"}), {"mailing": ("w1", "w12")})
    assert format_offer(offer) == f"{FORMAT} vm:4242:0badcafe\nmailing w1 w12\nsms\n"
    assert parse_offer(format_offer(offer)) == offer


@pytest.mark.parametrize(
    "text",
    [
        "", "handoff/2 m\nmain", "handoff/1 m\nmain\n", "handoff/2 \nmain\n", "handoff/2 a b\nmain\n",
        "handoff/2 m\nMain\n", "handoff/2 m\n../etc\n", "handoff/2 m\nmain\nmain\n", "handoff/2 " + "m" * 65 + "\nmain\n",
        "handoff/2 m\nmain w0\n", "handoff/2 m\nmain ../w1\n", "handoff/2 m\nmain w1/x\n", "handoff/2 m\nmain  w1\n",
        "handoff/2 m\nmain w1234567890\n",
    ],
)
def test_a_torn_or_foreign_offer_offers_nothing(text: str) -> None:
    assert parse_offer(text) is None


@pytest.mark.parametrize(
    "datagram",
    [b"run/1 main", b"run/1 main 0", b"run/1 main -3", b"run/1 main 01", b"run/1 main 1x", b"run/1 Main 1",
     b"run/1 main 99999999999999999999", b"run/2 main 1", b"run/1 main \xd9\xa3", b"run/1 main 1 2"],
)
def test_a_datagram_that_is_not_a_hand_off_names_no_job(datagram: bytes) -> None:
    assert decode_handed(datagram) is None


def test_a_hand_off_names_its_daemon_and_job() -> None:
    assert decode_handed(encode_handed("mailing", 42)) == ("mailing", 42)


def test_a_described_hand_off_reads_back_as_written() -> None:
    job = HandedJob("mailing", 42, -3, 5, "mailing.send_campaign", '{"campaign_id":7,"note":"x y"}')
    datagram = encode_handed_job(job)
    assert datagram is not None and decode_handed_job(datagram) == job
    assert decode_handed_job(encode_handed_job(HandedJob("main", 1, 0, None, "t.noop", "{}")) or b"") == HandedJob(
        "main", 1, 0, None, "t.noop", "{}"
    )


def test_a_hand_off_too_long_to_describe_names_the_job_only() -> None:
    assert encode_handed_job(HandedJob("main", 1, 0, None, "t.noop", '{"x":"' + "a" * MAX_HANDED_JOB_BYTES + '"}')) is None


@pytest.mark.parametrize(
    "datagram",
    [b"run/2 main 1 0 - t.noop", b"run/2 main 0 0 - t.noop {}", b"run/2 main 1 x - t.noop {}", b"run/2 main 1 0 0x t.noop {}",
     b"run/2 Main 1 0 - t.noop {}", b"run/2 main 1 0 - t/noop {}", b"run/2 main 1 0 - t.noop []", b"run/2 main 01 0 - t.noop {}",
     b"run/2 main 1 --1 - t.noop {}", b"run/2 main 1 0 - t.noop \xff{}", b"run/2 main 1 0 - t.noop {" + b"a" * MAX_HANDED_JOB_BYTES],
)
def test_a_datagram_that_is_not_a_described_hand_off_describes_no_job(datagram: bytes) -> None:
    assert decode_handed_job(datagram) is None


def test_a_published_offer_is_private_replaced_whole_and_reread_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "jobd.sock.handoff"
    reader = OfferReader()
    assert reader.read(path) is None
    publish(path, Offer("m1", frozenset({"main"})))
    assert oct(os.stat(path).st_mode & 0o777) == oct(defaults.CONTROL_SOCKET_MODE)
    assert reader.read(path) == Offer("m1", frozenset({"main"}))
    publish(path, Offer("m1", frozenset({"main", "sms"})))
    assert reader.read(path) == Offer("m1", frozenset({"main", "sms"}))
    publish(path, None)
    assert not path.exists() and reader.read(path) is None
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind


def test_the_hand_off_switch_is_read_from_the_file_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(defaults.HANDOFF_ENV_VAR, raising=False)
    path = tmp_path / "jobd.toml"
    assert parse_config("", path).handoff is True
    assert parse_config("handoff = false\n", path).handoff is False
    monkeypatch.setenv(defaults.HANDOFF_ENV_VAR, "off")
    assert parse_config("handoff = true\n", path).handoff is False
    monkeypatch.setenv(defaults.HANDOFF_ENV_VAR, "on")
    assert parse_config("handoff = false\n", path).handoff is True
    monkeypatch.setenv(defaults.HANDOFF_ENV_VAR, "perhaps")
    with pytest.raises(ConfigError, match="handoff"):
        parse_config("", path)


# -- the master's desk, on real sockets ---------------------------------------


def desk_at(tmp_path: Path, *, enabled: bool = True) -> HandoffDesk:
    desk = HandoffDesk(tmp_path / "jobd.sock", "m1", enabled=enabled, clock=time.monotonic)
    desk.open()
    return desk


def test_the_desk_reads_wake_ups_and_hand_offs_from_its_socket(tmp_path: Path) -> None:
    desk = desk_at(tmp_path)
    try:
        announce(tmp_path / "jobd.sock", "mailing")
        assert hand_to_master(tmp_path / "jobd.sock", HandedJob("main", 5))
        assert desk.collect(desk.fds([])) == {"mailing": 0}
        assert desk.pending == [HandedJob("main", 5)]  # named only: the store says what it is
        assert desk.collect(set()) == {}  # a socket that was not ready is not read
    finally:
        desk.close()


def test_a_desk_switched_off_ignores_hand_offs_and_offers_nothing(tmp_path: Path) -> None:
    desk = desk_at(tmp_path, enabled=False)
    try:
        assert hand_to_master(tmp_path / "jobd.sock", HandedJob("main", 5, 0, None, "t.noop", "{}"))
        announce(tmp_path / "jobd.sock", "main")
        assert desk.collect(desk.fds([])) == {"main": 0}
        assert desk.pending == [] and desk.wake.ignored == 1
        desk.publish({"main": ("w1",)})
        assert not path_beside(tmp_path / "jobd.sock", OFFER_SUFFIX).exists()
        assert not desk.offer_due() and not desk.adopt_due()
    finally:
        desk.close()


def test_the_desk_publishes_and_withdraws_its_offer_and_clears_a_dead_masters(tmp_path: Path) -> None:
    path = path_beside(tmp_path / "jobd.sock", OFFER_SUFFIX)
    publish(path, Offer("dead:1:00000000", frozenset({"main"})))
    desk = desk_at(tmp_path)
    try:
        assert not path.exists()  # submits must not hand jobs to a master that is gone
        desk.publish({"main": ("w1", "w2"), "sms": ()})
        assert OfferReader().read(path) == Offer("m1", frozenset({"main", "sms"}), {"main": ("w1", "w2")})
        desk.publish({})
        assert not path.exists()
        desk.publish({"main": ()})
        desk.withdraw()
        assert not path.exists()
    finally:
        desk.close()


# -- with a real master ------------------------------------------------------


@needs_handoff
def test_a_submit_to_an_idle_master_is_claimed_as_it_is_inserted(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    offer = offered(deployment, "main")
    assert offer.master == deployment.status()["master"]["id"]
    job_id = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    job = deployment.store.jobs.get(job_id)
    assert job.state in (JobState.RUNNING, JobState.SUCCEEDED)  # never queued
    assert job.owner == offer.master and job.attempts == 1
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=20, message="the handed job to run")


@needs_handoff
def test_no_offer_for_a_daemon_with_caps_or_whose_worker_is_busy(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "prefetch": 0}, "capped": {"workers": 1, "concurrency": 1}})
    deployment.start_master()
    offer = offered(deployment, "main")
    assert "capped" not in offer.daemons  # capped claims count running jobs under a lock
    long_job = jobd.submit("main", "t.sleep", {"seconds": 30}, config=deployment.config_path)
    wait_until(lambda: (o := offer_of(deployment)) is None or "main" not in o.daemons, message="the offer withdrawn")
    queued = jobd.submit("main", "t.record", {"n": 2}, config=deployment.config_path)
    assert state_of(deployment, queued) is JobState.QUEUED  # waits its turn in the queue (no prefetch here)
    assert state_of(deployment, long_job) is JobState.RUNNING


@needs_handoff
def test_a_hand_off_to_a_killed_master_goes_back_to_the_queue_and_runs_on_the_next(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=0.2)
    first = deployment.start_master()
    offered(deployment, "main")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert path_beside(deployment.socket, OFFER_SUFFIX).exists()  # left behind with the wake socket nobody reads

    job_id = jobd.submit("main", "t.record", {"n": 3}, config=deployment.config_path)
    job = deployment.store.jobs.get(job_id)
    assert (job.state, job.owner, job.attempts) == (JobState.QUEUED, None, 0)  # the send failed: put back

    deployment.start_master()
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=30, message="the job on the new master")


@needs_handoff
def test_a_job_handed_over_without_a_datagram_is_adopted(deployment: Deployment) -> None:
    """The submitter died between its commit and its send: the master finds its own job and runs it."""
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    offer = offered(deployment, "main")
    job_id = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 4}, handed_to=offer.master))
    wait_until(
        lambda: state_of(deployment, job_id) is JobState.SUCCEEDED,
        timeout=defaults.HANDOFF_ADOPT_AFTER_SECONDS * 4 + 10, message="the silent hand-off adopted",
    )
    assert deployment.store.jobs.get(job_id).attempts == 1
    assert any("adopting 1 job(s)" in line for line in deployment.lines("jobd.log"))


@needs_handoff
def test_a_forged_hand_off_runs_nothing(deployment: Deployment) -> None:
    """A datagram is trusted for an id only: a job that is not running and ours is not started."""
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    offered(deployment, "main")
    queued = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 5}))  # nothing else would claim it
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for job_id in (queued, 10**12):
            sender.sendto(encode_handed("main", job_id), str(path_beside(deployment.socket, WAKE_SUFFIX)))
    finally:
        sender.close()
    time.sleep(1.0)
    assert deployment.answers()
    assert state_of(deployment, queued) is JobState.QUEUED


@needs_handoff
def test_a_stopping_master_withdraws_its_offer_and_returns_late_hand_offs(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, poll_interval=POLL_NEVER, drain_timeout=30)
    master = deployment.start_master()
    offer = offered(deployment, "main")
    busy = jobd.submit("main", "t.sleep", {"seconds": 3}, config=deployment.config_path)
    wait_until(lambda: state_of(deployment, busy) is JobState.RUNNING, message="a job keeping the drain open")
    master.send_signal(signal.SIGTERM)
    wait_until(lambda: not path_beside(deployment.socket, OFFER_SUFFIX).exists(), message="the offer withdrawn on SIGTERM")

    late = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 7}, handed_to=offer.master))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sender.sendto(encode_handed("main", late), str(path_beside(deployment.socket, WAKE_SUFFIX)))
    finally:
        sender.close()
    assert master.wait(timeout=60) == 0
    job = deployment.store.jobs.get(late)
    assert (job.state, job.owner, job.attempts) == (JobState.QUEUED, None, 0)  # refunded: it never started
    assert state_of(deployment, busy) is JobState.SUCCEEDED


def test_with_the_hand_off_switched_off_a_submit_is_queued_and_its_wake_up_starts_it(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``handoff = false``: no offer, no worker sockets; the plain queued path runs the job at once."""
    monkeypatch.delenv(defaults.HANDOFF_ENV_VAR, raising=False)  # the file decides, here and in the master
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER, handoff=False)
    deployment.start_master()
    wait_until(lambda: len(deployment.worker_pids("main", "idle")) == 1, message="an idle worker")
    job_id = jobd.submit("main", "t.record", {"n": 9}, config=deployment.config_path)
    wait_until(lambda: state_of(deployment, job_id) is JobState.SUCCEEDED, timeout=20, message="the job, woken for")
    assert deployment.status()["master"]["handoffs"] == {"to_workers": 0, "through_master": 0, "passed_by_workers": 0}
    assert not path_beside(deployment.socket, OFFER_SUFFIX).exists()
    assert not list(deployment.root.glob("jobd.sock.w[0-9]*"))  # no worker has a socket of its own


def test_the_store_confirms_only_running_jobs_of_the_asking_master(store) -> None:  # type: ignore[no-untyped-def]
    mine = store.jobs.insert(NewJob("main", "t.record", {"n": 1}, handed_to="me:1:aaaaaaaa"))
    theirs = store.jobs.insert(NewJob("main", "t.record", {"n": 2}, handed_to="them:2:bbbbbbbb"))
    queued = store.jobs.insert(NewJob("main", "t.record", {"n": 3}))
    handed = store.jobs.handed([mine, theirs, queued, 10**12], "me:1:aaaaaaaa")
    assert [(job.id, job.state, job.attempts, job.args) for job in handed] == [(mine, JobState.RUNNING, 1, {"n": 1})]
    assert store.jobs.owned_running("me:1:aaaaaaaa", started_before=time.time() + 1) == [mine]
    assert store.jobs.owned_running("me:1:aaaaaaaa", started_before=time.time() - 60) == []
    with pytest.raises(ValueError):
        NewJob("main", "t.record", {}, unique_key="k", handed_to="me:1:aaaaaaaa").row(time.time())


@pytest.mark.skipif(os.geteuid() != 0, reason="sending as another user needs root")
@needs_handoff
def test_a_described_hand_off_from_another_user_is_checked_against_the_store(deployment: Deployment) -> None:
    """Only a process of the master's own user is taken at its word; anyone else's job must be in the store."""
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    offered(deployment, "main")
    queued = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 8}))
    forged = encode_handed_job(HandedJob("main", queued, 0, None, "t.record", '{"n":666}')) or b""
    send_as_nobody(deployment.root, path_beside(deployment.socket, WAKE_SUFFIX), forged)
    time.sleep(1.0)
    assert deployment.answers()
    assert state_of(deployment, queued) is JobState.QUEUED
    assert str(queued) not in deployment.lines("runs.log"), "the forged hand-off ran"
