"""The lifeline: a worker dies with its master, whatever kills the master.

The master holds the only write end of a pipe; every worker holds its read
end and a thread that blocks reading it. The kernel closes the write end
when the master's process ends in any way (``kill -9`` of its PID alone, the
OOM killer, a segfault), the read returns end-of-file, and the worker kills
every process of its session (what its task started) and then itself.

Why not ``PR_SET_PDEATHSIG`` alone: workers are forked by the
multiprocessing fork server, so the parent-death signal is tied to the fork
server, not the master, and the fork server lives as long as any process
holds its "alive" pipe — which every worker inherits. ``detach_from_fork_server``
drops the worker's copy, so the fork server too ends with the master and
PDEATHSIG stays as a second, kernel-only line (it fires even if the
watcher thread cannot run); the lifeline is the one that also takes the
task's children along. The fork server's own exit hook (``server_exit``)
kills every worker's session before the fork server is gone, so a
parent-death SIGKILL that reaches a worker in the middle of its lifeline's
scan leaves nothing behind.

The write end is close-on-exec and the fork server is started by
fork+exec with only its own descriptors, so no other process ever holds a
copy: the pipe breaks exactly when the master's process ends.
"""

from __future__ import annotations

import os
import threading
from multiprocessing import forkserver
from multiprocessing.connection import Connection

from . import sessions

EXIT_MASTER_GONE = 70  # never seen by a master (it is gone); for a human reading a process table


class Lifeline:
    """The master's side: the write end it keeps, and the read end every worker gets a copy of."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()  # both close-on-exec (PEP 446)
        self.reader = Connection(self._read_fd, writable=False)  # pickled to each worker with its fd


def watch(reader: Connection) -> threading.Thread:
    """In the worker: end this process and its session as soon as the master's end of ``reader`` closes."""
    fd = reader.fileno()
    os.set_inheritable(fd, False)  # fds received from the fork server are inheritable: keep it out of tasks' programs

    def wait_for_eof() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        die_with_master()

    thread = threading.Thread(target=wait_for_eof, name="jobd-lifeline", daemon=True)
    thread.start()
    return thread


def die_with_master() -> None:
    """Kill everything this worker's session runs, then the worker itself, at once."""
    try:
        if os.getsid(0) == os.getpid():  # only a session of its own: never the master's or a terminal's
            sessions.kill_session(os.getpid(), spare=os.getpid())
    finally:
        os._exit(EXIT_MASTER_GONE)


def detach_from_fork_server() -> None:
    """Drop the worker's copy of the fork server's "alive" pipe, so the fork server ends with the master.

    multiprocessing hands it to every child so that the child may start
    processes through the same server; a worker never does (a task that asks
    for a forkserver process gets a new server of its own).
    """
    server = forkserver._forkserver  # noqa: SLF001 - the only handle on it
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int) and getattr(server, "_forkserver_pid", None) is None:
        try:
            os.close(fd)
        except OSError:
            pass
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010 - private attributes, typed nowhere
        setattr(server, "_forkserver_address", None)  # noqa: B010
