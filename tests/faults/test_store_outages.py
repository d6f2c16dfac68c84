"""Store outages: the master stays in control, and outages heal by themselves.

MariaDB outages go through the fault proxy (``tcp_proxy.TcpProxy``): the
server itself is never stopped. SQLite faults are a full disk (the database
on a tiny tmpfs filled by a filler file) and another process's exclusive
lock. Each scenario prints what it measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobd.store import NewJob
from support import Deployment, require, wait_until

from .tcp_proxy import TcpProxy

DAEMONS = {"main": {"workers": 2, "modules": ["outage_tasks"]}}


def executions(deployment: Deployment) -> list[tuple[int, str, float, float]]:
    """(job id, master, start, end) of every run the tasks recorded."""
    runs = []
    for line in deployment.lines("executions.log"):
        job_id, master, _worker, start, end = line.split()
        runs.append((int(job_id), master, float(start), float(end)))
    return runs


def counts(deployment: Deployment) -> dict[str, int]:
    return dict(deployment.store.jobs.counts().get("main", {}))


def store_down(deployment: Deployment) -> dict[str, Any] | None:
    """The master's own word that its store is unavailable (``status`` answered from memory), else None."""
    try:
        health = deployment.status()["store"]
    except Exception:  # noqa: BLE001 - the master may be busy failing a store call
        return None
    return health if health.get("available") is False else None


def stop_and_time(deployment: Deployment, master: subprocess.Popen[bytes], timeout: float) -> float:
    """`jobd stop`, and the seconds until the master process is gone."""
    started = time.monotonic()
    result = deployment.jobd("stop", timeout=timeout + 30)
    master.wait(timeout=timeout + 30)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return elapsed


def through(proxy: TcpProxy, mariadb_url: str, deployment_factory: Callable[[str], Deployment], **settings: Any) -> Deployment:
    """A deployment whose store is ``mariadb_url``'s database reached through ``proxy``, its tables made."""
    deployment = deployment_factory(proxy.url(mariadb_url.rsplit("/", 1)[1]))
    deployment.write_config(DAEMONS, **settings)
    deployment.jobd("init", check=True)
    return deployment


@pytest.mark.mysql
def test_submit_and_stop_during_a_silent_partition_fail_fast_and_the_master_answers_from_memory(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any],
) -> None:
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        deployment = through(proxy, mariadb_url, deployment_factory, drain_timeout=2)
        master = deployment.start_master()
        job = json.loads(deployment.jobd("trigger", "main", "o.run", "--wait", check=True).stdout.splitlines()[0])
        assert isinstance(job, int)

        proxy.stall()  # packets dropped, no reset: only a read timeout can tell
        started = time.monotonic()
        trigger = deployment.jobd("trigger", "main", "o.run", timeout=60)
        trigger_seconds = time.monotonic() - started
        assert trigger.returncode == 3, (trigger.returncode, trigger.stdout, trigger.stderr)
        assert "the job was not submitted: the store at" in trigger.stderr and "unavailable" in trigger.stderr
        assert trigger_seconds < 10 + 5 + 3, f"jobd trigger took {trigger_seconds:.1f}s during a stall"

        health = wait_until(lambda: store_down(deployment), timeout=25, interval=0.5, message="the master to report the store down")
        human = deployment.jobd("status", timeout=30)
        assert human.returncode == 0 and "store unavailable" in human.stdout, (human.stdout, human.stderr)
        stop_seconds = stop_and_time(deployment, master, timeout=30)
        assert master.returncode == 0
        print(f"\nstall: jobd trigger failed (exit 3) after {trigger_seconds:.1f}s; status said {health}; "
              f"jobd stop returned after {stop_seconds:.1f}s (drain_timeout 2s)")
        assert stop_seconds < 2 + 5
        proxy.heal()


@pytest.mark.mysql
def test_stop_while_the_store_refuses_connections_ends_within_the_drain_timeout_and_loses_nothing(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any],
) -> None:
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        deployment = through(proxy, mariadb_url, deployment_factory, drain_timeout=2)
        direct = deployment_factory(mariadb_url)  # the test's own view of the store, around the proxy
        master = deployment.start_master()
        ids = direct.store.jobs.insert_many([NewJob("main", "o.run", {"seconds": 0.5}) for _ in range(4)])
        assert ids == 4
        wait_until(lambda: counts(direct).get("running", 0) >= 2, timeout=20, message="jobs to run")
        proxy.refuse()
        wait_until(lambda: store_down(deployment), timeout=15, interval=0.2, message="the master to report the store down")
        stop_seconds = stop_and_time(deployment, master, timeout=30)
        proxy.heal()
        print(f"\nrefused: jobd stop returned after {stop_seconds:.1f}s (drain_timeout 2s)")
        assert stop_seconds < 2 + 5
        # Nothing lost: a new master recovers what the stopped one could not write, and runs the rest.
        deployment.start_master()
        wait_until(lambda: counts(direct).get("succeeded") == 4, timeout=30, message="every job to succeed")


@pytest.mark.mysql
@pytest.mark.timeout(180)
def test_mariadb_cut_for_20s_during_5000_jobs_heals_by_itself_with_nothing_lost(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any],
) -> None:
    total, cut_seconds = 5000, 20.0
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        deployment = through(proxy, mariadb_url, deployment_factory, heartbeat_lease=60)
        direct = deployment_factory(mariadb_url)
        direct.store.jobs.insert_many([NewJob("main", "o.run", {}) for _ in range(total)])
        master = deployment.start_master()
        wait_until(lambda: len(deployment.lines("executions.log")) >= 1000, timeout=60, interval=0.1, message="1,000 runs")

        proxy.refuse()  # open connections cut, new ones reset
        cut_at = time.time()
        health = wait_until(lambda: store_down(deployment), timeout=15, interval=0.2, message="the master to report the store down")
        time.sleep(max(0.0, cut_seconds - (time.time() - cut_at)))  # the fault lasts 20 s
        runs_in_cut = len([run for run in executions(deployment) if run[2] > cut_at + 1])
        proxy.heal()
        healed_at = time.time()

        def first_start_after_heal() -> float | None:
            starts = [start for _id, _m, start, _end in executions(deployment) if start >= healed_at]
            return min(starts) if starts else None

        resumed = wait_until(first_start_after_heal, timeout=30, interval=0.05, message="a job to start after the cut")
        wait_until(lambda: counts(direct) == {"succeeded": total}, timeout=90, interval=0.5, message=f"{total} jobs to succeed")
        assert master.poll() is None, "the master exited"
        assert deployment.status()["store"]["available"] is True

        runs = executions(deployment)
        per_job = Counter(job_id for job_id, *_ in runs)
        assert len(per_job) == total, f"{total - len(per_job)} jobs never ran"
        twice = {job_id for job_id, n in per_job.items() if n > 1}
        running_at_cut = {job_id for job_id, _m, start, end in runs if start <= cut_at <= end + 1}
        assert twice <= running_at_cut, f"jobs ran twice though not running at the cut: {sorted(twice - running_at_cut)[:20]}"
        resume_seconds = resumed - healed_at
        print(f"\ncut {cut_seconds:.0f}s during {total} jobs: status said {health['error']!r}; "
              f"{runs_in_cut} runs started during the cut (prefetched); first job started {resume_seconds:.2f}s after the cut ended; "
              f"{len(twice)} job(s) ran twice (running at the cut); 0 lost")
        assert resume_seconds <= 5.0


# -- SQLite -------------------------------------------------------------------


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Any:
    """A 3 MB tmpfs for a SQLite store (ENOSPC on demand); unmounted afterwards."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")  # CI runs as root: there, a missing mount fails
    mount = Path("/tmp") / f"jobd-tiny-{os.getpid()}-{time.monotonic_ns()}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(volume: Path) -> Path:
    """Fill ``volume`` to the last byte with a filler file; return it."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 512):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def integrity(path: Path) -> str:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


@pytest.mark.timeout(120)
def test_sqlite_disk_full_for_10s_mid_run_gives_clear_errors_and_the_run_completes(
    deployment_factory: Callable[[str], Deployment], tiny_volume: Path,
) -> None:
    total = 1500
    db = tiny_volume / "jobd.db"
    deployment = deployment_factory(f"sqlite:///{db}")
    deployment.write_config(DAEMONS, drain_timeout=2)
    deployment.jobd("init", check=True)
    deployment.store.jobs.insert_many([NewJob("main", "o.run", {"seconds": 0.01}) for _ in range(total)])
    master = deployment.start_master()
    wait_until(lambda: len(deployment.lines("executions.log")) >= 200, timeout=60, interval=0.1, message="200 runs")

    filler = fill(tiny_volume)
    full_at = time.monotonic()
    # A commit that fits in the log file's existing space can still succeed on a full disk; the
    # master's own writes soon need more. Submit until one is refused; each accepted job must run.
    accepted = 0
    while True:
        trigger = deployment.jobd("trigger", "main", "o.run", timeout=60)
        if trigger.returncode != 0 or time.monotonic() - full_at > 8:
            break
        accepted += 1
    assert trigger.returncode == 3, (trigger.returncode, trigger.stdout, trigger.stderr)
    assert "database or disk is full" in trigger.stderr, trigger.stderr
    total += accepted
    wait_until(lambda: store_down(deployment), timeout=15, interval=0.2, message="the master to report the store down")
    time.sleep(max(0.0, 10 - (time.monotonic() - full_at)))
    filler.unlink()
    freed_at = time.time()

    wait_until(lambda: counts(deployment).get("succeeded") == total, timeout=60, interval=0.5, message=f"{total} jobs to succeed")
    done_seconds = time.time() - freed_at
    assert master.poll() is None
    stop_seconds = stop_and_time(deployment, master, timeout=30)
    log = "\n".join(deployment.lines("jobd.log"))
    assert "the store is unavailable (database or disk is full)" in log
    assert integrity(db) == "ok"
    runs = Counter(job_id for job_id, *_ in executions(deployment))
    assert len(runs) == total
    print(f"\nENOSPC for 10s: jobd trigger exit 3 after {accepted} accepted ({trigger.stderr.strip()[-70:]}); the run completed {done_seconds:.1f}s "
          f"after space came back; {sum(1 for n in runs.values() if n > 1)} job(s) ran twice; jobd stop took {stop_seconds:.1f}s; integrity ok")


LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
connection.close()
print("released", flush=True)
"""


@pytest.mark.timeout(180)
def test_sqlite_held_by_another_process_exclusive_lock_gives_clear_errors_and_the_run_completes(
    deployment_factory: Callable[[str], Deployment],
) -> None:
    total, lock_seconds = 1000, 30.0  # the 30 s: three times the store's 10 s lock wait
    deployment = deployment_factory(None)
    db = deployment.root / "jobd.db"
    deployment.write_config(DAEMONS, drain_timeout=2)
    deployment.jobd("init", check=True)
    deployment.store.jobs.insert_many([NewJob("main", "o.run", {"seconds": 0.01}) for _ in range(total)])
    master = deployment.start_master()
    wait_until(lambda: len(deployment.lines("executions.log")) >= 100, timeout=60, interval=0.1, message="100 runs")

    import sys

    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(lock_seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        started = time.monotonic()
        trigger = deployment.jobd("trigger", "main", "o.run", timeout=60)
        trigger_seconds = time.monotonic() - started
        assert trigger.returncode == 3, (trigger.returncode, trigger.stdout, trigger.stderr)
        assert "database is locked" in trigger.stderr, trigger.stderr
        health = wait_until(lambda: store_down(deployment), timeout=lock_seconds, interval=0.2, message="the master to report the store down")
        assert "locked" in health["error"]
        locker.wait(timeout=lock_seconds + 10)
        released_at = time.time()
        held = time.monotonic() - locked_at
    finally:
        if locker.poll() is None:
            os.kill(locker.pid, signal.SIGKILL)
            locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()
    wait_until(lambda: counts(deployment).get("succeeded") == total, timeout=60, interval=0.5, message=f"{total} jobs to succeed")
    done_seconds = time.time() - released_at
    log = "\n".join(deployment.lines("jobd.log"))
    assert "the store is unavailable (database is locked)" in log
    stop_seconds = stop_and_time(deployment, master, timeout=30)
    assert integrity(db) == "ok"
    runs = Counter(job_id for job_id, *_ in executions(deployment))
    assert len(runs) == total
    print(f"\nexclusive lock held {held:.0f}s: jobd trigger exit 3 after {trigger_seconds:.1f}s ({trigger.stderr.strip()[-60:]}); "
          f"the run completed {done_seconds:.1f}s after the lock was released; {sum(1 for n in runs.values() if n > 1)} job(s) ran twice; "
          f"jobd stop took {stop_seconds:.1f}s; integrity ok")


@pytest.mark.mysql
@pytest.mark.parametrize("catalogue", ["never published", "published"])
def test_a_submit_while_the_store_refuses_connections_raises_store_unavailable(
    mariadb_url: str, deployment_factory: Callable[[str], Deployment], catalogue: str,
) -> None:
    """Every way a submit meets an outage reads the same, a refused new connection included.

    The full submit's held connection is opened with ``Engine.raw_connection``,
    which lets the driver's own error through, and a submit through the
    driver alone (the catalogue published) sees nothing but the driver's
    errors; either must still come out as jobd's ``StoreUnavailable`` (exit
    3 from `jobd trigger`), never a raw pymysql ``OperationalError``.
    """
    import jobd
    from jobd.errors import StoreUnavailable

    with TcpProxy() as proxy:
        deployment = through(proxy, mariadb_url, deployment_factory)
        if catalogue == "published":
            deployment.jobd("check", check=True)
        config = str(deployment.config_path)
        assert jobd.submit("main", "o.run", {"seconds": 0}, config=config) > 0
        proxy.refuse()
        for _ in range(3):  # the held connection lost, then new connections refused
            with pytest.raises(StoreUnavailable, match="the job was not submitted: .* unavailable"):
                jobd.submit("main", "o.run", {"seconds": 0}, config=config)
        result = deployment.jobd("trigger", "main", "o.run")
        assert result.returncode == 3 and "unavailable" in result.stderr, result.stderr
        proxy.heal()
        assert jobd.submit("main", "o.run", {"seconds": 0}, config=config) > 0


@pytest.mark.mysql
def test_with_no_master_the_quick_reads_report_a_store_that_refuses_and_answer_once_it_is_back(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any],
) -> None:
    """`jobd jobs`, `job`, `status`, `status DAEMON`, `batches` and `logs` read through the driver alone with no
    master; a store that refuses connections is exit 3 with the store's reason, never a hang or a traceback."""
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        deployment = through(proxy, mariadb_url, deployment_factory)
        job_id = deployment.store.jobs.insert(NewJob("main", "o.run", {}))
        commands = [("jobs",), ("job", str(job_id)), ("status", "--json"), ("status", "main"), ("batches",), ("logs", str(job_id))]
        assert [deployment.jobd(*args).returncode for args in commands] == [0] * len(commands)  # digest made, store read
        deployment.store.dispose()  # the test's own pooled connections would outlive the refusal
        proxy.refuse()
        for args in commands:
            started = time.monotonic()
            result = deployment.jobd(*args, timeout=60)
            seconds = time.monotonic() - started
            assert result.returncode == 3, (args, result.returncode, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr and ("store" in result.stderr), (args, result.stderr)
            assert seconds < 30, f"jobd {' '.join(args)} took {seconds:.1f}s against a store that refuses"
        proxy.heal()
        assert str(job_id) in deployment.jobd("jobs", check=True).stdout
