"""Workers never outlive their master: ``kill -9`` of the master's PID alone, with real processes and signals.

The fault is one PID (what the OOM killer, a segfault or an operator's
``kill -9 PID`` do), never the master's process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from jobd.store import NewJob

from support import Deployment, wait_until

MODULES = ["testtasks", "lifeline_tasks"]

#: These tests check that the workers and their tasks' processes die with the master at all, within a bound no busy
#: machine misses; how fast they die (goal: 1 s) is measured by bench/master_death.py.
DIES_WITHIN = 10.0


def submit(deployment: Deployment, task: str, count: int = 1, **args: object) -> list[int]:
    return [deployment.store.jobs.insert(NewJob("main", task, dict(args))) for _ in range(count)]


def alive(pid: int) -> bool:
    """A process that runs (a zombie runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != b"Z"


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_9(master: subprocess.Popen[bytes]) -> float:
    """``kill -9`` of the master's PID alone; the moment it died."""
    os.kill(master.pid, signal.SIGKILL)
    master.wait(10)
    return time.monotonic()


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_9_of_master_pid_leaves_no_worker_running(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "modules": MODULES}})
    master = deployment.start_master()
    submit(deployment, "l.write", seconds=20, every=0.2)
    growing = deployment.root / "growing.log"
    wait_until(lambda: line_count(growing) >= 3, timeout=20, message="the job to write")
    worker_pid = int(growing.read_text().splitlines()[0].split()[1])
    try:
        killed_at = kill_9(master)
        wait_until(lambda: not alive(worker_pid), timeout=DIES_WITHIN, interval=0.02, message="the worker to die with its master")
        assert time.monotonic() - killed_at < DIES_WITHIN
        lines = line_count(growing)
        time.sleep(0.6)  # three periods of the job: one more line would mean a process still writes
        assert line_count(growing) == lines, "the file still grows after the master died"
    finally:
        kill_pid(worker_pid)



def test_a_worker_whose_task_holds_the_gil_still_dies_with_the_master(deployment: Deployment) -> None:
    """The lifeline's thread cannot run then: the fork server ends with the master and PDEATHSIG kills the worker."""
    deployment.write_config({"main": {"workers": 1, "modules": MODULES}})
    master = deployment.start_master()
    submit(deployment, "l.hold_gil")
    wait_until(lambda: deployment.lines("gil.log"), timeout=20, message="the task to start")
    worker_pid = int(deployment.lines("gil.log")[0].split()[1])
    time.sleep(0.2)  # inside its first C call
    try:
        killed_at = kill_9(master)
        wait_until(lambda: not alive(worker_pid), timeout=DIES_WITHIN, interval=0.02, message="the worker to die with its master")
        assert time.monotonic() - killed_at < DIES_WITHIN
    finally:
        kill_pid(worker_pid)

def deployment_processes(deployment: Deployment) -> list[int]:
    """Every running process of this deployment (they all carry its JOBD_TEST_DIR), but this test's own."""
    marker = f"JOBD_TEST_DIR={deployment.root}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ and alive(int(name)):
            found.append(int(name))
    return found


SHELL = {"s.sleep": {"command": 'echo $$ >> "$JOBD_TEST_DIR/shell.pids"; sleep 300 & echo $! >> "$JOBD_TEST_DIR/shell.pids"; sleep 300'}}


def test_a_task_s_grandchild_and_a_shell_task_s_group_die_with_the_master(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "modules": MODULES, "shell": SHELL}})
    master = deployment.start_master()
    submit(deployment, "l.grandchild", seconds=300)
    submit(deployment, "s.sleep")
    wait_until(lambda: deployment.lines("grandchildren.log") and len(deployment.lines("shell.pids")) >= 2,
               timeout=20, message="the grandchild and the shell command to start")
    left = deployment_processes(deployment)
    grandchild = int(deployment.lines("grandchildren.log")[0].split()[2])
    shell_pids = [int(pid) for pid in deployment.lines("shell.pids")]
    running_jobs = [*deployment.worker_pids("main"), grandchild, *shell_pids]
    assert set(running_jobs) <= set(left)
    try:
        kill_9(master)
        wait_until(lambda: not any(alive(pid) for pid in running_jobs), timeout=DIES_WITHIN, interval=0.02,
                   message="the workers and every process their tasks started to end")
        # The fork server and multiprocessing's resource tracker run no task: they end a little later.
        wait_until(lambda: not deployment_processes(deployment), timeout=5, message="no process of the deployment left")
    finally:
        for pid in left:
            kill_pid(pid)


def test_jobd_stop_leaves_no_process_behind(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "modules": MODULES}})
    master = deployment.start_master()
    (job_id,) = submit(deployment, "l.grandchild", seconds=0)  # returns, leaving `sleep 300` running
    deployment.wait_all_final([job_id], timeout=20)
    grandchild = int(deployment.lines("grandchildren.log")[0].split()[2])
    assert alive(grandchild)
    try:
        assert deployment.jobd("stop").returncode == 0
        master.wait(20)
        wait_until(lambda: not deployment_processes(deployment), timeout=5, message="no process left after jobd stop")
    finally:
        kill_pid(grandchild)


def test_a_worker_killed_for_its_timeout_takes_its_task_s_children_along(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": MODULES, "timeout": 1, "max_attempts": 1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "l.grandchild", seconds=300)
    wait_until(lambda: deployment.lines("grandchildren.log"), timeout=20, message="the grandchild to start")
    grandchild = int(deployment.lines("grandchildren.log")[0].split()[2])
    try:
        deployment.wait_all_final([job_id], timeout=30)
        wait_until(lambda: not alive(grandchild), timeout=5, message="the grandchild to die with its worker")
    finally:
        kill_pid(grandchild)


# -- acceptance: kill -9 of the master PID, restart, no overlap --------------


def runs_by_job(*deployments: Deployment) -> dict[int, list[tuple[float, float, int]]]:
    """Each job's runs from the execution logs: (first tick, last tick, pid), in start order."""
    spans: dict[tuple[int, int, int], list[float]] = {}
    for line in (line for deployment in deployments for line in deployment.lines("exec.log")):
        job_id, pid, attempt, at, _what = line.split()
        span = spans.setdefault((int(job_id), int(pid), int(attempt)), [float(at), float(at)])
        span[0], span[1] = min(span[0], float(at)), max(span[1], float(at))
    runs: dict[int, list[tuple[float, float, int]]] = {}
    for (job_id, pid, _attempt), (first, last) in spans.items():
        runs.setdefault(job_id, []).append((first, last, pid))
    return {job_id: sorted(spans_of_job) for job_id, spans_of_job in runs.items()}


def overlaps(runs: dict[int, list[tuple[float, float, int]]]) -> list[int]:
    """Jobs two of whose runs were alive at the same time."""
    return [
        job_id for job_id, spans in runs.items()
        if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    ]


def test_kill_9_of_master_pid_mid_job_then_restart_runs_it_again_with_no_overlap(deployment: Deployment) -> None:
    """On SQLite; the burst test below repeats this on both stores."""
    deployment.write_config({"main": {"workers": 2, "modules": MODULES}})
    master = deployment.start_master()
    (job_id,) = submit(deployment, "l.run", seconds=2)
    wait_until(lambda: len(deployment.lines("exec.log")) >= 3, timeout=20, message="the job to run")
    worker_pid = int(deployment.lines("exec.log")[0].split()[1])
    try:
        killed_at = kill_9(master)
        wait_until(lambda: not alive(worker_pid), timeout=DIES_WITHIN, interval=0.02, message="the worker to die with its master")
        assert time.monotonic() - killed_at < DIES_WITHIN
        deployment.start_master()
        deployment.wait_all_final([job_id], timeout=30)
    finally:
        kill_pid(worker_pid)
    job = deployment.store.jobs.get(job_id)
    assert str(job.state) == "succeeded" and job.attempts == 2
    runs = runs_by_job(deployment)[job_id]
    assert len(runs) == 2 and runs[0][2] != runs[1][2]
    assert overlaps({job_id: runs}) == [], f"the two runs overlapped: {runs}"


def test_five_kill_9_of_master_pid_with_immediate_restarts_lose_nothing_overlap_nothing_and_charge_only_real_runs(
    store_url: str, deployment_factory  # type: ignore[no-untyped-def]
) -> None:
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 2, "modules": MODULES, "max_attempts": 3}})
    assert deployment.jobd("init").returncode == 0
    ids = submit(deployment, "l.run", count=40, seconds=0.2)
    worker_pids: set[int] = set()
    try:
        for _round in range(5):
            master = deployment.start_master()
            ended = sum(line.endswith(" end") for line in deployment.lines("exec.log"))
            wait_until(lambda: sum(line.endswith(" end") for line in deployment.lines("exec.log")) >= ended + 2,
                       timeout=30, interval=0.02, message="jobs to run after the restart")
            workers = deployment.worker_pids("main")
            worker_pids.update(workers)
            kill_9(master)
            wait_until(lambda: not any(alive(pid) for pid in workers), timeout=DIES_WITHIN, interval=0.02,
                       message="the workers to die with their master")
        deployment.start_master()
        deployment.wait_all_final(ids, timeout=60)
    finally:
        for pid in worker_pids:
            kill_pid(pid)
    jobs = [deployment.store.jobs.get(job_id) for job_id in ids]
    runs = runs_by_job(deployment)
    assert overlaps(runs) == [], "a job ran in two processes at once"
    assert all(job.attempts <= 3 for job in jobs), [(job.id, job.attempts) for job in jobs if job.attempts > 3]
    charged_without_run = {job.id: (job.attempts, len(runs.get(job.id, []))) for job in jobs if job.attempts > len(runs.get(job.id, []))}
    assert charged_without_run == {}, "attempts charged for runs that never happened"
    lost = [job.id for job in jobs if str(job.state) != "succeeded" and not (str(job.state) == "dead" and "interrupted" in (job.error or ""))]
    assert lost == []
    assert all(job.id in runs for job in jobs)


def test_a_master_of_the_same_host_recovers_a_killed_master_s_jobs_charging_only_real_runs(deployment_factory) -> None:  # type: ignore[no-untyped-def]
    first = deployment_factory()
    second = deployment_factory(first.store_url)  # another socket, the same store, the same host
    for deployment in (first, second):
        deployment.write_config({"main": {"workers": 1, "modules": MODULES, "max_attempts": 3}})
    assert first.jobd("init").returncode == 0
    killed = first.start_master()
    second.start_master()
    ids = submit(first, "l.run", count=30, seconds=0.25)
    wait_until(lambda: sum(line.endswith(" end") for line in first.lines("exec.log")) >= 2, timeout=30, interval=0.02,
               message="the first master's worker to run jobs")
    workers = first.worker_pids("main")
    try:
        kill_9(killed)
        wait_until(lambda: not any(alive(pid) for pid in workers), timeout=DIES_WITHIN, interval=0.02, message="its worker to die with it")
        second.wait_all_final(ids, timeout=60)
    finally:
        for pid in workers:
            kill_pid(pid)
    jobs = [second.store.jobs.get(job_id) for job_id in ids]
    runs = runs_by_job(first, second)
    assert overlaps(runs) == []
    assert all(str(job.state) == "succeeded" for job in jobs)
    assert {job.id: (job.attempts, len(runs[job.id])) for job in jobs if job.attempts != len(runs[job.id])} == {}
