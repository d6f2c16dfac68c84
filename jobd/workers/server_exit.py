"""The fork server's last act: when it ends with its master, it ends every worker and what their tasks started.

Each worker's lifeline (``lifeline.py``) kills its session when the master
dies, but the fork server ends at that same moment (its "alive" pipe closes
with the master), and its end fires the workers' parent-death signal, a
SIGKILL. When that SIGKILL came first, a worker died in the middle of its
scan of ``/proc`` and left the rest of its task's processes running, adopted
by init, with no master to end them until the next one started on that
socket (about one round in twenty in ``bench/master_death.py``).

The fork server is never in that race: it exits through ``SystemExit``, so
the hook registered here runs before it is gone, and only then do the
workers' parent-death signals fire. It kills each of its children's
sessions (a worker leads its own session, and its task's processes are in
it, shell process groups included) and each child itself. A lifeline doing
the same at the same time does no harm. If the fork server itself is killed
(SIGKILL reaches it too), the parent-death signal and the next master's
fence (``fence.py``) remain.
"""

from __future__ import annotations

import atexit
import os
import signal

from . import sessions


def end_workers(server_pid: int) -> int:
    """SIGKILL every child of ``server_pid`` with its session; return how many processes were signalled."""
    signalled = 0
    for child in sessions.children(server_pid):
        signalled += sessions.kill_session(child.pid, started_since=child.start_time)
        try:
            os.kill(child.pid, signal.SIGKILL)  # a child that did not lead a session of its own
            signalled += 1
        except ProcessLookupError:
            pass
    return signalled


def install() -> None:
    """In the fork server: end its workers when it exits (a fork child inherits the hook but never runs it)."""
    server_pid = os.getpid()
    atexit.register(lambda: end_workers(server_pid) if os.getpid() == server_pid else 0)
