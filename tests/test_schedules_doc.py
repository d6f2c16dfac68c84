"""docs/schedules.md shows what jobd accepts: its TOML examples load, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from jobd.config import load_config
from jobd.schedules.files import parse_schedule_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "schedules.md"


def test_every_toml_example_of_the_schedules_page_is_accepted(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    for number, block in enumerate(blocks):
        if "[daemons." in block:  # a jobd.toml excerpt
            config = tmp_path / f"jobd-{number}.toml"
            config.write_text(f'store = "sqlite:///{tmp_path}/s.db"\n' + block, encoding="utf-8")
            load_config(config)
        else:
            assert len(parse_schedule_text(block, f"block {number}", "UTC")) > 0


def test_the_import_command_the_page_names_is_the_real_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"jobd ([a-z-]+(?: import)?) ", text))
    assert "schedules import" not in named and "import-crontab" in named
    assert "[tasks." not in text
    usage = subprocess.run([sys.executable, "-m", "jobd.cli.app", "import-crontab", "--help"],
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--system" in usage.stdout and "--retries" in usage.stdout
