"""The README's first command: the demo deployment runs on the embedded default."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_demo_script_runs_the_demo_deployment(tmp_path: Path) -> None:
    """Run examples/demo.sh against a copy of examples/ (the installed jobd, no pip)."""
    copy = Path(shutil.copytree(REPO, tmp_path / "repo", ignore=shutil.ignore_patterns(".venv", ".git", "var", "*.egg-info", "__pycache__")))
    jobd = Path(sys.executable).parent / "jobd"
    port = free_port()
    env = {**os.environ, "JOBD_DEMO_SKIP_INSTALL": "1", "JOBD_DEMO_JOBD": str(jobd), "JOBD_DEMO_WEB_PORT": str(port)}
    config = copy / "examples" / "jobd.toml"
    try:
        result = subprocess.run(["bash", str(copy / "examples" / "demo.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "mailing campaign 42 -> job" in result.stdout
        assert "master running" in result.stdout
        assert "sms.send" in result.stdout
        assert f"in a browser:   http://127.0.0.1:{port}/" in result.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=10) as answer:
            assert json.load(answer)["master"]["running"] is True
    finally:
        web_pid = copy / "examples" / "var" / "web.pid"
        if web_pid.exists():
            try:
                os.kill(int(web_pid.read_text()), signal.SIGTERM)  # the demo's jobd web, by its pid
            except ProcessLookupError:
                pass
        subprocess.run([str(jobd), "stop", "-c", str(config)], capture_output=True, timeout=120)
    wait_until(lambda: not (copy / "examples" / "var" / "jobd.sock").exists(), timeout=30)
