"""Named crash points: the seam that lets a test kill the runner at an exact place.

The engine promises that a tenant converges after a ``kill -9`` at ANY
point. A timed SIGKILL only samples that promise; a crash point makes the
runner die like a SIGKILL (``os._exit``: no ``finally``, no rollback, the
server just sees the connection drop) at a named place, so a test can visit
every window between two writes deterministically.

A point is named ``<tenant>/<place>[/<detail>…]``, e.g.
``t01/statement_done/0004_slow.sql:slow_step/0``. The runner dies at the
first point whose name matches the glob in ``JOBD_MIGRATE_CRASH_AT``. Unset
(always, outside tests), a point costs one environment lookup.
"""

from __future__ import annotations

import fnmatch
import os

CRASH_ENV = "JOBD_MIGRATE_CRASH_AT"
CRASH_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def crash_point(tenant: str, place: str, *details: str) -> None:
    """Die here, at once and without cleaning up, if the crash glob names this point."""
    pattern = os.environ.get(CRASH_ENV)
    if pattern and fnmatch.fnmatchcase("/".join((tenant, place, *details)), pattern):
        os._exit(CRASH_EXIT_CODE)
