"""A partition: two masters on one MariaDB store, one cut off from it for twice its lease.

The cut-off master must stop its own workers before its lease can have run
out, so that the other master, which recovers its jobs, never runs a job
while it still runs too; when the store answers again it learns it was
declared dead and exits 5, and its late results are refused.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from jobd.errors import ExitCode
from jobd.store import NewJob
from support import Deployment, wait_until

from .tcp_proxy import TcpProxy

LEASE = 3.0
SETTINGS = {"heartbeat_interval": 0.5, "heartbeat_lease": LEASE, "drain_timeout": 2}
DAEMONS = {"main": {"workers": 2, "modules": ["outage_tasks"]}}
JOBS = 40


def run_intervals(deployment: Deployment) -> dict[int, list[tuple[str, int, float, float]]]:
    """For each job, each run's (master, worker pid, first seen, last seen) from the tasks' own watch log."""
    seen: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for line in deployment.lines("watch.log"):
        job_id, master, pid, at = line.split()
        seen[(int(job_id), master, int(pid))].append(float(at))
    runs: dict[int, list[tuple[str, int, float, float]]] = defaultdict(list)
    for (job_id, master, pid), times in seen.items():
        runs[job_id].append((master, pid, min(times), max(times)))
    return runs


def overlaps(runs: dict[int, list[tuple[str, int, float, float]]]) -> list[tuple[int, Any, Any]]:
    """Pairs of runs of one job on two masters whose intervals overlap."""
    found = []
    for job_id, job_runs in runs.items():
        for i, first in enumerate(job_runs):
            for second in job_runs[i + 1:]:
                if first[0] != second[0] and first[2] <= second[3] and second[2] <= first[3]:
                    found.append((job_id, first, second))
    return found


@pytest.mark.mysql
@pytest.mark.parametrize("fault", ["stall", "refuse"])
def test_a_master_cut_off_for_twice_its_lease_stops_its_workers_in_time_and_exits_5(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any], fault: str,
) -> None:
    database = mariadb_url.rsplit("/", 1)[1]
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        cut_off = deployment_factory(proxy.url(database))
        other = deployment_factory(mariadb_url)
        for member in (cut_off, other):
            member.write_config(DAEMONS, **SETTINGS)
        other.root.joinpath("watch.log").symlink_to(cut_off.root / "watch.log")  # one log for both masters
        other.jobd("init", check=True)
        victim = cut_off.start_master(env={"JOBD_TEST_MASTER": "A"})
        other.store.jobs.insert_many([NewJob("main", "o.watched", {"seconds": 1.0}) for _ in range(JOBS)])
        wait_until(lambda: len(run_intervals(cut_off)) >= 3, timeout=20, message="the first master to run jobs")
        other.start_master(env={"JOBD_TEST_MASTER": "B"})

        getattr(proxy, fault)()  # A is cut off from the store, B is not
        cut_at = time.time()
        time.sleep(2 * LEASE)
        proxy.heal()
        healed_at = time.time()

        wait_until(lambda: victim.poll() is not None, timeout=30, message="the cut-off master to exit")
        exited_after = time.time() - healed_at
        assert victim.returncode == int(ExitCode.LEASE_LOST), cut_off.lines("master-0.out")[-20:]
        wait_until(lambda: other.store.jobs.counts().get("main") == {"succeeded": JOBS}, timeout=60, interval=0.3,
                   message=f"all {JOBS} jobs to succeed on the other master")

        runs = run_intervals(cut_off)
        assert len(runs) == JOBS
        double = overlaps(runs)
        assert not double, f"jobs ran on both masters at once: {double[:5]}"
        a_runs = [run for job_runs in runs.values() for run in job_runs if run[0] == "A"]
        last_a = max(run[3] for run in a_runs)
        started_late = [run for run in a_runs if run[2] > cut_at + LEASE - 1.0 + 0.2]
        assert not started_late, f"the cut-off master started jobs after its fence time: {started_late}"
        recovered = [job_id for job_id, job_runs in runs.items() if {"A", "B"} <= {run[0] for run in job_runs}]
        log = "\n".join(cut_off.lines("jobd.log"))
        assert "could not renew the lease" in log and "lost its lease" in log
        print(f"\n{fault} for {2 * LEASE:.0f}s (lease {LEASE:.0f}s): the cut-off master's last job line "
              f"{last_a - cut_at:+.2f}s after the cut; it exited 5 {exited_after:.1f}s after the store came back; "
              f"{len(recovered)} job(s) it held ran again on the other master, none at the same time")


@pytest.mark.mysql
def test_a_lone_master_cut_off_past_its_fence_resumes_when_nobody_took_its_jobs(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any],
) -> None:
    database = mariadb_url.rsplit("/", 1)[1]
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        alone = deployment_factory(proxy.url(database))
        direct = deployment_factory(mariadb_url)
        alone.write_config(DAEMONS, **SETTINGS)
        alone.jobd("init", check=True)
        master = alone.start_master(env={"JOBD_TEST_MASTER": "A"})
        direct.store.jobs.insert_many([NewJob("main", "o.watched", {"seconds": 1.0}) for _ in range(12)])
        wait_until(lambda: len(run_intervals(alone)) >= 2, timeout=20, message="jobs to run")
        proxy.refuse()
        time.sleep(LEASE + 1)  # past the fence (lease - margin), with no other master to declare it dead
        proxy.heal()
        healed_at = time.time()
        wait_until(lambda: direct.store.jobs.counts().get("main") == {"succeeded": 12}, timeout=60, interval=0.3,
                   message="every job to succeed after the fence is lifted")
        assert master.poll() is None, "a master nobody declared dead must go on"
        log = "\n".join(alone.lines("jobd.log"))
        assert "could not renew the lease" in log and "renewed its lease" in log
        jobs = [direct.store.jobs.get(job_id) for job_id in run_intervals(alone)]
        assert all(job.attempts == 1 for job in jobs), "a fenced job's attempt is refunded"
        print(f"\nlone master fenced and resumed: all 12 jobs succeeded {time.time() - healed_at:.1f}s after the cut ended")
