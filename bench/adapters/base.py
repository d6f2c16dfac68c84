"""What every system under test must provide to the peer benchmark.

One adapter instance serves one measured run: ``setup`` gives it a fresh
namespace (a new SQLite file, a new MariaDB database, a new Redis key
prefix), jobs are enqueued, its 2 worker processes are started as one
process session, and ``teardown`` stops them and removes what the run
created. Completion and timing come from the stamps the task writes
(``stamps.py``), the same for every system; an adapter may add its own
notion of "done" (jobd: the store says ``succeeded``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import processes

ADAPTERS_DIR = Path(__file__).resolve().parent
WORKERS = 2


class Adapter:
    """Base class: process handling shared by all systems; the rest is per system."""

    name = "?"
    packages: tuple[str, ...] = ()  # distributions the system needs; missing → skipped

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.stamps = workdir / "stamps"
        self.process: subprocess.Popen[bytes] | None = None

    # -- what a system is -------------------------------------------------

    @classmethod
    def missing(cls) -> str | None:
        """Why this system cannot run here (a package is not installed), or None."""
        for package in cls.packages:
            try:
                importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                return f"{package} is not installed (pip install -e '.[bench]')"
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {package: importlib.metadata.version(package) for package in cls.packages}

    # -- a run --------------------------------------------------------------

    def setup(self) -> None:
        """Create this run's namespace (empty queue)."""

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        """Enqueue ``count`` jobs of ``work(seconds=seconds)`` as fast as the system allows."""
        raise NotImplementedError

    def submit(self, submitted: float) -> None:
        """Enqueue one job of ``work(submitted=submitted)`` the way an application would."""
        raise NotImplementedError

    def worker_command(self) -> list[str]:
        """The command line that starts the system's 2 worker processes."""
        raise NotImplementedError

    def start_workers(self) -> None:
        self.process = processes.start(
            self.worker_command(), env=self.env(), cwd=self.workdir, log=self.workdir / "workers.log"
        )

    def finished_by_own_account(self, count: int) -> bool:
        """The system's own view that ``count`` jobs are done (default: the stamps suffice)."""
        return True

    def roles(self) -> tuple[list[int], list[int]]:
        """(supervisor-side pids, worker pids) of the running session.

        Default: the workers are the direct children of the started process
        (minus multiprocessing's resource tracker); everything else in the
        session is supervisor side.
        """
        assert self.process is not None
        everything = processes.session_pids(self.process.pid)
        workers = [
            pid for pid in everything
            if processes.parent_of(pid) == self.process.pid and "resource_tracker" not in processes.cmdline(pid)
        ]
        return [pid for pid in everything if pid not in workers], workers

    def stop_workers(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None

    def teardown(self) -> None:
        """Remove what ``setup`` created (never anything else)."""

    # -- helpers --------------------------------------------------------------

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(ADAPTERS_DIR), os.environ.get("PYTHONPATH")]))
        return {
            **os.environ,
            "PYTHONPATH": path,
            "BENCH_STAMPS": str(self.stamps),
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_PREFIX": self.prefix,
        }

    @property
    def prefix(self) -> str:
        """This run's namespace in Redis: unique per run, so cleanup removes exactly it."""
        return f"jobdbench-{self.workdir.name}"

    @staticmethod
    def executable(name: str) -> str:
        """A console script of the running interpreter's environment."""
        return str(Path(sys.executable).with_name(name))


def delete_redis_keys(redis_url: str, *patterns: str) -> int:
    """Delete the keys matching ``patterns`` (SCAN, never FLUSHDB); return how many."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        for pattern in patterns:
            batch = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += client.delete(*batch)
                    batch = []
            if batch:
                deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted
