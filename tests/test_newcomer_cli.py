"""What a newcomer tripped over on day one, each pinned down: CLI edges, wording, fields that disagreed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from jobd import api
from jobd.errors import InvalidArgs, StoreUnavailable, UnknownJob
from jobd.job import Job
from jobd.states import JobState, phrase
from jobd.store import NewJob
from support import Deployment, wait_until

from jobd.cli.jobs_commands import job_fields_for_people
from jobd.cli.output import counted


# -- refused up front, with the exit code of bad input ---------------------------------


def test_check_refuses_a_store_url_jobd_cannot_open_with_exit_2(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    text = deployment.config_path.read_text().replace(deployment.store_url, "postgresql://db/jobs")
    deployment.config_path.write_text(text)
    result = deployment.jobd("check")
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "store" in message and "postgresql://db/jobs" in message and "mysql+pymysql://" in message


@pytest.mark.parametrize("command", ["job", "cancel", "retry", "logs", "batch"])
def test_an_id_no_store_can_hold_is_refused_as_bad_input_not_a_traceback(deployment: Deployment, command: str) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    result = deployment.jobd(command, str(2**64))  # SQLite cannot even bind it
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not in the range 1<=x<=9223372036854775807" in " ".join(result.stderr.replace("│", " ").split())
    with pytest.raises(UnknownJob):
        api.get_job(2**64, config=str(deployment.config_path))


@pytest.mark.parametrize(
    "option, complaint",
    [
        (["--delay", "nan"], "--delay must be a finite number of seconds, not nan"),
        (["--delay", "inf"], "--delay must be a finite number of seconds, not inf"),
        (["--delay", "-5"], "Invalid value for '--delay': -5.0 is not in the range x>=0."),
        (["--priority", str(2**64)], "is not in the range -2147483648<=x<=2147483647."),
    ],
)
def test_trigger_refuses_a_delay_or_priority_no_job_can_keep_and_writes_nothing(
    deployment: Deployment, option: list[str], complaint: str,
) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    result = deployment.jobd("trigger", "main", "t.noop", *option)
    assert result.returncode == 2, result.stderr
    assert complaint in " ".join(result.stderr.replace("│", " ").split())
    assert sum(sum(states.values()) for states in deployment.store.jobs.counts().values()) == 0


def test_migrate_validates_the_whole_config_before_contacting_any_tenant(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    with deployment.config_path.open("a") as config:
        config.write('bogus_key = 1\n[migrations]\nfolder = "steps"\nregistry_url = "mysql+pymysql://root@127.0.0.1:1/nowhere"\n')
    text = deployment.config_path.read_text()
    deployment.config_path.write_text("bogus_key = 1\n" + text.replace("bogus_key = 1\n", ""))
    for command in (["migrate", "--dry-run"], ["migrate", "status"]):
        result = deployment.jobd(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "bogus_key" in result.stderr and "unknown key" in " ".join(result.stderr.split())


def test_nan_and_infinity_in_args_are_refused_and_nothing_is_stored(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    for text in ('{"n": NaN}', '{"n": Infinity}', '{"n": -Infinity}'):
        result = deployment.jobd("trigger", "main", "t.record", "--json", text)
        assert result.returncode == 2, result.stderr
        assert "NaN" in result.stderr or "Infinity" in result.stderr
    with pytest.raises(InvalidArgs, match="NaN or Infinity"):
        api.submit("main", "t.record", {"n": math.nan}, config=str(deployment.config_path))
    assert deployment.store.jobs.counts() == {}


def test_a_submit_before_jobd_init_says_to_run_it(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    with pytest.raises(StoreUnavailable, match="no jobd tables.*jobd init"):
        api.submit("main", "t.record", {}, config=str(deployment.config_path))


# -- args too large for a command line ----------------------------------------------------


def test_json_args_come_from_a_file_or_from_standard_input(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    big = {"n": "x" * 300_000}  # past what one command-line argument may hold
    (deployment.root / "args.json").write_text(json.dumps(big))
    from_file = deployment.jobd("trigger", "main", "t.record", "--json", "@args.json")
    assert from_file.returncode == 0, from_file.stderr
    from_stdin = subprocess.run(
        [sys.executable, "-m", "jobd.cli.app", "trigger", "main", "t.record", "--json", "-"],
        input=json.dumps({"n": 7}), env=deployment.env(), cwd=deployment.root, capture_output=True, text=True, timeout=60,
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert deployment.store.jobs.get(int(from_file.stdout.split()[0])).args == big
    assert deployment.store.jobs.get(int(from_stdin.stdout.split()[0])).args == {"n": 7}
    missing = deployment.jobd("trigger", "main", "t.record", "--json", "@no-such-file.json")
    assert missing.returncode == 2 and "no-such-file.json" in missing.stderr


# -- waiting ----------------------------------------------------------------------------


def test_trigger_wait_with_no_master_says_so_at_once_and_leaves_the_job_queued(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    started = time.monotonic()
    result = deployment.jobd("trigger", "main", "t.record", "--wait", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 4, result.stderr
    assert "no live master runs daemon 'main'" in " ".join(result.stderr.split())
    job_id = int(result.stdout.split()[0])
    assert deployment.store.jobs.get(job_id).state is JobState.QUEUED


def test_trigger_wait_that_runs_out_exits_with_its_own_code(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    result = deployment.jobd("trigger", "main", "t.sleep", "--arg", "seconds=20", "--wait", "--timeout", "1", timeout=60)
    assert result.returncode == 6, (result.stdout, result.stderr)
    assert "still" in result.stderr and "may still finish" in result.stderr


def test_jobd_stop_says_what_the_drain_waits_for(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, drain_timeout=30)
    deployment.start_master()
    job_id = int(deployment.jobd("trigger", "main", "t.sleep", "--arg", "seconds=4").stdout.split()[0])
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.RUNNING and deployment.lines("started.log"), timeout=30)
    result = deployment.jobd("stop", timeout=90)
    assert result.returncode == 0, result.stderr
    assert "waiting for 1 running job (main: 1), up to 30s" in result.stdout
    assert deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED


# -- what people read ------------------------------------------------------------------


def test_piped_output_neither_wraps_nor_cuts_names(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    long_task = "mailing.send_campaign_to_every_contact_of_the_tenant"
    deployment.store.jobs.insert(NewJob(daemon="main", task=long_task, args={}))
    listing = deployment.jobd("jobs")
    assert listing.returncode == 0, listing.stderr
    assert any(long_task in line and "queued" in line for line in listing.stdout.splitlines()), listing.stdout


def test_counts_and_states_read_as_sentences() -> None:
    assert counted(1, "worker") == "1 worker" and counted(2, "worker") == "2 workers" and counted(0, "job") == "0 jobs"
    assert phrase(JobState.SUCCEEDED) == "has succeeded" and phrase("running") == "is running"
    assert phrase("weird") == "is in state 'weird'"


def test_retry_of_a_succeeded_job_says_it_has_succeeded(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    done = deployment.jobd("trigger", "main", "t.record", "--wait", timeout=60)
    job_id = done.stdout.split()[0]
    result = deployment.jobd("retry", job_id)
    assert result.returncode != 0
    assert f"job {job_id} has succeeded" in result.stderr and "is succeeded" not in result.stderr


def _job(state: JobState, **fields: object) -> Job:
    return Job(id=7, daemon="main", task="t.x", args={}, state=state, attempts=2, **fields)  # type: ignore[arg-type]


def test_a_finished_job_shows_no_stale_progress_and_labels_an_earlier_attempts_error() -> None:
    shown = job_fields_for_people(_job(JobState.SUCCEEDED, progress={"percent": 80.0}, error="ValueError: x", traceback="tb"))
    assert "progress" not in shown and "error" not in shown
    assert shown["an earlier attempt's error (attempt 2 succeeded)"] == "ValueError: x"
    assert shown["traceback_label"].startswith("an earlier attempt's traceback")
    dead = job_fields_for_people(_job(JobState.DEAD, error="boom"))
    assert dead["error of attempt 2"] == "boom"
    running = job_fields_for_people(_job(JobState.RUNNING, progress={"percent": 40.0}))
    assert running["progress"] == {"percent": 40.0}


def test_status_json_gives_a_running_jobs_attempt_and_rss_in_both_units(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    job_id = int(deployment.jobd("trigger", "main", "t.sleep", "--arg", "seconds=5").stdout.split()[0])
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.RUNNING, timeout=30)

    def running_job() -> dict | None:
        report = json.loads(deployment.jobd("status", "--json").stdout)
        jobs = report["daemons"]["main"]["running_jobs"]
        return jobs[0] if jobs else None

    job = wait_until(running_job, timeout=30)
    assert job["job_id"] == job_id and job["attempt"] == 1
    worker = json.loads(deployment.jobd("status", "--json").stdout)["daemons"]["main"]["workers"][0]
    assert worker["rss_bytes"] and worker["rss_mb"] == round(worker["rss_bytes"] / 1024 / 1024, 1)
