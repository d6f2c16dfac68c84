"""The one seam through which jobd starts and signals worker processes.

Workers are started with the ``forkserver`` method: the master runs threads
(control socket, log receivers), and forking a threaded process can copy a
lock held by another thread. The fork server is a clean single-threaded
process that forks workers on request, with jobd's own modules preloaded so a
worker starts in milliseconds. Tests of the supervision logic can swap this
object for a double; other tests use it for real.

Every worker gets the read end of the master's lifeline (``lifeline.py``) and
leads its own session; when a worker ends, whatever its task left running in
that session is killed with it, and while it lives it is written down for
the next master's fence (``fence.py``).
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
import os
import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ..store.driver_sql import DriverTarget
from ..config import load_schedule
from ..errors import ConfigError
from ..observability.log_channels import open_worker_channel
from . import sessions
from ..handoff.channel import Channel
from .fence import HostFence
from .lifeline import Lifeline
from .memory import rss_bytes
from .settings import WorkerSettings, settings_for
from .spec import WorkerSpec, worker_entry

_context = multiprocessing.get_context("forkserver")
#: What the fork server imports once for every worker to share: the store's driver (known at the
#: first spawn; each worker connects with it), then the worker's own modules, frozen (``preload.py``).
PRELOAD = "jobd.workers.preload"
_context.set_forkserver_preload([PRELOAD])


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a worker without it re-importing the master's ``__main__``.

    multiprocessing makes a forkserver child import the parent's main module
    (here the whole CLI: typer, rich, the migration engine) so pickled
    references to it resolve. Workers need none of it: their entry point is
    ``jobd.workers.worker``. Hiding the main module's name and path while the
    child is prepared saves every worker that import time and memory.
    """
    main = sys.modules["__main__"]
    saved: dict[str, Any] = {key: main.__dict__[key] for key in ("__spec__", "__file__") if key in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


@dataclass
class SpawnedProcess:
    process: BaseProcess
    connection: Connection

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


class ProcessLauncher:
    """Starts, signals and reaps worker processes."""

    context = _context  # shared objects a worker is given (its gate) come from the context that starts it

    def __init__(self) -> None:
        self.lifeline: Lifeline | None = None  # opened with the first worker, in the process that runs the master
        self.fence: HostFence | None = None  # set by the master once the previous run on its socket is fenced
        self._settings: dict[int, tuple[WorkerSpec, WorkerSettings]] = {}  # by id(spec): one per pool and config
        self.store_target: DriverTarget | None = None  # how workers connect to the store; set by the master

    def settings(self, spec: WorkerSpec) -> WorkerSettings:
        """What ``spec``'s workers are told, worked out once per spec (a pool's spec changes on reload).

        A config whose schedule no longer reads gives settings that carry the
        problem: the worker reports it as it did when it read the files itself.
        """
        known = self._settings.get(id(spec))
        if known is not None and known[0] is spec:
            return known[1]
        config = spec.config
        if self.store_target is None:
            from ..store.engine import driver_target  # a launcher used without a master (loads SQLAlchemy)

            self.store_target = driver_target(config.store)
        target = self.store_target
        try:
            schedule = spec.schedule if spec.schedule is not None else load_schedule(config)
            settings = settings_for(config, spec.daemon, spec.owner, schedule, target)
        except ConfigError as error:
            settings = WorkerSettings(
                daemon=spec.daemon, owner=spec.owner, store=target, store_url=config.store,
                socket=config.socket, log_level=config.log_level, caps=config.output_caps(spec.daemon),
                memcached=(), source=str(config.source), problem=str(error),
            )
        self._settings = {key: value for key, value in self._settings.items() if value[0].config is config}
        self._settings[id(spec)] = (spec, settings)
        return settings

    def spawn(self, spec: WorkerSpec, name: str, channel: Channel | None = None) -> SpawnedProcess:
        settings = self.settings(spec)
        if self.lifeline is None:  # the first worker: the fork server starts with it
            _context.set_forkserver_preload([settings.store.driver_module, PRELOAD])
            self.lifeline = Lifeline()
        parent_end, child_end = _context.Pipe(duplex=True)
        log_end = open_worker_channel()  # its own pipe for log records: a worker killed mid-record costs only that record
        settings = replace(settings, log_channel=log_end)
        process = _context.Process(
            target=worker_entry, args=(settings, child_end, channel, self.lifeline.reader), name=name, daemon=False,
        )
        try:
            with _main_module_hidden():
                process.start()
        finally:
            child_end.close()
            if log_end is not None:
                log_end.close()
        spawned = SpawnedProcess(process, parent_end)
        if self.fence is not None:
            self.fence.add(spawned.pid)
        return spawned

    def send_signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def terminate(self, pid: int) -> None:
        self.send_signal(pid, signal.SIGTERM)

    def kill(self, pid: int) -> None:
        """SIGKILL a worker and everything its task started (its session)."""
        self.send_signal(pid, signal.SIGKILL)
        sessions.kill_session(pid)

    def rss_bytes(self, pid: int) -> int | None:
        """The resident set size of a worker, in bytes (None if it is gone)."""
        return rss_bytes(pid)

    def reap(self, spawned: SpawnedProcess) -> int | None:
        """The exit code if the process ended (negative: killed by that signal), else None."""
        process = spawned.process
        if process.is_alive():
            return None
        process.join(0)
        # A finished worker owns nothing: what its tasks left running goes with it
        # (a worker leads its session, whose pid stays taken while a member lives).
        sessions.kill_session(spawned.pid)
        if self.fence is not None:
            self.fence.remove(spawned.pid)
        code: Any = process.exitcode
        return code if code is not None else None
