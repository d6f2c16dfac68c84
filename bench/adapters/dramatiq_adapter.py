"""Dramatiq under test: RedisBroker, 2 worker processes of 1 thread each.

This module is also what ``dramatiq dramatiq_adapter`` imports: the broker
and the actor. Every key carries the run's prefix as the broker namespace.
Dramatiq's default middleware is kept.
"""

from __future__ import annotations

import os
from typing import Any

import stamps
from base import WORKERS, Adapter, delete_redis_keys


def make_broker(prefix: str, redis_url: str) -> tuple[Any, Any]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, namespace=prefix)
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(stamps.work, actor_name="bench_work", queue_name="bench", broker=broker)
    return broker, actor


if "BENCH_PREFIX" in os.environ:  # in the workers
    broker, work = make_broker(os.environ["BENCH_PREFIX"], os.environ["BENCH_REDIS_URL"])


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    packages = ("dramatiq", "redis")

    def setup(self) -> None:
        self.broker, self.work = make_broker(self.prefix, self.redis_url)

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        kwargs = {"seconds": seconds} if seconds else {}
        for _ in range(count):
            self.work.send_with_options(kwargs=kwargs)

    def submit(self, submitted: float) -> None:
        self.work.send_with_options(kwargs={"submitted": submitted})

    def worker_command(self) -> list[str]:
        return [self.executable("dramatiq"), "dramatiq_adapter", "--processes", str(WORKERS), "--threads", "1"]

    def teardown(self) -> None:
        if hasattr(self, "broker"):
            self.broker.close()
        delete_redis_keys(self.redis_url, f"{self.prefix}:*")
