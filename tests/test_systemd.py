"""Running under systemd: the sd_notify protocol with a real master, and units systemd accepts."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobd.ops.sdnotify import socket_address, status_line, watchdog_interval
from jobd.ops.systemd_units import DEFAULT_EXECUTABLE, render_units

from support import Deployment, wait_until

REPO = Path(__file__).resolve().parent.parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


class NotifyListener:
    """The systemd side of sd_notify: an abstract datagram socket collecting messages."""

    def __init__(self) -> None:
        self.name = f"@jobd-test-{secrets.token_hex(6)}"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(socket_address(self.name))
        self.socket.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def receive(self) -> None:
        while True:
            try:
                data = self.socket.recv(4096)
            except (socket.timeout, BlockingIOError):
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def keys(self) -> list[str]:
        """The message kinds received so far, in order (STATUS-only messages as 'STATUS')."""
        return [next((k for k in m if k != "STATUS" and k != "MONOTONIC_USEC"), "STATUS") for m in self.messages]

    def wait_for(self, key: str, count: int = 1, timeout: float = 30.0) -> None:
        def enough() -> bool:
            self.receive()
            return self.keys().count(key) >= count

        wait_until(enough, timeout=timeout, interval=0.05, message=f"{count} × {key}=1 (got {self.keys()})")


def test_master_notifies_ready_watchdog_reloading_and_stopping(deployment: Deployment) -> None:
    listener = NotifyListener()
    deployment.write_config({"main": {"workers": 1}})
    master = deployment.start_master(env={"NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "1000000"})
    listener.wait_for("READY")
    ready = listener.messages[listener.keys().index("READY")]
    assert "1 daemon(s)" in ready["STATUS"] and "workers busy" in ready["STATUS"]

    started = time.monotonic()
    seen = listener.keys().count("WATCHDOG")
    listener.wait_for("WATCHDOG", count=seen + 3, timeout=10)
    assert time.monotonic() - started < 4, "WATCHDOG=1 should come every 0.5s (half of WATCHDOG_USEC)"

    os.kill(master.pid, signal.SIGHUP)
    listener.wait_for("RELOADING")
    listener.wait_for("READY", count=2)
    kinds = listener.keys()
    assert kinds.index("RELOADING") < len(kinds) - 1 - kinds[::-1].index("READY"), kinds
    assert "MONOTONIC_USEC" in listener.messages[kinds.index("RELOADING")]

    os.kill(master.pid, signal.SIGTERM)
    listener.wait_for("STOPPING")
    assert master.wait(30) == 0
    listener.receive()
    assert listener.keys().count("READY") == 2 and listener.keys().count("STOPPING") == 1
    listener.socket.close()


def test_a_refused_reload_still_tells_systemd_ready(deployment: Deployment) -> None:
    listener = NotifyListener()
    deployment.write_config({"main": {"workers": 1}})
    master = deployment.start_master(env={"NOTIFY_SOCKET": listener.name})
    listener.wait_for("READY")
    deployment.write_config({"main": {"workers": "many"}})
    os.kill(master.pid, signal.SIGHUP)
    listener.wait_for("RELOADING")
    listener.wait_for("READY", count=2)  # or systemd would show "reloading" forever
    assert "WATCHDOG" not in listener.keys(), "no watchdog was asked for"
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(30) == 0
    listener.socket.close()


def test_watchdog_interval_is_half_the_timeout_and_only_for_the_named_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=10) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, pid=10) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, pid=10) is None
    assert watchdog_interval({}, pid=10) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=10) is None
    assert socket_address("@abstract") == b"\0abstract"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert status_line("two\nlines  " + "x" * 500).startswith("two lines x") and len(status_line("x" * 500)) == 200


# -- the unit files ------------------------------------------------------------


def _jobd_executable() -> str:
    return str(Path(sys.executable).parent / "jobd")


@pytest.mark.skipif(not os.path.exists(SYSTEMD_ANALYZE), reason="systemd-analyze is not installed")
def test_every_unit_in_systemd_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The shipped units, with ExecStart pointing at a jobd that exists here (verify checks it)."""
    units = sorted((REPO / "systemd").glob("*.service"))
    assert {unit.name for unit in units} == {"jobd.service", "jobd-migrate.service", "jobd-web.service"}
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace(DEFAULT_EXECUTABLE, _jobd_executable()))
    drop_in = tmp_path / "jobd.service.d"
    drop_in.mkdir()
    shutil.copy(REPO / "systemd/jobd.service.d/credentials.conf.example", drop_in / "credentials.conf")
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert not problems, problems  # e.g. "Unknown key" warnings, which verify does not fail on


def test_shipped_units_are_the_default_rendering() -> None:
    for name, text in render_units().items():
        assert (REPO / "systemd" / name).read_text() == text, f"systemd/{name} is stale: regenerate it"
    service = render_units()["jobd.service"]
    for setting in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed", "WatchdogSec=",
                    "Restart=on-failure", "RuntimeDirectory=jobd", "ProtectSystem=strict", "PrivateTmp=true",
                    "NoNewPrivileges=true", "User=jobd", "OOMPolicy=continue"):
        assert setting in service, setting


def test_systemd_install_writes_units_for_this_installation(deployment: Deployment, tmp_path: Path) -> None:
    result = deployment.jobd("systemd", "install", "--prefix", str(tmp_path), "--config-path", "/srv/jobd.toml")
    assert result.returncode == 0, result.stderr
    unit_dir = tmp_path / "etc/systemd/system"
    service = (unit_dir / "jobd.service").read_text()
    assert f"ExecStart={_jobd_executable()} start --foreground --config /srv/jobd.toml" in service
    assert (unit_dir / "jobd-migrate.service").exists()
    assert f"ExecStart={_jobd_executable()} web --config /srv/jobd.toml" in (unit_dir / "jobd-web.service").read_text()
    assert (unit_dir / "jobd.service.d/credentials.conf.example").exists()
    (unit_dir / "jobd.service").write_text(service + "# edited by hand\n")
    again = deployment.jobd("systemd", "install", "--prefix", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
