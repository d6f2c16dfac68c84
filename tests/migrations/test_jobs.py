"""``jobd migrate`` with a master running: each tenant is a job of the ``migrate`` daemon.

Real master, real workers, real MariaDB tenants: the jobs show progress in
the store, a failed tenant's job dies at once, a busy one is retried, and a
master killed with ``kill -9`` mid-run is restarted and every tenant still
converges.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import Deployment, wait_until

from jobd.errors import ExitCode
from jobd.job import Job
from jobd.migrations.steps import load_steps
from jobd.migrations.task import MIGRATE_TASK
from jobd.states import JobState

from .conftest import Fleet, build_fleet, connect
from .test_cli_acceptance import SLOW_FILE, died_inside_a_step, half_migrated_tenant

pytestmark = pytest.mark.mysql


@pytest.fixture
def fleet_deployment(db_prefix: str, tmp_path: Path, deployment_factory: Callable[[str | None], Deployment]) -> tuple[Fleet, Deployment]:
    """Six tenants, and a deployment whose ``migrate`` daemon has two workers."""
    fleet = build_fleet(db_prefix, 6, tmp_path)
    deployment = deployment_factory(None)
    migrations = {
        "folder": str(fleet.folder),
        "registry_url": f"mysql+pymysql://root@127.0.0.1:3306/{fleet.registry}",
        "registry_query": "SELECT name, db_name FROM tenants ORDER BY name",
        "lock_wait_timeout": 5,
    }
    deployment.write_config({"migrate": {"workers": 2, "backoff_base": 0.2, "backoff_max": 1}}, migrations=migrations)
    return fleet, deployment


def migrate_jobs(deployment: Deployment) -> list[Job]:
    table = deployment.store.jobs.table
    with deployment.store.engine.connect() as connection:
        ids = list(connection.execute(sa.select(table.c.id).where(table.c.task == MIGRATE_TASK).order_by(table.c.id)).scalars())
    return [deployment.store.jobs.get(job_id) for job_id in ids]


def popen_migrate(deployment: Deployment, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.app", "migrate", *args], env=deployment.env(), cwd=deployment.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(runner: subprocess.Popen[str]) -> None:
    """Kill a runner a failed test left waiting, and close its pipes."""
    if runner.poll() is None:
        runner.kill()
    runner.communicate(timeout=10)


def assert_every_tenant_at_the_last_step(fleet: Fleet) -> None:
    expected = [step.label for step in load_steps(fleet.folder)]
    for tenant in fleet.tenants:
        assert fleet.applied(tenant) == expected, tenant


def test_with_a_master_running_each_tenant_becomes_a_job_of_the_migrate_daemon(fleet_deployment: tuple[Fleet, Deployment]) -> None:
    fleet, deployment = fleet_deployment
    deployment.start_master()

    result = deployment.jobd("migrate", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert {item["tenant"]: item["status"] for item in summary["tenants"]} == {tenant: "migrated" for tenant in fleet.tenants}
    jobs = migrate_jobs(deployment)
    assert sorted(job.args["tenant"] for job in jobs) == fleet.tenants
    assert {(job.daemon, job.state, job.attempts) for job in jobs} == {("migrate", JobState.SUCCEEDED, 1)}
    assert all(job.result["status"] == "migrated" and len(job.result["applied"]) == 6 for job in jobs)
    assert_every_tenant_at_the_last_step(fleet)

    again = deployment.jobd("migrate", "--json")
    assert again.returncode == 0
    assert {item["status"] for item in json.loads(again.stdout)["tenants"]} == {"up_to_date"}


def test_a_failing_tenant_job_dies_at_once_and_the_summary_and_exit_code_say_so(fleet_deployment: tuple[Fleet, Deployment]) -> None:
    fleet, deployment = fleet_deployment
    fleet.seed_duplicates("t02")
    before = fleet.fingerprint("t02")
    deployment.start_master()

    result = deployment.jobd("migrate", "--json")

    assert result.returncode == int(ExitCode.FAILURE), result.stdout + result.stderr
    outcomes = {item["tenant"]: item for item in json.loads(result.stdout)["tenants"]}
    assert outcomes["t02"]["status"] == "failed" and outcomes["t02"]["restored"]
    assert outcomes["t02"]["failed_step"] == "0003_constraints.sql:add_contacts_email_unique"
    assert all(outcomes[tenant]["status"] == "migrated" for tenant in fleet.tenants if tenant != "t02")
    [failed_job] = [job for job in migrate_jobs(deployment) if job.args["tenant"] == "t02"]
    assert failed_job.state is JobState.DEAD and failed_job.attempts == 1  # no retry storm
    assert "1062" in (failed_job.error or "") and "restored" in (failed_job.error or "")
    after = fleet.fingerprint("t02")
    assert after.pop("jobd_migrations")[0] == 0 and after == before


def test_a_tenant_locked_by_another_runner_is_retried_until_the_lock_is_free(fleet_deployment: tuple[Fleet, Deployment]) -> None:
    fleet, deployment = fleet_deployment
    holder = connect()
    with holder.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (f"jobd:migrate:{fleet.database('t03')}",))
    deployment.start_master()
    runner = popen_migrate(deployment, "--json", "--tenants", "t03,t04")
    try:
        wait_until(
            lambda: any(job.args["tenant"] == "t03" and job.state is JobState.RETRYING for job in migrate_jobs(deployment)),
            timeout=60, message="the locked tenant's job to be retrying",
        )
        holder.close()  # releases the lock
        stdout, stderr = runner.communicate(timeout=90)
    finally:
        if holder.open:
            holder.close()
        stop(runner)

    assert runner.returncode == 0, stdout + stderr
    [job] = [job for job in migrate_jobs(deployment) if job.args["tenant"] == "t03"]
    assert job.state is JobState.SUCCEEDED and job.attempts >= 2


def test_kill_9_of_the_master_mid_run_then_restart_every_tenant_converges(fleet_deployment: tuple[Fleet, Deployment]) -> None:
    fleet, deployment = fleet_deployment
    (fleet.folder / "0004_slow.sql").write_text(SLOW_FILE.replace("SLEEP(0.4)", "SLEEP(1.5)"))
    master = deployment.start_master()
    runner = popen_migrate(deployment, "--json")
    try:
        wait_until(
            lambda: any((job.progress or {}).get("total") == 7 for job in migrate_jobs(deployment)),
            timeout=60, message="a job's progress (done of 7 steps) to reach the store",
        )
        wait_until(lambda: half_migrated_tenant(fleet), timeout=60, message="a tenant half-way through the slow step")
        os.killpg(master.pid, signal.SIGKILL)  # master, forkserver and workers: the host "dies"
        master.wait(10)
        victims = died_inside_a_step(fleet)
        assert runner.poll() is None, "jobd migrate must keep waiting for the durable jobs"

        deployment.start_master()
        stdout, stderr = runner.communicate(timeout=110)
    finally:
        stop(runner)

    assert runner.returncode == 0, stdout + stderr
    outcomes = {item["tenant"]: item for item in json.loads(stdout)["tenants"]}
    assert set(outcomes) == set(fleet.tenants) and {item["status"] for item in outcomes.values()} == {"migrated"}
    assert_every_tenant_at_the_last_step(fleet)
    for victim in victims:
        states = fleet.sql(fleet.database(victim), "SELECT state FROM jobd_migration_runs ORDER BY started_at")
        assert [state for (state,) in states] == ["restored", "succeeded"], victim
    retried = [job for job in migrate_jobs(deployment) if job.args["tenant"] in victims]
    assert all(job.state is JobState.SUCCEEDED and job.attempts >= 2 for job in retried)


def test_foreground_runs_in_process_even_with_a_master_running(fleet_deployment: tuple[Fleet, Deployment]) -> None:
    fleet, deployment = fleet_deployment
    deployment.start_master()

    result = deployment.jobd("migrate", "--foreground", "--json", "--tenants", "t01")

    assert result.returncode == 0, result.stdout + result.stderr
    assert migrate_jobs(deployment) == []
    assert [item["status"] for item in json.loads(result.stdout)["tenants"]] == ["migrated"]
