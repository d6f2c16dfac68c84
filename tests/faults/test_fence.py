"""Fencing the previous run on a host: its record, its ledgers, and killing only what is really its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jobd.store import NewJob
from jobd.workers import fence, server_exit, sessions

from support import Deployment, wait_until

BOOT = fence.current_boot_id()


def spawn_session() -> tuple[subprocess.Popen[bytes], int]:
    """A stand-in for a stale worker: a session leader with a child of its own; (leader, child pid)."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, start_new_session=True,
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    return leader, child


def running(pid: int) -> bool:
    return sessions.start_time(pid) is not None


def reap(process: subprocess.Popen[bytes], *pids: int) -> None:
    for pid in (process.pid, *pids):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def dead_process() -> fence.WorkerRecord:
    """A process that ran and ended (its pid is a master that died)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return fence.WorkerRecord(gone.pid, 1)


# -- pure parts -------------------------------------------------------------


def test_a_run_record_survives_a_round_trip_and_garbage_is_no_record() -> None:
    record = fence.RunRecord("boot", "host:1:abc", fence.WorkerRecord(1, 2), (fence.WorkerRecord(10, 20), fence.WorkerRecord(11, 21)))
    assert fence.RunRecord.from_text(record.to_text()) == record
    assert fence.RunRecord.from_text('{"boot_id": "b", "mas') is None
    assert fence.RunRecord.from_text("[]") is None


def test_stat_fields_are_counted_from_the_last_parenthesis_of_the_command_name() -> None:
    fields = " ".join(str(n) for n in range(4, 53))  # fields 4.. (ppid onwards)
    stat = sessions.parse_stat(42, f"42 (a) (b c) S {fields}".encode())
    assert stat is not None and stat.state == "S" and stat.parent == 4 and stat.session == 6 and stat.start_time == 22
    assert sessions.parse_stat(42, b"42 (short) S 1 2") is None


def test_a_record_from_another_boot_names_nothing_to_kill() -> None:
    record = fence.RunRecord("old-boot", "m", fence.WorkerRecord(1, 1), (fence.WorkerRecord(10, 20),))
    assert fence.targets(record, "new-boot") == []
    assert fence.targets(record, "old-boot") == [fence.WorkerRecord(10, 20)]


def test_jobs_no_worker_began_are_the_ones_refunded() -> None:
    held = [(5, 1), (3, 1), (9, 2), (7, 3)]
    assert fence.unstarted(held, frozenset({(3, 1), (7, 3), (9, 1)})) == [5, 9]  # job 9 began its 1st attempt, not its 2nd


def test_a_ledger_keeps_the_last_jobs_a_worker_began(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    ledger = fence.Ledger(path, slots=8)
    for job_id in range(1, 21):
        ledger.began(job_id, 1)
    assert fence.read_ledger(path) == {(job_id, 1) for job_id in range(13, 21)}
    assert fence.read_ledger(tmp_path / "none") is None


# -- real processes ---------------------------------------------------------


def test_a_recorded_worker_and_its_session_are_killed_but_a_recycled_pid_is_spared() -> None:
    stale, stale_child = spawn_session()
    other, other_child = spawn_session()
    try:
        stale_start = sessions.start_time(stale.pid)
        other_start = sessions.start_time(other.pid)
        assert stale_start is not None and other_start is not None
        recycled = fence.WorkerRecord(other.pid, other_start - 1)  # same pid, another process: not ours
        fence.kill_run([fence.WorkerRecord(stale.pid, stale_start), recycled])
        wait_until(lambda: not running(stale.pid) and not running(stale_child), timeout=5, message="the stale session to die")
        time.sleep(0.1)
        assert running(other.pid) and running(other_child), "a process with another start time was killed"
    finally:
        reap(stale, stale_child)
        reap(other, other_child)


def test_securing_kills_the_previous_run_waits_for_it_and_reads_what_its_workers_began(tmp_path: Path) -> None:
    socket = tmp_path / "jobd.sock"
    stale, stale_child = spawn_session()
    try:
        start = sessions.start_time(stale.pid)
        assert start is not None
        record = fence.RunRecord(BOOT, "host:1:dead", dead_process(), (fence.WorkerRecord(stale.pid, start),))
        fence.record_path(socket).write_text(record.to_text())
        fence.Ledger(fence.ledger_path(socket, stale.pid)).began(7, 1)
        host_fence = fence.HostFence(socket, "host:2:new")
        fenced = host_fence.secure(timeout=5)
        assert fenced.master_id == "host:1:dead" and fenced.started == {(7, 1)} and not fenced.survivors
        assert fenced.killed >= 1
        assert not running(stale.pid) and not running(stale_child)
        host_fence.own()
        assert not fence.ledger_path(socket, stale.pid).exists()
        owned = host_fence.previous()
        assert owned is not None and owned.master_id == "host:2:new" and owned.workers == ()
    finally:
        reap(stale, stale_child)


def test_a_live_master_on_the_socket_is_never_fenced(tmp_path: Path) -> None:
    socket = tmp_path / "jobd.sock"
    worker, worker_child = spawn_session()
    try:
        start = sessions.start_time(worker.pid)
        me = fence.WorkerRecord(os.getpid(), sessions.start_time(os.getpid()) or 0)
        assert start is not None
        fence.record_path(socket).write_text(fence.RunRecord(BOOT, "host:1:alive", me, (fence.WorkerRecord(worker.pid, start),)).to_text())
        fenced = fence.HostFence(socket, "host:2:new").secure(timeout=1)
        assert fenced.master_alive and running(worker.pid)
    finally:
        reap(worker, worker_child)


def test_a_starting_master_fences_the_previous_run_and_refunds_only_jobs_no_worker_began(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": ["testtasks", "lifeline_tasks"]}})
    assert deployment.jobd("init").returncode == 0
    began, never_began = (deployment.store.jobs.insert(NewJob("main", "l.run", {"seconds": 0.1})) for _ in range(2))
    assert {job.id for job in deployment.store.jobs.claim("main", 2, "host:1:dead")} == {began, never_began}
    stale, stale_child = spawn_session()
    try:
        start = sessions.start_time(stale.pid)
        assert start is not None
        record = fence.RunRecord(BOOT, "host:1:dead", dead_process(), (fence.WorkerRecord(stale.pid, start),))
        fence.record_path(deployment.socket).write_text(record.to_text())
        fence.Ledger(fence.ledger_path(deployment.socket, stale.pid)).began(began, 1)
        deployment.start_master()
        assert not running(stale.pid) and not running(stale_child), "the master answered before the stale run was dead"
        deployment.wait_all_final([began, never_began], timeout=30)
        assert deployment.store.jobs.get(began).attempts == 2  # its interrupted run counts
        assert deployment.store.jobs.get(never_began).attempts == 1  # charged for its only real run
    finally:
        reap(stale, stale_child)


def test_a_silent_master_of_this_host_is_fenced_before_it_is_declared_dead(tmp_path: Path) -> None:
    socket = tmp_path / "other.sock"
    stale, stale_child = spawn_session()
    try:
        start = sessions.start_time(stale.pid)
        assert start is not None
        record = fence.RunRecord(BOOT, "host:1:silent", dead_process(), (fence.WorkerRecord(stale.pid, start),))
        fence.record_path(socket).write_text(record.to_text())
        fence.Ledger(fence.ledger_path(socket, stale.pid)).began(9, 2)
        assert fence.fence_other(socket, "host:0:older") == fence.Fenced(None)  # a later master's record: not touched
        assert running(stale.pid)
        fenced = fence.fence_other(socket, "host:1:silent", timeout=5)
        assert fenced is not None and fenced.master_id == "host:1:silent" and fenced.started == {(9, 2)}
        assert not running(stale.pid) and not running(stale_child)
        assert fence.fence_other(tmp_path / "none.sock", "host:1:silent") == fence.Fenced(None)
    finally:
        reap(stale, stale_child)


def test_after_a_reboot_or_without_a_ledger_nothing_is_refunded(tmp_path: Path) -> None:
    socket = tmp_path / "jobd.sock"
    worker = fence.WorkerRecord(dead_process().pid, 1)
    fence.Ledger(fence.ledger_path(socket, worker.pid)).began(7, 1)
    fence.record_path(socket).write_text(fence.RunRecord("another-boot", "host:1:dead", dead_process(), (worker,)).to_text())
    assert fence.HostFence(socket, "host:2:new").secure(timeout=1) == fence.Fenced(None)
    fence.record_path(socket).write_text(fence.RunRecord(BOOT, "host:1:dead", dead_process(), (worker,)).to_text())
    assert fence.HostFence(socket, "host:2:new").secure(timeout=1).started == {(7, 1)}
    fence.ledger_path(socket, worker.pid).unlink()
    assert fence.HostFence(socket, "host:2:new").secure(timeout=1).master_id is None  # which jobs began is unknown


def test_a_fork_server_ending_with_its_master_kills_each_worker_s_session_first() -> None:
    """``server_exit``: a stand-in fork server with two "workers" (session leaders) whose tasks left children."""
    server = subprocess.Popen(
        [sys.executable, "-c", (
            "import subprocess, sys, time\n"
            "for _ in range(2):\n"
            "    w = subprocess.Popen(['sh', '-c', 'sleep 60 & echo $!; echo $$; wait'], stdout=subprocess.PIPE, start_new_session=True)\n"
            "    print(w.stdout.readline().decode().strip(), w.stdout.readline().decode().strip(), flush=True)\n"
            "time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    pids = [int(pid) for _ in range(2) for pid in server.stdout.readline().split()]
    try:
        assert all(running(pid) for pid in pids)

        signalled = server_exit.end_workers(server.pid)

        wait_until(lambda: not any(running(pid) for pid in pids), timeout=10, message="the workers and their children to die")
        assert signalled >= 4 and running(server.pid)  # the fork server itself goes on to exit on its own
    finally:
        reap(server, *pids)
