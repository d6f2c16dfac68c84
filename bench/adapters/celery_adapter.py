"""Celery under test: Redis broker, prefork pool of 2 processes, no result backend.

This module is also the Celery app the worker loads (``celery -A
celery_adapter``). Its queue and every key kombu writes carry the run's
prefix, so cleanup removes exactly this run's keys. Celery's defaults are
kept (acks early, prefetch 4 per process) except gossip and mingle, which
only slow start-up and chatter on a shared Redis.
"""

from __future__ import annotations

import os
from typing import Any

import stamps
from base import WORKERS, Adapter, delete_redis_keys


def make_app(prefix: str, redis_url: str) -> Any:
    from celery import Celery

    app = Celery("celery_adapter", broker=redis_url)
    app.conf.update(
        broker_transport_options={"global_keyprefix": f"{prefix}:"},
        broker_connection_retry_on_startup=True,
        task_default_queue=prefix,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    app.task(name="bench.work")(stamps.work)
    return app


if "BENCH_PREFIX" in os.environ:  # in the worker: the app `celery -A celery_adapter` finds
    app = make_app(os.environ["BENCH_PREFIX"], os.environ["BENCH_REDIS_URL"])


class CeleryAdapter(Adapter):
    name = "celery"
    packages = ("celery", "kombu", "billiard", "redis")

    def setup(self) -> None:
        self.app = make_app(self.prefix, self.redis_url)
        self.work = self.app.tasks["bench.work"]

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        kwargs = {"seconds": seconds} if seconds else {}
        with self.app.producer_or_acquire() as producer:
            for _ in range(count):
                self.work.apply_async(kwargs=kwargs, producer=producer)

    def submit(self, submitted: float) -> None:
        self.work.apply_async(kwargs={"submitted": submitted})

    def worker_command(self) -> list[str]:
        return [
            self.executable("celery"), "-A", "celery_adapter", "worker", "--pool", "prefork",
            "--concurrency", str(WORKERS), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ]

    def teardown(self) -> None:
        if hasattr(self, "app"):
            self.app.close()
        delete_redis_keys(self.redis_url, f"{self.prefix}:*")
