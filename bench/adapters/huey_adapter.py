"""Huey under test: RedisHuey, consumer with 2 worker processes (``-k process -w 2``).

This module is also the consumer's entry point (``huey_adapter.huey``);
every Huey key carries the run's prefix as the Huey name.
"""

from __future__ import annotations

import os
from typing import Any

import stamps
from base import WORKERS, Adapter, delete_redis_keys


def make_huey(prefix: str, redis_url: str) -> tuple[Any, Any]:
    from huey import RedisHuey

    huey = RedisHuey(prefix, url=redis_url)
    return huey, huey.task(name="bench.work")(stamps.work)


if "BENCH_PREFIX" in os.environ:  # in the consumer
    huey, work = make_huey(os.environ["BENCH_PREFIX"], os.environ["BENCH_REDIS_URL"])


class HueyAdapter(Adapter):
    name = "huey"
    packages = ("huey", "redis")

    def setup(self) -> None:
        self.huey, self.work = make_huey(self.prefix, self.redis_url)

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        kwargs = {"seconds": seconds} if seconds else {}
        for _ in range(count):
            self.work(**kwargs)

    def submit(self, submitted: float) -> None:
        self.work(submitted=submitted)

    def worker_command(self) -> list[str]:
        return [self.executable("huey_consumer"), "huey_adapter.huey", "-k", "process", "-w", str(WORKERS), "-q"]

    def teardown(self) -> None:
        delete_redis_keys(self.redis_url, f"*{self.prefix}*")
