"""What `jobd start` hands its master about the store: the driver's arguments, never on the command line.

(What it hands over of the config is ``tests/test_checked_config.py``'s; a master refuses either,
unreadable, before it changes anything: below.)

The master opens its store on arguments SQLAlchemy worked out in `jobd
start` (``jobd.store.handover``). They travel in an anonymous file, since a
MySQL password is among them; a handover that does not read is refused
with the reason, and the master does not start.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobd.store.driver_sql import for_master
from jobd.store.engine import driver_target
from jobd.store.handover import decode_handover, handover_for
from support import Deployment


def test_a_handover_reads_back_as_it_was_written_and_hides_the_password() -> None:
    url = "mysql+pymysql://jobd:s3cret@127.0.0.1:3306/jobs?read_timeout=7"
    handover = handover_for(url)
    assert handover.url == "mysql+pymysql://jobd:***@127.0.0.1:3306/jobs?read_timeout=7"
    assert handover.target == driver_target(url)  # the password is in the arguments: the driver needs it
    assert decode_handover(handover.encode()) == handover


def test_the_masters_own_connections_never_checkpoint_on_commit_while_its_workers_do(tmp_path: Path) -> None:
    handover = handover_for(f"sqlite:///{tmp_path / 'jobd.db'}")
    master = for_master(handover.target)
    assert not any("wal_autocheckpoint" in line for line in handover.target.setup)
    assert any("wal_autocheckpoint" in line for line in master.setup)
    assert (master.args, master.kwargs) == (handover.target.args, handover.target.kwargs)


@pytest.mark.parametrize("text, named", [
    ("not json", "unreadable"),
    ('{"url": "sqlite:///x"}', "target"),
    ('{"target": {"dialect": "sqlite"}, "url": "sqlite:///x"}', "not a store target"),
])
def test_a_handover_that_does_not_read_is_refused_with_the_reason(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        decode_handover(text)


@pytest.mark.parametrize("option, handed, said", [
    ("--store-fd", "{not json", "the store handed to the master is unreadable"),
    ("--checked-fd", "{not a checked config", "the handed-over config is unreadable"),  # jobd.checked_config
])
def test_a_master_handed_an_unreadable_store_or_config_does_not_start_says_why_and_changes_nothing(
    deployment: Deployment, tmp_path: Path, option: str, handed: str, said: str,
) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": ["footprint_tasks"]}})
    garbage = tmp_path / "handed.txt"
    garbage.write_text(handed)
    with open(garbage) as handle:
        done = subprocess.run(
            [sys.executable, "-m", "jobd.ops.master_main", str(deployment.config_path), option, str(handle.fileno())],
            pass_fds=[handle.fileno()], capture_output=True, text=True, timeout=120, env=deployment.env(), cwd=deployment.root,
        )
    assert done.returncode != 0
    assert said in done.stderr
    assert not (deployment.root / "jobd.pid").exists() and not deployment.answers()
    assert deployment.store.version() is None, "refused before the preflight: no schema was created"


def test_jobd_start_puts_no_store_url_on_the_masters_command_line(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": ["footprint_tasks"]}})
    process = deployment.start_master()
    command = (Path("/proc") / str(process.pid) / "cmdline").read_bytes().decode()
    assert "--store-fd" in command
    assert deployment.store_url not in command and "sqlite:" not in command
