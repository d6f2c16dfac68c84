"""Several masters on one MariaDB store: exactly-once claims, orphan recovery, leases, caps."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pymysql
import pytest
import sqlalchemy as sa

from jobd.states import JobState
from jobd.store import NewJob
from support import Deployment, wait_until

LEASE = {"heartbeat_interval": 0.5, "heartbeat_lease": 3}


def cluster(factory: Callable[[str], Deployment], url: str, count: int, daemons: dict, **settings) -> list[Deployment]:  # type: ignore[type-arg, no-untyped-def]
    members = [factory(url) for _ in range(count)]
    for member in members:
        member.write_config(daemons, **settings)
    return members


def master_id_of(deployment: Deployment) -> str:
    return str(deployment.status()["master"]["id"])


def owners(deployment: Deployment, job_ids: list[int]) -> dict[int, str | None]:
    jobs = deployment.store.tables["jobs"]
    with deployment.store.engine.connect() as connection:
        rows = connection.execute(sa.select(jobs.c.id, jobs.c.owner).where(jobs.c.id.in_(job_ids))).all()
    return {int(row[0]): row[1] for row in rows}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_three_masters_run_20000_jobs_exactly_once_and_share_the_work(deployment_factory, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    database = mariadb_url.rsplit("/", 1)[1]
    connection = pymysql.connect(host="127.0.0.1", user="root", password="", database=database, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE runs (job_id BIGINT NOT NULL, pid INT NOT NULL)")
    members = cluster(deployment_factory, mariadb_url, 3, {"main": {"workers": 2}})
    members[0].jobd("init")
    members[0].store.jobs.insert_many([NewJob("main", "t.run_record", {}) for _ in range(20_000)])
    for member in members:
        member.start_master(env={"JOBD_TEST_RUNS": f"{database}.runs"})
    wait_until(lambda: members[0].store.jobs.counts().get("main") == {"succeeded": 20_000}, timeout=540, interval=1, message="20,000 jobs to succeed")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), COUNT(DISTINCT job_id) FROM runs")
        total, distinct = cursor.fetchone()
        cursor.execute("SELECT owner, COUNT(*) FROM jobd_jobs GROUP BY owner")
        per_master = dict(cursor.fetchall())
    connection.close()
    assert distinct == 20_000, "a job never ran"
    assert total == 20_000, "a job ran twice"
    assert len(per_master) == 3 and min(per_master.values()) > 20_000 * 0.1, f"work not spread: {per_master}"


def test_kill_9_of_a_master_requeues_its_jobs_for_the_others_within_the_lease(deployment_factory, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    members = cluster(deployment_factory, mariadb_url, 3, {"main": {"workers": 2}}, **LEASE)
    members[0].start_master()  # the victim first, so it surely owns running and prefetched jobs
    ids = [members[0].store.jobs.insert(NewJob("main", "t.sleep", {"seconds": 2})) for _ in range(12)]
    victim_id = master_id_of(members[0])
    wait_until(lambda: victim_id in owners(members[0], ids).values(), message="the victim to own a job")
    for member in members[1:]:
        member.start_master()
    victim_jobs = [job for job, owner in owners(members[0], ids).items() if owner == victim_id]
    os.killpg(members[0].masters[0].pid, signal.SIGKILL)
    killed_at = time.time()
    members[1].wait_all_final(ids, timeout=60)
    assert all(members[1].store.jobs.get(job).state is JobState.SUCCEEDED for job in ids)
    recovered = [members[1].store.jobs.get(job) for job in victim_jobs]
    began = {int(line.split()[0]) for line in members[0].lines("started.log")}  # begun by the victim's workers
    rerun = [job for job in recovered if job.started_at and job.started_at > killed_at]
    assert all(job.owner != victim_id for job in rerun)
    # Its interrupted runs count; the jobs it had only prefetched are not charged for a run that never happened
    # (the masters share this host, so the one that recovers them reads the victim's ledgers).
    assert all(job.attempts >= 2 for job in rerun if job.id in began)
    # A worker records a job as begun just before its task writes its first line to started.log, so a kill
    # between the two charges a run this log does not show: at most one such job per victim worker (2).
    charged_unlogged = [job.id for job in rerun if job.id not in began and job.attempts != 1]
    assert len(charged_unlogged) <= 2, f"jobs charged for a run no worker began: {charged_unlogged}"
    assert time.time() - killed_at < 3 + 0.5 + 2 + 15, "recovery took longer than lease + heartbeat + the job itself"


def test_a_master_frozen_past_its_lease_does_not_finish_or_reclaim_others_jobs_and_exits(deployment_factory, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    members = cluster(deployment_factory, mariadb_url, 2, {"main": {"workers": 1}}, **LEASE)
    frozen, healthy = members
    frozen_process = frozen.start_master()
    frozen_id = master_id_of(frozen)
    (job_id,) = [frozen.store.jobs.insert(NewJob("main", "t.sleep", {"seconds": 6}))]
    wait_until(lambda: owners(frozen, [job_id])[job_id] == frozen_id, message="the frozen master to claim the job")
    os.kill(frozen_process.pid, signal.SIGSTOP)  # the master only: its worker keeps running the task
    try:
        healthy.start_master()
        wait_until(lambda: owners(healthy, [job_id])[job_id] not in (None, frozen_id), timeout=30, message="the job to move to the healthy master")
        new_owner = owners(healthy, [job_id])[job_id]
    finally:
        os.kill(frozen_process.pid, signal.SIGCONT)
    assert frozen_process.wait(30) == 5, "a master that lost its lease exits with code 5"
    healthy.wait_all_final([job_id], timeout=30)
    job = healthy.store.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.owner == new_owner
    (record,) = [m for m in healthy.store.masters.all() if m.id == frozen_id]
    assert record.state == "dead"


def test_a_global_task_limit_of_2_holds_across_three_masters(deployment_factory, mariadb_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    members = cluster(deployment_factory, mariadb_url, 3, {"main": {"workers": 2, "task_concurrency": {"t.slot": 2}}})
    for member in members:
        member.start_master()
    ids = members[0].store.jobs.insert_many([NewJob("main", "t.slot", {"log_dir": str(tmp_path)}) for _ in range(15)])
    assert ids == 15
    wait_until(lambda: members[0].store.jobs.counts().get("main") == {"succeeded": 15}, timeout=90, message="15 jobs")
    intervals = [tuple(map(float, line.split()[1:])) for line in (tmp_path / "slots.log").read_text().splitlines()]
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2, f"at most 2 may run at once, saw {peak}"


def test_status_lists_every_master_with_its_heartbeat(deployment_factory, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    import json

    members = cluster(deployment_factory, mariadb_url, 2, {"main": {"workers": 1}, "sms": {"workers": 1}})
    members[0].start_master()
    members[1].start_master(env={"JOBD_RUN_DAEMONS": "sms"})
    report = json.loads(members[0].jobd("status", "--json").stdout)
    masters = {m["id"]: m for m in report["masters"]}
    assert len(masters) == 2 and all(m["alive"] and m["heartbeat_age"] < 10 for m in masters.values())
    assert sorted(m["daemons"] for m in masters.values()) == [["main", "sms"], ["sms"]]
    assert list(members[1].status()["daemons"]) == ["sms"], "placement: only sms runs on the second host"
