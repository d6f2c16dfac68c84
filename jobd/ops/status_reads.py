"""``jobd status --json`` at the cost of one socket round trip when a master runs.

The local master composes the document on its own store (``status_report``:
``jobd.master.status_answer``) for the config this command would read,
named by its digest (``jobd.config_digest``); the command then validates no
models and loads no database code. When no master answers, when it
declines (another config, a document too large) or fails, the command
composes the document itself (``jobd.status.report.read_status``), and its
errors are then the ones reported.
"""

from __future__ import annotations

import os
from typing import Any

from .. import defaults
from ..config_digest import config_digest
from ..errors import JobdError, MasterNotRunning


def status_from_master(config: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The ``status --json`` document the local master composed, or None when the command must compose it.

    ``ConfigError`` as from ``load_config`` for a file the full validation has not accepted.
    """
    from ..control import client

    digest = config_digest(config)
    try:
        answer = client.call(
            digest.socket, "status_report", {"settings": digest.settings}, timeout=defaults.JOBS_FROM_MASTER_TIMEOUT_SECONDS,
        )
    except (MasterNotRunning, JobdError, OSError):
        return None  # no master, an older one (unknown operation), or one that failed: compose it here
    report = answer.get("report") if isinstance(answer, dict) else None
    return report if isinstance(report, dict) else None
