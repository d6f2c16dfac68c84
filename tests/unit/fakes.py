"""Doubles for the supervision seam: a launcher whose workers exit when told, and a clock moved by hand.

The fake worker is only a pipe: what the pool writes to it is decoded and
kept (``received``), and a test plays the worker by handing the pool the
messages a real one would send. Signals are recorded, never sent; SIGKILL
ends the fake process, SIGTERM ends it only if the test scripts so.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from jobd.workers import protocol
from jobd.workers.processes import SpawnedProcess

UNREACHABLE_SOCKET = Path("/" + "s" * 200)  # too long to bind: workers get no hand-off channel


class ManualClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """What the pool reads of a process: its pid and a sentinel descriptor."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sentinel, self._sentinel_writer = os.pipe()

    def close(self) -> None:
        os.close(self.sentinel)
        os.close(self._sentinel_writer)


@dataclass
class FakeWorker:
    pid: int
    process: FakeProcess
    worker_end: Connection
    exit_code: int | None = None
    on_sigterm: int | None = None  # the exit code a SIGTERM leads to; None: it ignores SIGTERM
    received: list[protocol.Message] = field(default_factory=list)

    def read(self) -> list[protocol.Message]:
        """Everything the pool wrote to this worker since the last read."""
        while self.worker_end.poll(0):
            self.received.extend(protocol.decode(self.worker_end.recv_bytes()))
        return self.received


class FakeLauncher:
    """Starts fake workers, records every signal, reaps the ones whose exit a test scripted."""

    context: Any = None  # only a hand-off channel uses it, and fake workers get none (``UNREACHABLE_SOCKET``)

    def __init__(self) -> None:
        self.fence = None
        self.workers: dict[int, FakeWorker] = {}
        self.signals: list[tuple[int, int]] = []  # (pid, signal) in the order sent
        self.rss: dict[int, int] = {}
        self._next_pid = 40_000

    def spawn(self, spec: Any, name: str, channel: Any = None) -> SpawnedProcess:
        self._next_pid += 1
        master_end, worker_end = multiprocessing.Pipe(duplex=True)
        process = FakeProcess(self._next_pid)
        self.workers[process.pid] = FakeWorker(process.pid, process, worker_end)
        return SpawnedProcess(process, master_end)  # type: ignore[arg-type]

    def send_signal(self, pid: int, signum: int) -> None:
        self.signals.append((pid, signum))

    def terminate(self, pid: int) -> None:
        self.send_signal(pid, signal.SIGTERM)
        worker = self.workers[pid]
        if worker.on_sigterm is not None:
            self.exit(pid, worker.on_sigterm)

    def kill(self, pid: int) -> None:
        self.send_signal(pid, signal.SIGKILL)
        self.exit(pid, -signal.SIGKILL)

    def rss_bytes(self, pid: int) -> int | None:
        return self.rss.get(pid)

    def reap(self, spawned: SpawnedProcess) -> int | None:
        worker = self.workers[spawned.pid]
        return worker.exit_code

    def exit(self, pid: int, code: int) -> None:
        """Script the process's end: the next reap sees it."""
        worker = self.workers[pid]
        if worker.exit_code is None:
            worker.exit_code = code

    def signals_to(self, pid: int) -> list[int]:
        return [signum for target, signum in self.signals if target == pid]

    def close(self) -> None:
        for worker in self.workers.values():
            worker.worker_end.close()
            worker.process.close()
