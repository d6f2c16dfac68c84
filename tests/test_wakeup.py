"""A submit wakes the master through a datagram socket: jobs start at once, garbage changes nothing."""

from __future__ import annotations

import os
import signal
import socket
import stat

import pytest

import jobd
from jobd.states import JobState
from jobd.handoff.datagrams import MAX_DATAGRAM_BYTES, decode, encode
from jobd.handoff.sockets import WAKE_SUFFIX, WakeSocket, path_beside
from jobd.handoff.submit_side import announce
from support import Deployment, wait_until

# Far beyond every deadline below: a job that runs in time was started by its wake-up, not by a poll.
POLL_NEVER = 600


def idle_workers(deployment: Deployment, daemon: str, count: int) -> None:
    wait_until(lambda: len(deployment.worker_pids(daemon, "idle")) == count, message=f"{count} idle workers")


def succeeded(deployment: Deployment, job_id: int) -> bool:
    return deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"mailing",
        b"wake/2 mailing",
        b"wake/2 mailing ",
        b"wake/2 mailing 1e3",
        b"wake/2 mailing +5",
        b"wake/2 mailing 007",
        b"wake/2 mailing 2147483648",
        b"wake/2 mailing 5 6",
        b"wake/3 mailing 5",
        b"wake/1 ",
        b"wake/1 Mailing",
        b"wake/1 mailing\n",
        b"wake/1 ../../etc/passwd",
        b"wake/1 \xff\xfe",
        b"wake/1 " + b"a" * MAX_DATAGRAM_BYTES,
    ],
)
def test_a_datagram_that_is_not_a_wake_up_names_no_daemon(datagram: bytes) -> None:
    assert decode(datagram) is None


def test_a_wake_up_names_its_daemon_and_the_job_s_priority() -> None:
    assert decode(encode("mailing")) == ("mailing", 0)
    assert decode(encode("sms-eu_2")) == ("sms-eu_2", 0)
    assert encode("mailing") == b"wake/1 mailing"  # what masters before priorities understand
    assert decode(encode("mailing", 100)) == ("mailing", 100)
    assert decode(encode("mailing", -7)) == ("mailing", -7)
    assert decode(encode("mailing", 2**31 - 1)) == ("mailing", 2**31 - 1)


def test_a_submit_starts_the_job_without_waiting_for_the_poll(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}, "other": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    idle_workers(deployment, "main", 2)
    idle_workers(deployment, "other", 1)
    for n in range(3):  # one after another: each must be woken for, not swept up by an earlier claim
        job_id = jobd.submit("main", "t.record", {"n": n}, config=deployment.config_path)
        wait_until(lambda: succeeded(deployment, job_id), timeout=20, message=f"job {job_id} to run long before the poll")
    job_id = jobd.submit("other", "t.noop", {}, config=deployment.config_path)
    wait_until(lambda: succeeded(deployment, job_id), timeout=20, message="the other daemon's job")


def test_the_wake_socket_is_born_with_the_control_sockets_restrictive_mode(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    path = path_beside(deployment.socket, WAKE_SUFFIX)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o660, oct(mode)


def test_garbage_oversized_and_unknown_wake_ups_are_ignored_and_the_master_keeps_serving(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    deployment.start_master()
    idle_workers(deployment, "main", 1)
    path = str(path_beside(deployment.socket, WAKE_SUFFIX))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.settimeout(10)  # the master drains its queue: a blocked send would mean it stopped reading
    try:
        for datagram in [
            os.urandom(512), b"wake/1 " + b"x" * 60_000, b"", b"wake/1 nosuch", b"wake/1 ../main",
            b'{"v": 1, "op": "stop"}\n', b"wake/1 main\x00",
        ]:
            sender.sendto(datagram, path)
        sender.setblocking(False)
        for _ in range(2000):  # a flood of valid wake-ups costs claims, nothing else
            try:
                sender.sendto(encode("main"), path)
            except BlockingIOError:
                break
    finally:
        sender.close()
    assert deployment.answers()
    job_id = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    wait_until(lambda: succeeded(deployment, job_id), timeout=20, message="a job submitted after the garbage")
    assert deployment.status()["master"]["state"] == "running"


def test_a_stale_wake_socket_of_a_killed_master_does_not_prevent_the_next_start(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, poll_interval=POLL_NEVER)
    first = deployment.start_master()
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    path = path_beside(deployment.socket, WAKE_SUFFIX)
    assert path.exists()  # left behind: nobody receives there any more
    announce(deployment.socket, "main")  # a submitter's wake-up to a dead master is simply lost

    deployment.start_master()
    idle_workers(deployment, "main", 1)
    job_id = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    wait_until(lambda: succeeded(deployment, job_id), timeout=20, message="a job woken for on the new master")


def test_a_stopped_master_removes_its_wake_socket(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    master = deployment.start_master()
    path = path_beside(deployment.socket, WAKE_SUFFIX)
    assert path.exists()
    master.send_signal(signal.SIGTERM)
    assert master.wait(timeout=60) == 0
    assert not path.exists()


def test_announce_without_a_master_neither_fails_nor_blocks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    announce(tmp_path / "jobd.sock", "main")  # no socket file at all
    receiver = WakeSocket(tmp_path / "jobd.sock")
    receiver.open()
    receiver.close()
    announce(tmp_path / "jobd.sock", "main")  # and after the master is gone


def test_a_wake_socket_drains_every_pending_wake_up_without_blocking(tmp_path) -> None:  # type: ignore[no-untyped-def]
    receiver = WakeSocket(tmp_path / "jobd.sock")
    receiver.open()
    try:
        assert receiver.take() == {}
        for name, priority in (("mailing", 0), ("sms", 0), ("mailing", 100), ("mailing", 5)):
            announce(tmp_path / "jobd.sock", name, priority)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.sendto(b"noise", str(receiver.path))
        sender.close()
        assert receiver.take() == {"mailing": 100, "sms": 0}  # each daemon once, with its most urgent job's priority
        assert receiver.ignored == 1
        assert receiver.take() == {}
    finally:
        receiver.close()
    assert not receiver.path.exists()


def test_a_wake_socket_path_too_long_for_unix_sockets_leaves_the_master_polling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A control socket path that fits with 5 bytes to spare must not stop a master from starting."""
    folder = tmp_path / ("d" * max(1, 104 - len(str(tmp_path)) - len("/jobd.sock")))
    control = folder / "jobd.sock"
    assert len(str(control)) <= 107 < len(str(path_beside(control, WAKE_SUFFIX)))
    receiver = WakeSocket(control)
    receiver.open()
    try:
        assert receiver.take() == {} and receiver.fileno() >= 0
        announce(control, "main")  # cannot be delivered: nothing breaks
        assert receiver.take() == {}
    finally:
        receiver.close()
    assert not path_beside(control, WAKE_SUFFIX).exists()
