"""Test helpers: a deployment of real jobd processes, and waiting with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobd.control import client
from jobd.errors import MasterNotRunning
from jobd.store import Store, open_store

FIXTURES = Path(__file__).parent / "fixtures"


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``condition`` until it returns a truthy value; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)



def toml_value(value: Any) -> str:
    """A TOML literal for the simple values test configs use."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)


class Deployment:
    """A jobd deployment in a short temporary folder, with masters started as real processes."""

    def __init__(self, root: Path, store_url: str) -> None:
        self.root = root
        self.store_url = store_url
        self.config_path = root / "jobd.toml"
        self.masters: list[subprocess.Popen[bytes]] = []
        self._store: Store | None = None

    def write_config(self, daemons: dict[str, dict[str, Any]], **settings: Any) -> Path:
        python_path = [str(FIXTURES), *settings.pop("python_path", [])]
        lines = [
            f"store = {json.dumps(self.store_url)}",
            'socket = "jobd.sock"',
            'pid_file = "jobd.pid"',
            'log_file = "jobd.log"',
            f"python_path = {toml_value(python_path)}",
            "heartbeat_interval = 1",
            "poll_interval = 0.2",
        ]
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        for name, options in daemons.items():
            lines.append(f"[daemons.{name}]")
            options = {"modules": ["testtasks"], **options}
            lines += [f"{key} = {toml_value(value)}" for key, value in options.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    @property
    def socket(self) -> Path:
        return self.root / "jobd.sock"

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store_url)
        return self._store

    def env(self) -> dict[str, str]:
        return {**os.environ, "JOBD_TEST_DIR": str(self.root), "JOBD_CONFIG": str(self.config_path)}

    def jobd(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the jobd CLI as a real process."""
        return subprocess.run(
            [sys.executable, "-m", "jobd.cli.app", *args], env=self.env(), cwd=self.root,
            capture_output=True, text=True, timeout=timeout, check=check,
        )

    def start_master(self, *extra: str) -> subprocess.Popen[bytes]:
        """Start a master in the foreground as its own process group; wait until it answers."""
        with open(self.root / f"master-{len(self.masters)}.out", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", *extra],
                env=self.env(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.masters.append(process)
        wait_until(lambda: process.poll() is not None or self.answers(), timeout=60, message="the master to answer")
        if process.poll() is not None:
            pytest.fail(f"master exited with {process.returncode}: {(self.root / 'master-0.out').read_text()[-3000:]}")
        return process

    def answers(self) -> bool:
        try:
            client.call(self.socket, "ping", timeout=2)
        except (MasterNotRunning, OSError):
            return False
        return True

    def status(self) -> dict[str, Any]:
        return client.call(self.socket, "status")

    def worker_pids(self, daemon: str, state: str | None = None) -> list[int]:
        workers = self.status()["daemons"][daemon]["workers"]
        return [w["pid"] for w in workers if state is None or w["state"] == state]

    def lines(self, name: str) -> list[str]:
        path = self.root / name
        return path.read_text().splitlines() if path.exists() else []

    def wait_all_final(self, job_ids: list[int], timeout: float = 60.0) -> None:
        from jobd.states import FINAL

        def done() -> bool:
            return all(self.store.jobs.get(job_id).state in FINAL for job_id in job_ids)

        wait_until(done, timeout=timeout, interval=0.2, message=f"{len(job_ids)} jobs to finish")

    def kill_everything(self) -> None:
        for process in self.masters:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._store is not None:
            self._store.dispose()
