"""What a master is given instead of reading its config: the file, its schedule and its tasks, checked elsewhere.

`jobd start` and every reload check the config in a throwaway interpreter
(``python -m jobd.checked_config``) and hand the master the result
(``jobd.checked_config``), so the master never loads pydantic or task code.
The hand-over must carry everything the file said, report a broken file as
``jobd check`` would, and be refused if it does not read (a master refuses
it before it changes anything: ``tests/test_store_handover.py``).
"""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest

from jobd.checked_config import check_config, check_in_subprocess, decode_checked, encode_checked
from jobd.errors import ConfigError, JobdError
from support import FIXTURES

CONFIG = f"""
python_path = [{str(FIXTURES)!r}]
store = "sqlite:///jobd.db"
max_error_bytes = "8 KB"
[daemons.main]
modules = ["footprint_tasks"]
timeout = "30s"
rate_limit = "50/s"
task_rate_limits = {{ "footprint.modules" = "2/s" }}
[daemons.main.shell.tidy]
command = ["true"]
timeout = "1m"
[schedules.entries.nightly]
daemon = "main"
shell = {{ command = "echo nightly", timeout = "5m" }}
cron = "0 3 * * *"
[schedules.entries.often]
daemon = "main"
task = "footprint.modules"
every = "10m"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "jobd.toml"
    path.write_text(CONFIG)
    return path


def test_a_checked_config_reads_back_equal_to_what_was_checked(config_path: Path) -> None:
    checked = check_config(config_path)
    again = decode_checked(encode_checked(checked))
    assert again.config == checked.config
    assert again.config.daemons["main"].timeout == 30.0
    assert again.config.daemons["main"].max_error_bytes == 8 * 1024, "a daemon inherits the global caps"
    assert again.config.daemons["main"].rate_limits() == checked.config.daemons["main"].rate_limits()
    assert dict(again.schedule) == dict(checked.schedule) and sorted(again.schedule) == ["nightly", "often"]
    assert again.inventory == checked.inventory and {"footprint.modules", "tidy"} <= set(again.inventory["main"])


def test_the_checking_interpreter_answers_as_the_in_process_check(config_path: Path) -> None:
    assert check_in_subprocess(config_path) == check_config(config_path)


@pytest.mark.parametrize("change, key", [
    ('timeout = "30s"', 'timeout = "soon"'),
    ('every = "10m"', 'every = "never"'),
    ('modules = ["footprint_tasks"]', 'modules = ["no_such_module"]'),
])
def test_the_checking_interpreter_names_file_and_key_of_a_broken_config(config_path: Path, change: str, key: str) -> None:
    config_path.write_text(CONFIG.replace(change, key))
    with pytest.raises(ConfigError) as in_process:
        check_config(config_path)
    with pytest.raises(ConfigError) as in_child:
        check_in_subprocess(config_path)
    assert (in_child.value.source, in_child.value.key, in_child.value.reason) == (
        in_process.value.source, in_process.value.key, in_process.value.reason,
    )
    assert str(config_path) in in_child.value.source


@pytest.mark.parametrize("text, named", [
    ("not base64 at all!", "unreadable"),
    (base64.b64encode(b"not a pickle").decode(), "unreadable"),
    (base64.b64encode(pickle.dumps({"config": "x"})).decode(), "is a dict, not a checked config"),
])
def test_a_hand_over_that_does_not_read_is_refused_with_the_reason(text: str, named: str) -> None:
    with pytest.raises(JobdError, match=named):
        decode_checked(text)


def test_a_check_that_hangs_is_a_config_error_so_a_reloading_master_keeps_its_config(tmp_path: Path) -> None:
    (tmp_path / "hanging_tasks.py").write_text("import time\ntime.sleep(60)\n")
    path = tmp_path / "jobd.toml"
    path.write_text(f'python_path = [{str(tmp_path)!r}]\n[daemons.main]\nmodules = ["hanging_tasks"]\n')
    with pytest.raises(ConfigError, match="took longer than 1 s"):
        check_in_subprocess(path, timeout=1.0)
