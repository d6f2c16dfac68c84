"""What a tenant needs: pending steps, and the drift that blocks it (pure).

The plan compares the folder's steps with the tenant's tracking rows. Like
Flyway's validate, an applied step whose text changed, or an applied step
the folder no longer has, blocks the tenant: running further steps on top of
a history nobody can reproduce is how tenants drift apart silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jobd.migrations.steps import Step


@dataclass(frozen=True)
class AppliedStep:
    """A row of a tenant's tracking table."""

    file: str
    tag: str
    checksum: str
    applied_at: datetime
    duration_ms: int
    jobd_version: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.tag)


@dataclass(frozen=True)
class Drift:
    """An applied step that no longer matches the folder."""

    file: str
    tag: str
    problem: str  # "changed" (checksum differs) or "missing" (no longer in the folder)

    def describe(self) -> str:
        if self.problem == "changed":
            return f"{self.file}:{self.tag} was edited after it was applied"
        return f"{self.file}:{self.tag} was applied but is no longer in the folder"


@dataclass(frozen=True)
class TenantPlan:
    """The steps to apply to one tenant, or why it must not be touched."""

    applied: tuple[AppliedStep, ...]
    pending: tuple[Step, ...]
    drift: tuple[Drift, ...] = field(default=())

    @property
    def blocked(self) -> bool:
        return bool(self.drift)

    @property
    def current(self) -> str | None:
        """The label of the last applied step in folder order, or None for a fresh tenant."""
        if not self.applied:
            return None
        last = self.applied[-1]
        return f"{last.file}:{last.tag}"


def plan_tenant(steps: Sequence[Step], applied: Sequence[AppliedStep]) -> TenantPlan:
    """Pending steps in folder order, and the drift between folder and tracking rows.

    A step missing in the middle (applied later ones, not this one) is still
    pending: it runs, like Flyway's out-of-order mode, because the folder is
    the source of truth and skipping it silently would be worse.
    """
    by_key = {step.key: step for step in steps}
    order = {step.key: position for position, step in enumerate(steps)}
    drift: list[Drift] = []
    for row in applied:
        step = by_key.get(row.key)
        if step is None:
            drift.append(Drift(row.file, row.tag, "missing"))
        elif step.checksum != row.checksum:
            drift.append(Drift(row.file, row.tag, "changed"))
    applied_keys = {row.key for row in applied}
    pending = tuple(step for step in steps if step.key not in applied_keys)
    ordered_applied = tuple(
        sorted(applied, key=lambda row: (order.get(row.key, -1), row.applied_at))
    )
    return TenantPlan(ordered_applied, pending, tuple(drift))
