"""What happened to each tenant: the record the runner, the CLI and job tasks share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class OutcomeStatus(str, Enum):
    MIGRATED = "migrated"  # pending steps applied
    UP_TO_DATE = "up_to_date"  # nothing to do
    PLANNED = "planned"  # dry run: what would be applied
    FAILED = "failed"  # a step failed; see ``restored``
    BLOCKED = "blocked"  # drift or an unresolved failure: operator action needed
    BUSY = "busy"  # another runner holds the tenant's lock
    REFUSED = "refused"  # the registry row is not a valid tenant
    SKIPPED = "skipped"  # not attempted (the canary failed)


SUCCESSFUL = frozenset({OutcomeStatus.MIGRATED, OutcomeStatus.UP_TO_DATE, OutcomeStatus.PLANNED})


@dataclass
class TenantOutcome:
    """One tenant's result. ``error`` says what to do when the status is not successful."""

    tenant: str
    database: str
    status: OutcomeStatus
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    current: str | None = None
    failed_step: str | None = None
    failed_statement: str | None = None
    error: str | None = None
    restored: bool = False
    snapshot_database: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in SUCCESSFUL

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["seconds"] = round(self.seconds, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantOutcome:
        """The outcome a migrate job recorded (its result or checkpoint); unknown keys are ignored."""
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        known["status"] = OutcomeStatus(known["status"])
        return cls(**known)
