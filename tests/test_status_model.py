"""The typed status records: the master's wire snapshot round-trips, and ``status --json`` keeps version 1's shape.

``StatusReport.to_json`` is the one writer of docs/status-json.md; tools
compare its output, so the keys and their order are part of the contract.
"""

from __future__ import annotations

import json

from jobd.status.model import (
    AnnouncedMaster, DaemonStatus, MasterInfo, MasterStatus, PoolStatus, RegisteredMaster, RunningJob, StatusReport,
    WorkerStatus,
)

NOW = 1000.0
PROGRESS = {"done": 5, "total": 10, "percent": 50.0, "message": "half", "eta_seconds": 2.0, "started_at": 990.0, "updated_at": 999.0}
MASTER = MasterInfo(id="h:1:abc", pid=1, host="h", version="0.1.0", state="running", started_at=900.0, uptime=100.0,
                    config="/x/jobd.toml", jobs_finished=7, handoffs={"taken": 1})
BUSY = WorkerStatus(pid=11, state="busy", uptime=10.5, jobs_done=3, job_id=5, task="t.record", attempt=1, progress=PROGRESS,
                    running_for=4.0, rss_mb=20.1, cpu_percent=1.5, rss_bytes=21076377)
IDLE = WorkerStatus(pid=12, state="idle", uptime=10.5, jobs_done=3)
POOL = PoolStatus(daemon="main", size=2, workers=[BUSY, IDLE], counts={"queued": 2, "running": 1},
                  desired={"state": "started", "workers": None, "size": 2}, state="started")
REGISTERED = RegisteredMaster(id="h:1:abc", host="h", pid=1, version="0.1.0", state="running", daemons=["main"],
                              control_socket="/x/s", started_at=900.0, heartbeat_at=999.0, stopped_at=None,
                              heartbeat_age=1.0, alive=True)


def test_a_master_status_survives_the_wire_unchanged() -> None:
    status = MasterStatus(master=MASTER, daemons={"main": POOL}, store={"available": True, "last_outage_seconds": None},
                          lease={"lease": 30.0, "renewed_ago": 1.0, "fence_in": 29.0, "fenced": False}, schedules=[{"name": "x"}])
    wire = json.loads(json.dumps(status.to_wire()))
    assert list(wire) == ["store", "lease", "master", "daemons", "schedules"]
    assert MasterStatus.from_wire(wire) == status
    assert list(wire["daemons"]["main"]["workers"][0]) == [
        "pid", "state", "uptime", "jobs_done", "job_id", "task", "attempt", "progress", "running_for", "waiting",
        "rss_mb", "cpu_percent", "rss_bytes",
    ]


def test_a_pool_counts_its_busy_and_idle_workers() -> None:
    assert (POOL.busy, POOL.idle) == (1, 1)


def test_a_running_master_report_has_version_1s_keys_in_order() -> None:
    running = RunningJob.of_worker("main", BUSY, "h", NOW)
    report = StatusReport(
        generated_at=NOW, master=MASTER, masters=[REGISTERED], store={"available": True}, lease={"fenced": False},
        daemons={"main": DaemonStatus(size=2, counts=POOL.counts, desired=POOL.desired, state="started", pool=POOL,
                                      running_jobs=[running])},
        unserved=[], unknown_states=[],
    )
    document = report.to_json()
    assert list(document) == ["version", "generated_at", "master", "daemons", "store", "lease", "masters", "unserved", "unknown_states"]
    assert document["master"] == {"running": True, **MASTER.to_wire()}
    daemon = document["daemons"]["main"]
    assert list(daemon) == ["size", "busy", "idle", "workers", "restarts", "counts", "desired", "state", "restart", "running_jobs"]
    assert daemon["running_jobs"] == [{
        "job_id": 5, "task": "t.record", "attempt": 1, "host": "h", "worker_pid": 11, "done": 5, "total": 10,
        "percent": 50.0, "message": "half", "eta_seconds": 2.0, "started_at": 990.0, "elapsed": 10.0, "updated_at": 999.0,
    }]


def test_a_stopped_master_report_comes_from_the_store_and_says_so() -> None:
    report = StatusReport(generated_at=NOW, master=None, masters=[],
                          daemons={"main": DaemonStatus(size=2, counts={"dead": 1}, desired=None, state="stopped")},
                          unserved=[], unknown_states=[])
    document = report.to_json()
    assert list(document) == ["version", "generated_at", "unserved", "unknown_states", "masters", "master", "daemons"]
    assert document["master"] == {"running": False}
    assert document["daemons"]["main"] == {"size": 2, "counts": {"dead": 1}, "desired": None, "state": "stopped", "running_jobs": []}


def test_a_daemon_waiting_for_its_rate_says_so_before_its_running_jobs() -> None:
    waits = [{"key": "main", "task": None, "per_second": 1.0, "burst": 1.0, "waiting": 3, "tokens": 0.2, "next_token_in": 0.8}]
    daemon = DaemonStatus(size=1, counts={}, desired=None, state="stopped", rate_limited=waits).to_json()
    assert list(daemon)[-2:] == ["rate_limited", "running_jobs"] and daemon["rate_limited"] == waits


def test_a_store_that_could_not_be_read_leaves_out_what_only_it_knows() -> None:
    document = StatusReport(generated_at=NOW, master=MASTER, daemons={}, store={"available": False}).to_json()
    assert "unserved" not in document and "unknown_states" not in document and document["masters"] == []


def test_a_registered_master_reads_the_same_whether_or_not_memcached_announced_it() -> None:
    plain = REGISTERED.to_json(NOW)
    announced = RegisteredMaster(**{**REGISTERED.to_record(), "announced": True}).to_json(NOW)
    assert plain == announced == {**REGISTERED.to_record(), "running": True, "uptime": 100.0}
    assert list(announced)[:7] == ["id", "host", "pid", "state", "started_at", "uptime", "version"]  # the snapshot's keys first
    assert AnnouncedMaster.of(MASTER).to_json(NOW) == {
        "id": "h:1:abc", "host": "h", "pid": 1, "state": "running", "started_at": 900.0, "uptime": 100.0,
        "version": "0.1.0", "running": True,
    }


def test_a_dead_master_has_no_uptime() -> None:
    dead = RegisteredMaster(**{**REGISTERED.to_record(), "alive": False, "state": "dead"})
    assert dead.to_json(NOW)["uptime"] is None and dead.to_json(NOW)["running"] is False
