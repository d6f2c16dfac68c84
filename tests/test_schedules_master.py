"""Schedules in a running master: exactly once, overlap, reload, shell tasks."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import Deployment, wait_until
from test_cli_fast_paths import loads_nothing_heavy, own_cache  # noqa: F401  (own_cache: a fixture)


def schedule_file(deployment: Deployment, text: str) -> None:
    folder = deployment.root / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "main.toml").write_text(text)


def scheduled_jobs(deployment: Deployment, entry: str) -> list[tuple[int, str]]:
    jobs = deployment.store.tables["jobs"]
    with deployment.store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(jobs.c.id, jobs.c.fire_key).where(jobs.c.fire_key.like(f"{entry}@%")).order_by(jobs.c.id)
        ).all()
    return [(int(row[0]), str(row[1])) for row in rows]


@pytest.mark.slow
def test_three_masters_on_one_mariadb_store_fire_every_tick_exactly_once(deployment_factory, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    masters = [deployment_factory(mariadb_url) for _ in range(3)]
    for deployment in masters:
        deployment.write_config({"main": {"workers": 2}})
        schedule_file(deployment, '[entries.heartbeat]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\noverlap = "allow"\n')
    for deployment in masters:
        deployment.start_master()
    start = time.time()
    time.sleep(30)
    for deployment in masters:
        for process in deployment.masters:
            os.kill(process.pid, signal.SIGTERM)
        for process in deployment.masters:
            process.wait(30)
    elapsed = time.time() - start
    fired = scheduled_jobs(masters[0], "heartbeat")
    keys = Counter(key for _, key in fired)
    assert max(keys.values()) == 1, "a tick fired twice"
    assert len(keys) >= int(elapsed) - 3, f"ticks were lost: {len(keys)} in {elapsed:.0f}s"
    ticks = sorted(key.split("@")[1] for key in keys)
    seconds = [time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) for t in ticks]
    assert all(later - earlier == 1 for earlier, later in zip(seconds, seconds[1:])), "a tick is missing in the middle"


def test_forbid_never_runs_two_at_once_and_the_skips_show_in_jobd_schedules(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 3}})
    schedule_file(deployment, '[entries.slow]\ndaemon = "main"\ntask = "t.tick"\nargs = { seconds = 2.2 }\nevery = "1s"\noverlap = "forbid"\n')
    deployment.start_master()
    wait_until(lambda: len(deployment.lines("ticks.log")) >= 3, timeout=40, message="three runs")
    runs = sorted((float(line.split()[1]), float(line.split()[2])) for line in deployment.lines("ticks.log"))
    for (_, first_end), (second_start, _) in zip(runs, runs[1:]):
        assert second_start >= first_end - 0.05, f"two runs overlapped: {runs}"
    listing = deployment.jobd("schedules", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = json.loads(listing.stdout)
    assert row["skipped"] >= 2 and row["trigger"] == "every 1s" and len(row["next"]) == 3
    assert "slow" in deployment.jobd("schedules").stdout


def test_reload_removes_an_entry_for_good_and_refuses_a_broken_file(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    both = (
        '[entries.keep]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\n'
        '[entries.drop]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\n'
    )
    schedule_file(deployment, both)
    deployment.start_master()
    wait_until(lambda: scheduled_jobs(deployment, "drop"), timeout=20, message="the entry to fire")
    schedule_file(deployment, '[entries.keep]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\n')
    assert deployment.jobd("reload").returncode == 0
    time.sleep(0.5)
    dropped = len(scheduled_jobs(deployment, "drop"))
    time.sleep(3)
    assert len(scheduled_jobs(deployment, "drop")) == dropped, "a removed entry fired again"

    schedule_file(deployment, '[entries.keep]\ndaemon = "main"\ntask = "t.tick"\ncron = "not a cron line"\n')
    refused = deployment.jobd("reload")
    assert refused.returncode == 2 and "main.toml" in refused.stderr and "entry 'keep'" in refused.stderr
    kept = len(scheduled_jobs(deployment, "keep"))
    wait_until(lambda: len(scheduled_jobs(deployment, "keep")) >= kept + 2, timeout=10, message="the old schedule to keep firing")


def test_an_entry_naming_an_unknown_task_refuses_start(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    schedule_file(deployment, '[entries.bad]\ndaemon = "main"\ntask = "no.such"\nevery = "1m"\n')
    result = deployment.jobd("start")
    assert result.returncode == 2 and "entry 'bad'.task" in result.stderr
    assert not deployment.answers()


def test_a_shell_task_that_exits_3_fails_with_its_output_in_the_log(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 1}})
    schedule_file(
        deployment,
        '[entries.php]\ndaemon = "main"\nevery = "1s"\nmisfire = "skip"\n'
        "shell = { command = \"echo importing contacts; echo 'disk full' >&2; exit 3\", timeout = \"10s\" }\n",
    )
    deployment.start_master()
    wait_until(lambda: scheduled_jobs(deployment, "php"), timeout=20, message="the shell entry to fire")
    job_id = scheduled_jobs(deployment, "php")[0][0]
    deployment.wait_all_final([job_id])
    job = deployment.store.jobs.get(job_id)
    assert str(job.state) == "dead" and "exited with code 3" in (job.error or "")
    log = (deployment.root / "jobd.log").read_text()
    assert f"job={job_id}" in log and "importing contacts" in log and "disk full" in log


def test_pause_is_persisted_and_resume_fires_again(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    schedule_file(deployment, '[entries.beat]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\n')
    deployment.jobd("init")
    assert deployment.jobd("pause", "main").returncode == 0
    deployment.start_master()
    time.sleep(2.5)
    assert scheduled_jobs(deployment, "beat") == []
    assert deployment.jobd("resume", "main").returncode == 0
    wait_until(lambda: scheduled_jobs(deployment, "beat"), timeout=10, message="firing after resume")
    assert deployment.jobd("pause", "nosuch").returncode == 2


def test_import_crontab_writes_a_schedule_file_jobd_accepts(deployment: Deployment) -> None:
    crontab = deployment.root / "my.cron"
    crontab.write_text("MAILTO=ops@example.com\n# nightly\n30 2 * * * /usr/bin/php /srv/app/cron.php nightly\n*/5 * * * 1-5 /srv/app/sync.sh\n@reboot /srv/app/warmup.sh\n")
    deployment.write_config({"cron": {"workers": 1}})
    (deployment.root / "schedules").mkdir()
    result = deployment.jobd("import-crontab", str(crontab), "--daemon", "cron", "-o", str(deployment.root / "schedules" / "cron.toml"))
    assert result.returncode == 1, "an unconvertible line is reported with exit 1"
    assert "@reboot" in result.stderr and ":5:" in result.stderr
    check = deployment.jobd("check")
    assert check.returncode == 0, check.stderr
    listing = json.loads(deployment.jobd("schedules", "--json").stdout)
    assert len(listing) == 2 and all(row["daemon"] == "cron" for row in listing)


def test_import_crontab_names_the_first_line_that_is_not_utf8_and_writes_nothing(deployment: Deployment) -> None:
    crontab = deployment.root / "old.cron"
    crontab.write_bytes(b"# nightly\n30 2 * * * /srv/app/report.sh --title caf\xe9\n")
    target = deployment.root / "cron.toml"
    result = deployment.jobd("import-crontab", str(crontab), "--daemon", "cron", "-o", str(target))
    assert result.returncode == 2, result.stderr
    assert f"error: {crontab}:2: not UTF-8 text (byte 0xe9); convert it first, e.g. iconv" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and not target.exists()


def test_jobd_schedules_with_a_master_running_shows_its_entries_and_last_outcomes_and_loads_nothing_heavy(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    from jobd.config import load_config
    from jobd.status.report import schedule_rows

    deployment.write_config({"main": {"workers": 1}})
    schedule_file(deployment, '[entries.often]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\n\n'
                              '[entries.yearly]\ndaemon = "main"\ntask = "t.tick"\ncron = "0 5 1 1 *"\n')
    deployment.start_master()
    wait_until(lambda: any(job.state.value == "succeeded" for job in deployment.store.jobs.list(limit=5)), timeout=30,
               message="a tick of `often` to run")
    listing, tables = (result.stdout for result in loads_nothing_heavy(deployment, tmp_path, ("schedules", "--json"), ("schedules",)))
    rows = {row["name"]: row for row in json.loads(listing)}
    assert rows["often"]["fired"] >= 1 and rows["often"]["last_outcome"] in ("queued", "running", "succeeded")
    assert rows["yearly"]["fired"] == 0 and rows["yearly"]["last_outcome"] is None
    assert "often" in tables and "yearly" in tables
    # The rows the command composes itself (the full path) for the entry that does not move.
    composed_here = {row["name"]: row for row in schedule_rows(load_config(deployment.config_path))}
    assert json.loads(json.dumps(composed_here["yearly"], default=str)) == rows["yearly"]
    assert set(composed_here) == set(rows)
