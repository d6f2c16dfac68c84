"""`jobd trigger DAEMON TASK --from-file FILE|-`: one job per JSON line, all submitted or none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobd.errors import ExitCode
from support import Deployment


@pytest.fixture
def deployment(deployment: Deployment) -> Deployment:
    deployment.write_config({"main": {"workers": 1}})
    deployment.store.initialise()
    return deployment


def trigger(deployment: Deployment, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.app", "trigger", "main", "t.record", *args],
        env=deployment.env(), cwd=deployment.root, input=stdin, capture_output=True, text=True, timeout=60,
    )


def stored_args(deployment: Deployment) -> list[dict[str, int]]:
    return [job.args for job in sorted(deployment.store.jobs.list(limit=1000), key=lambda job: job.id)]


def test_each_line_of_the_file_is_a_job_and_the_count_and_ids_are_printed(deployment: Deployment, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(50)) + "\n")  # a trailing blank line is fine
    finished = trigger(deployment, "--from-file", str(jobs), "--priority", "3")
    assert finished.returncode == 0, finished.stderr
    ids = sorted(job.id for job in deployment.store.jobs.list(limit=1000))
    assert finished.stdout.strip() == f"submitted 50 jobs (ids {ids[0]}..{ids[-1]})"
    assert stored_args(deployment) == [{"n": n} for n in range(50)]
    assert {deployment.store.jobs.get(job_id).priority for job_id in ids} == {3}


def test_a_dash_reads_the_jobs_from_standard_input(deployment: Deployment) -> None:
    finished = trigger(deployment, "--from-file", "-", stdin='{"n": 1}\n{"n": 2}\n')
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("submitted 2 jobs (ids ")
    assert stored_args(deployment) == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"n": 1}\n\n{"n": 2\n', "standard input line 3: not valid JSON"),
        ('{"n": 1}\n[2]\n', "standard input line 2: must be a JSON object"),
        ('{"n": 1}\n\n{"n": NaN}\n', "standard input line 3: not valid JSON: NaN is not a JSON number"),
        ('{"n": 1}\n\n{"nope": 2}\n', "standard input line 3: task 't.record' does not accept these args"),
    ],
)
def test_a_bad_line_exits_2_naming_its_number_and_nothing_is_submitted(deployment: Deployment, text: str, message: str) -> None:
    finished = trigger(deployment, "--from-file", "-", stdin=text)
    assert finished.returncode == ExitCode.BAD_INPUT, finished.stdout + finished.stderr
    assert message in " ".join(finished.stderr.split())
    assert stored_args(deployment) == []


def test_from_file_refuses_options_for_a_single_job(deployment: Deployment) -> None:
    finished = trigger(deployment, "--from-file", "-", "--arg", "n=1", stdin='{"n": 1}\n')
    assert finished.returncode == ExitCode.BAD_INPUT
    assert "--from-file takes each job's args from its lines" in " ".join(finished.stderr.split())
    missing = trigger(deployment, "--from-file", str(deployment.root / "no-such.jsonl"))
    assert missing.returncode == ExitCode.BAD_INPUT and "cannot read it" in missing.stderr
    assert stored_args(deployment) == []
