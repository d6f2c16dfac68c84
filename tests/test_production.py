"""Production behaviour with real masters: memory recycling, metrics, job logs, alerts."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from jobd.observability.alerts import Alerter, CrashLoopWatch
from jobd.states import JobState
from jobd.store import NewJob
from jobd.workers.memory import MB, rss_bytes

from support import Deployment, wait_until

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def submit(deployment: Deployment, task: str, count: int = 1, daemon: str = "main", **args) -> list[int]:  # type: ignore[no-untyped-def]
    return [deployment.store.jobs.insert(NewJob(daemon, task, dict(args))) for _ in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from the master's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))))


# -- worker recycling ------------------------------------------------------------


def test_leaking_and_counted_workers_are_recycled_and_the_daemons_keep_serving(deployment: Deployment) -> None:
    port = free_port()
    daemons = {"leaky": {"workers": 1}, "counted": {"workers": 1, "max_tasks_per_worker": 3}}
    deployment.write_config(daemons, metrics=f"127.0.0.1:{port}")
    master = deployment.start_master()
    wait_until(lambda: deployment.worker_pids("leaky", "idle"), message="a leaky worker")
    # The limit is relative to what a fresh worker weighs on this machine.
    baseline = rss_bytes(deployment.worker_pids("leaky", "idle")[0]) or 0
    limit_mb = baseline // MB + 60
    daemons["leaky"].update(max_memory_mb=limit_mb, max_memory_hard_mb=limit_mb + 400)
    deployment.write_config(daemons, metrics=f"127.0.0.1:{port}")
    assert deployment.jobd("reload").returncode == 0

    leaks = []
    for _ in range(4):  # 40 MB a job: over the limit after the second job of a worker
        leaks += submit(deployment, "t.leak", daemon="leaky", mb=40)
        deployment.wait_all_final(leaks)
    counted = submit(deployment, "t.record", count=6, daemon="counted")
    deployment.wait_all_final(counted)
    assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in leaks + counted)

    pids = [int(line.split()[1]) for line in deployment.lines("leak.log")]
    assert pids[0] == pids[1] and pids[1] != pids[2], f"a worker should serve two leaky jobs, then be replaced: {pids}"
    wait_until(lambda: len(deployment.worker_pids("counted", "idle")) == 1, message="the counted pool to refill")

    def recycled() -> bool:
        samples = scrape(port)
        return (
            (value(samples, "jobd_worker_recycles_total", daemon="leaky", reason="max_memory") or 0) >= 2
            and value(samples, "jobd_worker_recycles_total", daemon="counted", reason="max_tasks") == 2
        )

    wait_until(recycled, timeout=10, message="recycles in the metrics")
    samples = scrape(port)
    assert value(samples, "jobd_worker_restarts_total", daemon="leaky") == 0, "a recycle is not a crash"
    log = (deployment.root / "jobd.log").read_text()
    assert re.search(r"daemon leaky: recycling worker \d+ after 2 jobs: RSS \d+ MB over max_memory_mb=" + str(limit_mb), log)
    assert "daemon counted: recycling worker" in log and "after 3 jobs" in log
    assert master.poll() is None


def test_a_job_past_the_hard_memory_limit_is_killed_and_retried(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "backoff_base": 0.1}})
    deployment.start_master()
    wait_until(lambda: deployment.worker_pids("main", "idle"), message="a worker")
    baseline = rss_bytes(deployment.worker_pids("main", "idle")[0]) or 0
    deployment.write_config({"main": {"workers": 1, "backoff_base": 0.1, "max_memory_hard_mb": baseline // MB + 100}})
    assert deployment.jobd("reload").returncode == 0
    (job_id,) = submit(deployment, "t.hog", mb=250)
    deployment.wait_all_final([job_id], timeout=30)
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.attempts == 2
    first_pid = int(deployment.lines("attempts.log")[0].split()[2])
    assert first_pid not in deployment.worker_pids("main")
    # The master writes a job's log lines in batches, after the job's end is stored: wait for the kill's line.
    wait_until(lambda: "max_memory_hard_mb" in deployment.jobd("logs", str(job_id)).stdout, timeout=20, interval=0.5,
               message="the job's log to say why its first attempt was killed")


# -- metrics ------------------------------------------------------------------------


def test_the_metrics_endpoint_reports_what_ran(deployment: Deployment) -> None:
    port = free_port()
    deployment.write_config(
        {"main": {"workers": 1, "max_attempts": 2, "backoff_base": 0.1}, "parked": {"workers": 0}},
        metrics=f"127.0.0.1:{port}",
    )
    deployment.start_master()
    ran = submit(deployment, "t.record", count=3) + submit(deployment, "t.fail")
    waiting = submit(deployment, "t.record", count=2, daemon="parked")
    deployment.wait_all_final(ran)
    time.sleep(0.3)

    def settled() -> dict:  # type: ignore[type-arg]
        """A scrape after the gauges were refreshed with every job in place (an earlier refresh may
        have counted main's jobs still queued, with parked's already there)."""
        samples = scrape(port)
        depths = (value(samples, "jobd_queue_depth", daemon="parked"), value(samples, "jobd_queue_depth", daemon="main"))
        return samples if depths == (2, 0) else {}

    samples = wait_until(settled, timeout=10, message="the queue gauges to be refreshed after the jobs ran")
    finished = "jobd_jobs_finished_total"
    assert value(samples, finished, daemon="main", task="t.record", outcome="succeeded") == 3
    assert value(samples, finished, daemon="main", task="t.fail", outcome="retrying") == 1
    assert value(samples, finished, daemon="main", task="t.fail", outcome="dead") == 1
    assert value(samples, "jobd_job_duration_seconds_count", daemon="main", task="t.record") == 3
    assert value(samples, "jobd_job_duration_seconds_count", daemon="main", task="t.fail") == 2
    assert value(samples, "jobd_queue_depth", daemon="main") == 0
    oldest = value(samples, "jobd_queue_oldest_age_seconds", daemon="parked") or 0
    created = deployment.store.jobs.get(waiting[0]).created_at or 0
    assert 0 < oldest <= time.time() - created + 2
    assert value(samples, "jobd_workers", daemon="main", state="idle") == 1
    assert value(samples, "jobd_workers", daemon="parked", state="idle") == 0
    assert value(samples, "jobd_worker_restarts_total", daemon="main") == 0
    assert value(samples, "jobd_master_draining") == 0

    names = {name for name, _labels in samples}
    documented = set(re.findall(r"^\| `(jobd_[a-z_]+)`", DOCS.read_text(), re.MULTILINE))
    for name in documented - {"jobd_schedule_lag_seconds", "jobd_store_errors_total", "jobd_memcached_errors_total", "jobd_alerts_total"}:
        assert any(sample == name or sample.startswith(name + "_") for sample in names), f"{name} is documented but not served"
    for name in names:
        assert any(name == doc or name.startswith(doc.removesuffix("_total")) for doc in documented), f"{name} is not documented"


def test_schedule_lag_and_error_counters_are_reportable_from_other_modules() -> None:
    from jobd.observability import metrics
    from jobd.observability.prometheus import Metrics

    collected = Metrics()
    metrics.install(collected)
    try:
        metrics.observe_schedule_lag("reports.daily", 1.5)
        metrics.count_memcached_error("set")
        metrics.count_store_error("heartbeat")
    finally:
        metrics.install(None)
    metrics.observe_schedule_lag("ignored", 1.0)  # no endpoint: a no-op
    registry = collected.registry
    assert registry.get_sample_value("jobd_schedule_lag_seconds_count", {"entry": "reports.daily"}) == 1
    assert registry.get_sample_value("jobd_memcached_errors_total", {"operation": "set"}) == 1
    assert registry.get_sample_value("jobd_store_errors_total", {"operation": "heartbeat"}) == 1


# -- job logs -------------------------------------------------------------------------


def test_jobd_logs_prints_a_jobs_own_lines_with_the_traceback_of_each_attempt(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "max_attempts": 2, "backoff_base": 0.1}}, log_format="json")
    deployment.start_master()
    (failing,) = submit(deployment, "t.chatty_fail", marker="needle")
    (other,) = submit(deployment, "t.chatty_fail", marker="haystack")
    deployment.wait_all_final([failing, other])
    wait_until(lambda: "is dead" in deployment.jobd("logs", str(failing)).stdout, timeout=10, message="the last lines")

    result = deployment.jobd("logs", str(failing))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "looking at needle on attempt 1" in out and "looking at needle on attempt 2" in out
    assert out.count("Traceback (most recent call last)") == 2
    assert "ValueError: boom in needle" in out and "testtasks.py" in out
    assert "attempt=1" in out and "attempt=2" in out
    assert f"job {failing} (t.chatty_fail) is dead after 2 attempt(s)" in out
    assert "haystack" not in out, "another job's lines leaked in"

    as_json = [json.loads(line) for line in deployment.jobd("logs", str(failing), "--json").stdout.splitlines()]
    assert {line["job_id"] for line in as_json} == {failing}

    records = [json.loads(line) for line in deployment.lines("jobd.log")]
    started = [r for r in records if r["job_id"] == failing and "started" in r["message"]]
    assert started and started[0]["daemon"] == "main" and started[0]["task"] == "t.chatty_fail"
    assert started[0]["attempt"] == 1 and isinstance(started[0]["pid"], int)
    assert any("traceback" in r for r in records if r["job_id"] == failing)

    assert deployment.jobd("logs", "999999").returncode == 2


def test_jobd_logs_follow_streams_until_the_job_ends(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.sleep", seconds=1.5)
    wait_until(lambda: deployment.lines("started.log"), message="the job to start")
    follow = subprocess.run(
        [sys.executable, "-m", "jobd.cli.app", "logs", str(job_id), "--follow"],
        env=deployment.env(), capture_output=True, text=True, timeout=30,
    )
    assert follow.returncode == 0, follow.stderr
    assert "t.sleep started" in follow.stdout and "succeeded in" in follow.stdout


def test_an_old_v1_store_upgrades_in_place(store_url: str) -> None:
    import sqlalchemy as sa

    from jobd.store import SCHEMA_VERSION, open_store

    store = open_store(store_url)
    store.initialise()
    job_id = store.jobs.insert(NewJob("main", "t.record", {}))
    with store.engine.begin() as connection:  # make it look like jobd v1 left it
        store.tables["job_logs"].drop(connection)
        store.tables["task_catalogue"].drop(connection)
        meta = store.tables["meta"]
        connection.execute(meta.update().where(meta.c.key == "schema_version").values(value="1"))
    assert store.version() == 1
    assert store.initialise() == SCHEMA_VERSION == 8
    assert store.version() == 8
    assert sa.inspect(store.engine).has_table("jobd_job_logs") and sa.inspect(store.engine).has_table("jobd_task_catalogue")
    assert store.jobs.get(job_id).task == "t.record"
    store.dispose()


# -- alerts --------------------------------------------------------------------------------


def test_a_job_going_dead_runs_the_alert_command_once_with_its_json(deployment: Deployment) -> None:
    alerts = deployment.root / "alerts"
    alerts.mkdir()
    command = f"cat > {alerts}/$$.json"
    deployment.write_config({"main": {"workers": 1, "max_attempts": 2, "backoff_base": 0.1}}, alert_command=command)
    deployment.start_master()
    (dead,) = submit(deployment, "t.fail")
    (fine,) = submit(deployment, "t.record")
    deployment.wait_all_final([dead, fine])
    wait_until(lambda: list(alerts.glob("*.json")), timeout=10, message="the alert")
    time.sleep(1.0)  # a second alert would have come by now
    (written,) = list(alerts.glob("*.json"))
    event = json.loads(written.read_text())
    assert event["event"] == "job_dead" and event["job_id"] == dead
    assert event["daemon"] == "main" and event["task"] == "t.fail" and event["attempts"] == 2
    assert event["error"] == "ValueError: boom: the task always fails"
    assert "Traceback" in event["traceback"]


def test_an_alert_command_that_hangs_is_killed_at_its_timeout() -> None:
    alerter = Alerter("sleep 30", timeout=0.5)
    started = time.monotonic()
    assert alerter.fire("job_dead", {"job_id": 1})
    assert time.monotonic() - started < 0.5, "firing must not wait for the command"
    wait_until(lambda: (alerter.poll(), not alerter.running)[1], timeout=5, message="the hung alert to be killed")
    assert Alerter(None, timeout=1).fire("job_dead", {}) is False


def test_a_crash_loop_alerts_once_per_streak() -> None:
    watch = CrashLoopWatch(threshold=3)
    assert [watch.check("sms", streak) for streak in (1, 2, 3, 4, 5)] == [False, False, True, False, False]
    assert watch.check("sms", 1) is False and watch.check("sms", 3) is True
