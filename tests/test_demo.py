"""The README's first command: the demo deployment runs on the embedded default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_demo_script_runs_the_demo_deployment(tmp_path: Path) -> None:
    """Run examples/demo.sh against a copy of examples/ (the installed jobd, no pip)."""
    copy = Path(shutil.copytree(REPO, tmp_path / "repo", ignore=shutil.ignore_patterns(".venv", ".git", "var", "*.egg-info", "__pycache__")))
    jobd = Path(sys.executable).parent / "jobd"
    env = {**os.environ, "JOBD_DEMO_SKIP_INSTALL": "1", "JOBD_DEMO_JOBD": str(jobd)}
    config = copy / "examples" / "jobd.toml"
    try:
        result = subprocess.run(["bash", str(copy / "examples" / "demo.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "mailing campaign 42 -> job" in result.stdout
        assert "master running" in result.stdout
        assert "sms.send" in result.stdout
    finally:
        subprocess.run([str(jobd), "stop", "-c", str(config)], capture_output=True, timeout=120)
    wait_until(lambda: not (copy / "examples" / "var" / "jobd.sock").exists(), timeout=30)
