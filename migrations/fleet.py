"""Run many tenants in parallel in the foreground: ordering, canaries, the summary.

Tenants are independent, so the fleet is a thread pool over
``migrate_tenant``: the work happens in MariaDB, and threads only wait on
sockets. Largest tenants start first so the longest migrations do not
begin last and stretch the wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jobd.migrations.database import database_sizes, server_engine
from jobd.migrations.outcome import OutcomeStatus, TenantOutcome
from jobd.migrations.runner import Clock, migrate_tenant, utc_now
from jobd.migrations.settings import MigrationsSettings, SnapshotMode
from jobd.migrations.steps import load_steps
from jobd.migrations.tenants import Tenant, load_tenants, select_tenants

TenantProgress = Callable[[Tenant, int, int, str], None]
OutcomeCallback = Callable[[TenantOutcome], None]


@dataclass
class FleetSummary:
    """Every tenant's outcome, in the order they finished."""

    outcomes: list[TenantOutcome]
    seconds: float
    canaries: list[str] = field(default_factory=list)
    stopped_by_canary: bool = False

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)

    def count(self, status: OutcomeStatus) -> int:
        return sum(outcome.status is status for outcome in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "canaries": self.canaries,
            "stopped_by_canary": self.stopped_by_canary,
            "tenants": [outcome.to_json() for outcome in self.outcomes],
        }


def order_largest_first(tenants: Sequence[Tenant], sizes: dict[str, int]) -> list[Tenant]:
    """Largest database first; ties by name so the order is reproducible (pure)."""
    def size_of(tenant: Tenant) -> int:
        return tenant.size_bytes if tenant.size_bytes is not None else sizes.get(tenant.database, 0)

    return sorted(tenants, key=lambda tenant: (-size_of(tenant), tenant.name))


def split_canaries(ordered: Sequence[Tenant], count: int) -> tuple[list[Tenant], list[Tenant]]:
    """The ``count`` smallest tenants go first: the quickest, least costly signal (pure)."""
    if count <= 0:
        return [], list(ordered)
    canaries = list(ordered[-count:])
    return canaries, [tenant for tenant in ordered if tenant not in canaries]


def run_migrations(
    settings: MigrationsSettings,
    *,
    tenant_names: Sequence[str] | None = None,
    parallel: int | None = None,
    canary: int = 0,
    snapshot_mode: SnapshotMode | None = None,
    lock_wait: float = 0.0,
    on_progress: TenantProgress | None = None,
    on_outcome: OutcomeCallback | None = None,
    clock: Clock = utc_now,
) -> FleetSummary:
    """Migrate the selected tenants, ``parallel`` at a time; canaries first if asked.

    A bad migrations folder or an unknown ``--tenants`` name raises before
    anything runs. Refused registry rows are reported, never touched.
    """
    started = time.monotonic()
    steps = load_steps(settings.folder)
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    outcomes: list[TenantOutcome] = []

    def finished(outcome: TenantOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    for refused in tenant_list.refused:
        finished(TenantOutcome(refused.name, refused.database, OutcomeStatus.REFUSED, error=refused.reason))
    engine = server_engine(settings.server_url())
    try:
        unsized = [tenant.database for tenant in tenant_list.tenants if tenant.size_bytes is None]
        ordered = order_largest_first(tenant_list.tenants, database_sizes(engine, unsized))
        canaries, rest = split_canaries(ordered, canary)
        workers = parallel or settings.parallel

        def migrate(tenant: Tenant) -> TenantOutcome:
            def progress(done: int, total: int, message: str) -> None:
                if on_progress is not None:
                    on_progress(tenant, done, total, message)

            outcome = migrate_tenant(
                settings, tenant, snapshot_mode=snapshot_mode, progress=progress, steps=steps,
                engine=engine, lock_wait=lock_wait, clock=clock,
            )
            finished(outcome)
            return outcome

        stopped = False
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jobd-migrate") as pool:
            if canaries:
                canary_outcomes = list(pool.map(migrate, canaries))
                stopped = not all(outcome.ok for outcome in canary_outcomes)
            if stopped:
                for tenant in rest:
                    finished(TenantOutcome(
                        tenant.name, tenant.database, OutcomeStatus.SKIPPED,
                        error="not attempted: a canary tenant failed",
                    ))
            else:
                list(pool.map(migrate, rest))
    finally:
        engine.dispose()
    return FleetSummary(outcomes, time.monotonic() - started, [tenant.name for tenant in canaries], stopped)
