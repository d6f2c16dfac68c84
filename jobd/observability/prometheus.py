"""A master's Prometheus registry, its series and its HTTP endpoint (``metrics = "host:port"``).

Loaded only by a master configured with ``metrics``: prometheus-client and
the HTTP server it brings are memory every other master would hold for
nothing. What the series mean, and how the loop feeds them, is in
``metrics``; the series are documented in docs/metrics.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .metrics import Snapshot

log = logging.getLogger("jobd.metrics")

NAMESPACE = "jobd"
# Run times of background jobs span milliseconds to hours.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, float("inf"))
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, float("inf"))


class _SnapshotCollector(Collector):
    """Turns the latest snapshot into gauges and counters at scrape time."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()  # replaced whole by the loop; read whole by the scraper

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        workers = GaugeMetricFamily(f"{NAMESPACE}_workers", "Worker processes by daemon and state.", labels=["daemon", "state"])
        depth = GaugeMetricFamily(f"{NAMESPACE}_queue_depth", "Jobs due to run and waiting for a worker.", labels=["daemon"])
        oldest = GaugeMetricFamily(
            f"{NAMESPACE}_queue_oldest_age_seconds", "How long the oldest due job has waited (0 if none).", labels=["daemon"]
        )
        restarts = CounterMetricFamily(
            f"{NAMESPACE}_worker_restarts", "Workers that exited unexpectedly (crash, kill) and were replaced.", labels=["daemon"]
        )
        recycles = CounterMetricFamily(
            f"{NAMESPACE}_worker_recycles", "Workers replaced on purpose, by reason.", labels=["daemon", "reason"]
        )
        for daemon, pool in sorted(snapshot.pools.items()):
            for state, count in sorted(pool.workers.items()):
                workers.add_metric([daemon, state], count)
            depth.add_metric([daemon], pool.queue_depth)
            oldest.add_metric([daemon], pool.oldest_due_age)
            restarts.add_metric([daemon], pool.restarts)
            for reason, count in sorted(pool.recycles.items()):
                recycles.add_metric([daemon, reason], count)
        draining = GaugeMetricFamily(f"{NAMESPACE}_master_draining", "1 while the master drains (stopping).")
        draining.add_metric([], 1 if snapshot.draining else 0)
        yield from (workers, depth, oldest, restarts, recycles, draining)


class Metrics:
    """The metrics of one master and, once started, its HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = Counter(
            f"{NAMESPACE}_jobs_finished", "Job attempts that ended, by outcome: succeeded, retrying, dead, cancelled.",
            ["daemon", "task", "outcome"], registry=self.registry,
        )
        self.durations = Histogram(
            f"{NAMESPACE}_job_duration_seconds", "Run time of job attempts (any outcome).",
            ["daemon", "task"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.schedule_lag = Histogram(
            f"{NAMESPACE}_schedule_lag_seconds", "How late a schedule entry fired after its due time.",
            ["entry"], buckets=LAG_BUCKETS, registry=self.registry,
        )
        self.store_errors = Counter(
            f"{NAMESPACE}_store_errors", "Store operations of the master that failed.", ["operation"], registry=self.registry,
        )
        self.memcached_errors = Counter(
            f"{NAMESPACE}_memcached_errors", "memcached operations that failed.", ["operation"], registry=self.registry,
        )
        self.alerts = Counter(
            f"{NAMESPACE}_alerts", "Alert commands run, by event and result.", ["event", "result"], registry=self.registry,
        )
        self._state = _SnapshotCollector()
        self.registry.register(self._state)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None

    # -- events -----------------------------------------------------------

    def job_ended(self, daemon: str, task: str, outcome: str, duration: float | None) -> None:
        self.jobs.labels(daemon, task, outcome).inc()
        if duration is not None:
            self.durations.labels(daemon, task).observe(max(0.0, duration))

    # -- state ------------------------------------------------------------

    def refresh(self, snapshot: Snapshot) -> None:
        self._state.snapshot = snapshot

    # -- endpoint ---------------------------------------------------------

    def serve(self, address: str) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free one); return the bound address."""
        from prometheus_client import start_http_server

        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        self._server, self._thread = start_http_server(int(port), addr=host, registry=self.registry)
        bound = self._server.server_address
        self.address = (str(bound[0]), int(bound[1]))
        log.info("metrics on http://%s:%s/metrics", *self.address)
        return self.address

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
