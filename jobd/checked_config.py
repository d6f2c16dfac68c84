"""A config checked in full — the file, its schedule, the tasks each daemon serves — as one value for a master.

Checking a jobd.toml takes pydantic (the file and its schedule files) and
the task code (imported, to list each daemon's tasks); a master needs
neither for as long as it runs. So a throwaway interpreter does the checking
(``python -m jobd.checked_config CONFIG``, at ``jobd start`` and at every
reload) and answers with the result pickled: plain dataclasses, which the
master loads without importing what checked them. The pickle only ever
passes between processes of one jobd install, from a child's stdout or
from an anonymous file handed over ``exec``; nothing outside writes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import JobdConfig, load_config, load_schedule
from .errors import ConfigError, JobdError
from .inventory import Inventory, load_inventory
from .schedules import Schedule

#: How long the checking interpreter may take: it imports every daemon's task code.
CHECK_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class CheckedConfig:
    """What a master runs on: the validated config, its schedule, and each daemon's tasks."""

    config: JobdConfig
    schedule: Schedule
    inventory: Inventory


def check_config(path: str | Path | None) -> CheckedConfig:
    """Read and check the config at ``path`` in this process (loads pydantic, imports task code).

    Raises ``ConfigError`` naming file, key and reason, as ``jobd check`` does.
    """
    config = load_config(path, with_schedule=False)
    schedule = load_schedule(config)
    return CheckedConfig(config, schedule, load_inventory(config, schedule))


def encode_checked(checked: CheckedConfig) -> str:
    """``checked`` as one line of text, for another process of this jobd (``decode_checked``)."""
    return base64.b64encode(pickle.dumps(checked, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def decode_checked(text: str) -> CheckedConfig:
    """What ``encode_checked`` wrote; ``JobdError`` if ``text`` is not that."""
    try:
        checked = pickle.loads(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as error:
        raise JobdError(f"the handed-over config is unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(checked, CheckedConfig):
        raise JobdError(f"the handed-over config is a {type(checked).__name__}, not a checked config")
    return checked


def check_in_subprocess(path: Path, timeout: float = CHECK_TIMEOUT_SECONDS) -> CheckedConfig:
    """The config at ``path``, checked by a throwaway interpreter; ``ConfigError`` as it reported it.

    An interpreter that cannot start, or takes longer than ``timeout`` (a task
    module that hangs as it is imported), is a ``ConfigError`` too: a master
    reloading keeps its running config, whatever went wrong.
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "jobd.checked_config", str(path)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(str(path), None, f"checking it took longer than {timeout:g} s (does a task module hang as it is imported?)") from None
    except OSError as error:
        raise ConfigError(str(path), None, f"could not start an interpreter to check it: {error}") from None
    if completed.returncode != 0:
        try:
            problem = json.loads(_last_line(completed.stdout))
        except ValueError:
            raise ConfigError(str(path), None, f"task code failed to load: {completed.stderr.strip()[-2000:]}") from None
        raise ConfigError(problem["source"], problem["key"], problem["reason"])
    return decode_checked(_last_line(completed.stdout))


def _last_line(output: str) -> str:
    """The answer is the last line: task modules may print while they import."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else ""


def _main(argv: list[str]) -> int:
    try:
        checked = check_config(argv[1])
    except ConfigError as error:
        print(json.dumps({"source": error.source, "key": error.key, "reason": error.reason}))
        return 2
    print(encode_checked(checked))
    return 0


if __name__ == "__main__":
    # Run as the module of its real name: what is pickled names ``jobd.checked_config.CheckedConfig``,
    # which the master can load, not ``__main__.CheckedConfig``.
    from jobd.checked_config import _main as checked_main

    sys.exit(checked_main(sys.argv))
