"""RQ under test: ``rq worker-pool -n 2`` with RQ's default worker (a work horse forked per job).

RQ's keys cannot be prefixed (``rq:…``), so the run owns a Redis database
of its own (the harness picks an empty one) and cleanup deletes ``rq:*``
there, and only there.
"""

from __future__ import annotations

import processes
import stamps
from base import WORKERS, Adapter, delete_redis_keys


def work(submitted: float = 0.0, seconds: float = 0.0) -> None:
    stamps.work(submitted, seconds)


class RQAdapter(Adapter):
    name = "rq"
    packages = ("rq", "redis")

    def setup(self) -> None:
        from redis import Redis
        from rq import Queue

        self.connection = Redis.from_url(self.redis_url)
        self.queue = Queue(self.prefix, connection=self.connection)

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        from rq import Queue

        kwargs = {"seconds": seconds} if seconds else {}
        for start in range(0, count, 1000):
            batch = [Queue.prepare_data(work, kwargs=kwargs) for _ in range(min(1000, count - start))]
            self.queue.enqueue_many(batch)

    def submit(self, submitted: float) -> None:
        self.queue.enqueue(work, submitted=submitted)

    def worker_command(self) -> list[str]:
        return [
            self.executable("rq"), "worker-pool", "--num-workers", str(WORKERS), "--url", self.redis_url,
            "--logging-level", "WARNING", self.prefix,
        ]

    def roles(self) -> tuple[list[int], list[int]]:
        """The pool process and its 2 workers; the work horse a worker forks per job is neither."""
        supervisor, workers = super().roles()
        return [pid for pid in supervisor if processes.parent_of(pid) not in workers], workers

    def teardown(self) -> None:
        if hasattr(self, "connection"):
            self.connection.close()
        delete_redis_keys(self.redis_url, "rq:*")
