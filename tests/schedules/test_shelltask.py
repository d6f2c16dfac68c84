"""The built-in shell task, with real processes: output streamed, failures reported, hangs killed."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobd.config_checks import validated

from jobd.errors import ExitCode, JobdError
from jobd.shelltask import (
    ShellTaskCancelled,
    ShellTaskFailed,
    ShellTaskSpec,
    ShellTaskTimedOut,
    ShellUserRefused,
    run_shell,
    run_shell_task,
    user_switch,
)

LOGGER = "jobd.test.shelltask"


def process_gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer exists or is only a zombie awaiting its reaper."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def pids_from(path: Path, count: int, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return [int(line) for line in lines[:count]]
        time.sleep(0.02)
    raise AssertionError(f"the command did not write {count} pids to {path}")


def test_output_lines_are_logged_as_they_come_tagged_with_their_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    result = run_shell("echo out-line; echo err-line >&2", logger=logging.getLogger(LOGGER))
    assert result.exit_code == 0
    streams = {(record.stream, record.getMessage()) for record in caplog.records}  # type: ignore[attr-defined]
    assert ("stdout", "[stdout] out-line") in streams
    assert ("stderr", "[stderr] err-line") in streams


def test_exit_3_raises_shell_task_failed_with_the_exit_code_and_last_output(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(ShellTaskFailed) as failure:
        run_shell("echo working; echo 'disk full' >&2; exit 3", logger=logging.getLogger(LOGGER))
    assert isinstance(failure.value, JobdError)
    assert failure.value.exit_code == ExitCode.FAILURE  # the CLI's code is untouched by the command's
    assert failure.value.returncode == 3
    assert "[stderr] disk full" in failure.value.last_lines
    assert "exited with code 3" in str(failure.value) and "disk full" in str(failure.value)
    assert "[stdout] working" in caplog.text


def test_a_command_list_runs_without_a_shell_with_cwd_and_env(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    script = "import os; print(os.getcwd()); print(os.environ['GREETING'])"
    run_shell([sys.executable, "-c", script], cwd=str(tmp_path), env={"GREETING": "hello; rm -rf /"},
              logger=logging.getLogger(LOGGER))
    assert f"[stdout] {tmp_path}" in caplog.text
    assert "[stdout] hello; rm -rf /" in caplog.text


def test_a_hang_past_the_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    # the shell starts a grandchild, reports both pids, then both hang
    command = f"sleep 60 & echo $! >> {pid_file}; echo $$ >> {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(ShellTaskTimedOut) as failure:
        run_shell(command, timeout=0.5, kill_grace=1.0, logger=logging.getLogger(LOGGER))
    assert time.monotonic() - started < 10
    grandchild, child = pids_from(pid_file, 2)
    assert process_gone(child) and process_gone(grandchild)
    assert failure.value.returncode < 0  # killed by a signal
    assert "timed out after 0.5s" in str(failure.value)


def test_a_command_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    command = f"trap '' TERM; echo $$ >> {pid_file}; while :; do sleep 0.1; done"
    with pytest.raises(ShellTaskTimedOut) as failure:
        run_shell(command, timeout=timedelta(seconds=0.3), kill_grace=0.5, logger=logging.getLogger(LOGGER))
    (child,) = pids_from(pid_file, 1)
    assert process_gone(child)
    assert failure.value.returncode == -9


def test_cancellation_kills_the_running_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    cancel_at = time.monotonic() + 0.3
    with pytest.raises(ShellTaskCancelled):
        run_shell(f"echo $$ >> {pid_file}; exec sleep 60", cancelled=lambda: time.monotonic() > cancel_at,
                  logger=logging.getLogger(LOGGER))
    (child,) = pids_from(pid_file, 1)
    assert process_gone(child)


def test_processes_left_behind_by_a_finished_command_are_terminated(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    result = run_shell(f"sleep 60 > /dev/null 2>&1 & echo $! >> {pid_file}", kill_grace=1.0,
                       logger=logging.getLogger(LOGGER))
    assert result.exit_code == 0
    (orphan,) = pids_from(pid_file, 1)
    assert process_gone(orphan)


def test_a_spec_from_config_runs_with_its_own_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    spec = validated(ShellTaskSpec, {"command": "echo $NAME in $(pwd)", "cwd": str(tmp_path),
                                         "env": {"NAME": "report"}, "timeout": "1m"})
    assert spec.timeout == timedelta(minutes=1)
    run_shell_task(spec, logger=logging.getLogger(LOGGER))
    assert f"report in {tmp_path}" in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        {"command": ""},
        {"command": []},
        {"command": "true", "timeout": "-5s"},
        {"command": "true", "timeout": "0s"},
        {"command": "true", "user": "not a user"},
        {"command": "true", "interpreter": "bash"},
        {"command": "true", "env": {"A": 1}},
        {"cwd": "/tmp"},
    ],
)
def test_a_bad_spec_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        validated(ShellTaskSpec, raw)


def test_the_runner_does_not_leak_file_descriptors() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        run_shell("echo hi", logger=logging.getLogger(LOGGER))
    assert len(os.listdir("/proc/self/fd")) <= before


@pytest.mark.parametrize(
    ("command", "cwd"), [(["/nonexistent/program"], None), (["true"], "/nonexistent/dir")]
)
def test_a_command_that_cannot_start_fails_like_a_shell_would(command: list[str], cwd: str | None) -> None:
    with pytest.raises(ShellTaskFailed) as failure:
        run_shell(command, cwd=cwd, logger=logging.getLogger(LOGGER))
    assert failure.value.returncode == 127 and "could not be started" in str(failure.value)


def test_a_failed_command_reads_as_its_exit_code_and_last_output_lines() -> None:
    with pytest.raises(ShellTaskFailed) as failure:
        run_shell("echo one; echo two; exit 2", logger=logging.getLogger(LOGGER))
    assert str(failure.value) == "command exited with code 2: one\ntwo"
    with pytest.raises(ShellTaskFailed) as failure:  # stderr counts too (its order against stdout is the OS's)
        run_shell("echo oops >&2; exit 3", logger=logging.getLogger(LOGGER))
    assert str(failure.value) == "command exited with code 3: oops"
    with pytest.raises(ShellTaskFailed) as failure:
        run_shell("kill -9 $$", logger=logging.getLogger(LOGGER))
    assert str(failure.value) == "command was killed by signal 9 (SIGKILL) (no output)"


def test_a_shell_tasks_failure_reaches_the_job_without_a_python_traceback() -> None:
    from jobd.inventory import shell_task_definition
    from jobd.workers import protocol
    from jobd.workers.worker import run_job

    class Flag:
        is_set = False

    spec = validated(ShellTaskSpec, {"command": "echo 'invoice 17: no such customer' >&2; exit 2"})
    tasks = {"shell:invoice": shell_task_definition("shell:invoice", spec)}
    message = protocol.RunJob(job_id=1, attempt=1, task="shell:invoice", args={}, checkpoint=None)
    finished = run_job(message, tasks, "cron", None, None, Flag())  # type: ignore[arg-type]
    assert finished.outcome == "failed" and not finished.permanent
    assert finished.error == "command exited with code 2: invoice 17: no such customer"
    assert finished.traceback is None


def test_the_interpreter_replaces_bin_sh_like_crons_shell_variable() -> None:
    result = run_shell('echo "bash=${BASH_VERSION:+yes}"', interpreter="/bin/bash", logger=logging.getLogger(LOGGER))
    assert "[stdout] bash=yes" in result.last_lines
    result = run_shell('echo "bash=${BASH_VERSION:+yes}"', logger=logging.getLogger(LOGGER))
    assert "[stdout] bash=" in result.last_lines


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_root_worker_runs_a_users_command_as_that_user_and_keeps_its_own_identity() -> None:
    result = run_shell("id -un; id -u; echo $HOME", user="nobody", logger=logging.getLogger(LOGGER))
    assert result.last_lines[:2] == ("[stdout] nobody", "[stdout] 65534")
    assert os.geteuid() == 0 and os.getegid() == 0  # the switch happened in the child only


def test_another_users_command_is_refused_unless_jobd_runs_as_root_or_as_that_user() -> None:
    with pytest.raises(ShellUserRefused, match="only root can switch users"):
        user_switch("nobody", effective_uid=1000)
    assert user_switch("nobody", effective_uid=65534) == ({}, {"HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody"})
    assert user_switch("nobody", effective_uid=0)[0]["user"] == 65534
    with pytest.raises(ShellUserRefused, match="does not exist"):
        user_switch("no-such-user-here", effective_uid=0)
