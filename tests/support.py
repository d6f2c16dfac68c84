"""Test helpers: a deployment of real jobd processes, and waiting with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobd.config import parse_config
from jobd.control import client
from jobd.errors import MasterNotRunning
from jobd.store import Store, open_store

FIXTURES = Path(__file__).parent / "fixtures"
NOBODY = 65534

#: Whether the configs tests write run with the hand-off, decided as the config loader decides it:
#: the suite also runs with ``JOBD_HANDOFF=off``, which switches it off.
HANDOFF_ON = parse_config("", FIXTURES / "jobd.toml").handoff

#: For a test that specifies the hand-off itself (an offer, a worker's socket, a job run straight
#: from a datagram): it cannot hold with the hand-off switched off.
needs_handoff = pytest.mark.skipif(not HANDOFF_ON, reason="specifies the hand-off, which JOBD_HANDOFF=off switches off")


def send_as_nobody(root: Path, path: Path, datagram: bytes) -> None:
    """Send ``datagram`` to the Unix datagram socket ``path`` from a process of user "nobody" (needs root).

    The socket (and its folder ``root``) are opened up first, so only the
    receiver's own check of the sender can keep the datagram out.
    """
    os.chmod(root, 0o711)
    os.chmod(path, 0o666)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.sendto(datagram, str(path))
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the datagram could not be sent as nobody"


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


def require(available: bool, what: str) -> None:
    """Skip a test whose service is missing on a developer's machine; in CI, fail it.

    CI installs every service the suite needs, so a missing one there is a
    broken set-up, not a reason to pass silently.
    """
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must provide it)")
    pytest.skip(what)


class Deployment:
    """A jobd deployment in a short temporary folder, with masters started as real processes."""

    def __init__(self, root: Path, store_url: str) -> None:
        self.root = root
        self.store_url = store_url
        self.config_path = root / "jobd.toml"
        self.masters: list[subprocess.Popen[bytes]] = []
        self._store: Store | None = None

    def write_config(self, daemons: dict[str, dict[str, Any]], **settings: Any) -> Path:
        top = {
            "store": self.store_url,
            "socket": "jobd.sock",
            "pid_file": "jobd.pid",
            "log_file": "jobd.log",
            "python_path": [str(FIXTURES), *settings.pop("python_path", [])],
            "heartbeat_interval": 1,
            "poll_interval": 0.2,
            **settings,
        }
        lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
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

    def start_master(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a master in the foreground as its own process group; wait until it answers."""
        with open(self.root / f"master-{len(self.masters)}.out", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", *extra],
                env={**self.env(), **(env or {})}, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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


def stop_process(process: "subprocess.Popen[Any]", grace: float = 10.0) -> None:
    """End a process the test started, by its pid: SIGTERM, then SIGKILL if it is still there after ``grace``."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MemcachedServer:
    """A memcached of the test's own on a free loopback port; stopped (and restarted) by pid."""

    BINARY = "/usr/bin/memcached"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "MemcachedServer":
        import shutil
        import socket

        binary = self.BINARY if os.path.exists(self.BINARY) else shutil.which("memcached")
        if binary is None:
            require(False, "memcached is not installed")
        user = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses root without -u
        self.process = subprocess.Popen(
            [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                pytest.fail(f"memcached exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return False
            return True

        wait_until(listening, timeout=10, message=f"memcached on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.process = None

    def stats(self) -> dict[str, int]:
        """memcached's own counters (``stats``), e.g. ``cmd_set``."""
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
            connection.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
        stats = {}
        for line in data.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
                stats[parts[1]] = int(parts[2])
        return stats
