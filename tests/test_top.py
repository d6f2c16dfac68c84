"""`jobd top` as an operator sees it: in a real terminal (tmux), once for scripts, on the demo."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from jobd.store import NewJob

from jobd.cli.top import render
from support import Deployment, require, wait_until

REPO = Path(__file__).resolve().parent.parent


def _frame(view: dict, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=io.StringIO(), color_system=None)
    console.print(render(view, width, height, interactive=True))
    return console.export_text().splitlines()


def _busy_view(running: int, failures: int) -> dict:
    now = time.time()
    return {
        "version": 1, "source": "memcached", "generated_at": now, "note": None, "jobs_per_minute": 12.5,
        "masters": [{"id": "a:1:x", "host": "web-1", "pid": 1, "state": "running", "started_at": now - 90, "uptime": 90, "version": "0.1.0"}],
        "daemons": {name: {"workers": 4, "busy": 2, "idle": 2, "queued": 3, "running": 2, "retrying": 0,
                           "succeeded_last_hour": 10, "failed_last_hour": 1, "dead_last_hour": 0,
                           "jobs_per_minute": 4.0, "next_run": None} for name in ("mailing", "reports", "sms")},
        "running": [{"job_id": n, "daemon": "mailing", "task": "mailing.send_campaign", "attempt": 1, "host": "web-1",
                     "worker_pid": 100 + n, "done": n, "total": 20, "percent": 5.0 * n, "message": f"campaign {n}: batch {n}",
                     "eta_seconds": 30, "started_at": now - 10, "elapsed": 10, "updated_at": now} for n in range(1, running + 1)],
        "failures": [{"at": now, "daemon": "sms", "job_id": 900 + n, "task": "sms.send", "attempt": 1, "kind": "failed",
                      "error": "ConnectionError: SMS gateway timed out", "host": "web-1"} for n in range(failures)],
        "schedules": [],
    }


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 50)])
def test_a_busy_frame_fits_the_terminal(size: tuple[int, int]) -> None:
    width, height = size
    lines = _frame(_busy_view(running=40, failures=30), width, height)
    assert len(lines) <= height, "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for expected in ("mailing", "reports", "sms", "send_campaign", "%", "SMS gateway timed out", "q quit", "more running"):
        assert expected in text, text


def test_a_larger_terminal_shows_more_jobs() -> None:
    small = "\n".join(_frame(_busy_view(running=40, failures=5), 80, 24)).count("campaign ")
    large = "\n".join(_frame(_busy_view(running=40, failures=5), 160, 50)).count("campaign ")
    assert large > small >= 1


def test_schedules_are_shown_when_masters_publish_them() -> None:
    view = _busy_view(running=1, failures=0)
    view["schedules"] = [{"daemon": "reports", "name": "nightly-sales", "next_run": time.time() + 3600}]
    view["daemons"]["reports"]["next_run"] = time.time() + 3600
    text = "\n".join(_frame(view, 100, 30))
    assert "nightly-sales" in text and "(in 1h" in text


def test_open_batches_are_shown_with_their_progress() -> None:
    view = _busy_view(running=1, failures=0)
    view["batches"] = [{"id": 7, "name": "campaign-42", "finished": 320, "total": 500, "percent": 64.0, "dead": 2, "sealed": True}]
    text = "\n".join(_frame(view, 100, 30))
    assert "batch 7 campaign-42: 320/500 finished (64%), 2 dead" in text


def _tmux(server: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True, timeout=10).stdout


def test_top_draws_in_a_real_terminal_and_q_restores_it(deployment: Deployment) -> None:
    require(shutil.which("tmux") is not None, "tmux is not installed")
    deployment.write_config({"main": {"workers": 2}, "other": {"workers": 1}})
    deployment.start_master()
    job_id = deployment.store.jobs.insert(NewJob("main", "t.progress", {"steps": 600, "step_seconds": 0.05}))
    wait_until(lambda: deployment.lines("started.log"), message="the task to start")
    server = f"jobdtest-{os.getpid()}-{time.monotonic_ns()}"  # our own tmux server
    jobd = f"{sys.executable} -m jobd.cli.app"
    script = deployment.root / "run-top.sh"
    script.write_text(
        f"cd {deployment.root}\nexport JOBD_CONFIG={deployment.config_path}\n"
        f"stty -g > stty-before\n{jobd} top\necho \"top-exit=$?\"\nstty -g > stty-after\n"
    )
    _tmux(server, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "100", "-y", "30", "bash --norc --noprofile")
    server_pid = int(_tmux(server, "display-message", "-p", "#{pid}").strip() or 0)
    try:
        _tmux(server, "send-keys", "-t", "top", f"source {script}", "Enter")

        def drawn() -> str | None:
            screen = _tmux(server, "capture-pane", "-p", "-t", "top")
            return screen if "Daemons" in screen and "━" in screen and "t.progress" in screen else None

        screen = wait_until(drawn, timeout=30, interval=0.2, message="top to draw the daemons and a progress bar")
        assert "main" in screen and "other" in screen and str(job_id) in screen
        assert _tmux(server, "display-message", "-p", "#{alternate_on}").strip() == "1"
        _tmux(server, "send-keys", "-t", "top", "?")
        keys = wait_until(lambda: (lambda s: s if "jobd top: keys" in s else None)(_tmux(server, "capture-pane", "-p", "-t", "top")),
                          timeout=30, interval=0.1, message="the keys help")
        assert "sort running jobs" in keys and "next daemon" in keys
        _tmux(server, "send-keys", "-t", "top", "?")
        _tmux(server, "send-keys", "-t", "top", "d")  # filter: the first daemon alone

        def main_only() -> str | None:
            screen = _tmux(server, "capture-pane", "-p", "-t", "top")
            return screen if "d daemon: main" in screen and "Daemons" in screen else None

        screen = wait_until(main_only, timeout=30, interval=0.1, message="top filtered to daemon main")
        daemon_rows = screen.split("Daemons", 1)[1].split("Running", 1)[0]
        assert "main" in daemon_rows and "other" not in daemon_rows
        _tmux(server, "send-keys", "-t", "top", "q")
        wait_until(lambda: "top-exit=" in _tmux(server, "capture-pane", "-p", "-t", "top"), timeout=10, message="top to exit")
        screen = _tmux(server, "capture-pane", "-p", "-t", "top")
        assert "top-exit=0" in screen
        assert "Daemons" not in screen, "the normal screen is back"
        assert _tmux(server, "display-message", "-p", "#{alternate_on}").strip() == "0"
        wait_until(lambda: (deployment.root / "stty-after").exists(), timeout=5)
        assert (deployment.root / "stty-after").read_text() == (deployment.root / "stty-before").read_text()
    finally:
        if server_pid:
            os.kill(server_pid, signal.SIGTERM)


class DemoDeployment(Deployment):
    """The demo's own layout: its socket is var/jobd.sock."""

    @property
    def socket(self) -> Path:
        return self.root / "var" / "jobd.sock"


@pytest.mark.slow
def test_top_once_shows_the_running_demo_jobs() -> None:
    """The demo deployment (examples/jobd.toml, no memcached): the master serves the activity."""
    root = Path(tempfile.mkdtemp(prefix="jobd-demo-", dir="/tmp"))
    shutil.copytree(REPO / "examples", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("var", "__pycache__"))
    deployment = DemoDeployment(root, f"sqlite:///{root / 'var' / 'jobd.db'}")
    try:
        deployment.start_master()
        campaign = deployment.jobd("trigger", "mailing", "mailing.send_campaign", "--arg", "campaign_id=42", "--arg", "contacts=20000")
        # Long steps: the report must still run when the second frame is drawn, however slow the machine.
        report = deployment.jobd("trigger", "reports", "reports.build_daily", "--arg", "kind=sales", "--arg", "step_seconds=10")
        assert campaign.returncode == 0 and report.returncode == 0, campaign.stderr + report.stderr

        def frame() -> str | None:
            out = deployment.jobd("top", "--once").stdout
            ready = "mailing.send_campaign" in out and "reports.build_daily" in out and "campaign 42" in out
            return out if ready else None

        out = wait_until(frame, timeout=30, interval=0.3, message="the demo jobs in top")
        assert "[master]" in out and "%" in out
        for daemon in ("mailing", "reports", "sms"):
            assert daemon in out
        one = deployment.jobd("top", "--once", "--daemon", "reports").stdout
        assert "reports.build_daily" in one and "send_campaign" not in one
    finally:
        deployment.kill_everything()
        shutil.rmtree(root, ignore_errors=True)
