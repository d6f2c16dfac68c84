"""``jobd batches`` and ``jobd batch ID`` through the database driver alone.

Listing batches and reading one are a few SELECTs; validating the config's
models and importing SQLAlchemy for them was most of the command's run.
Here the store is reached with the driver arguments the config's digest
recorded (``jobd.config_digest``), running the statements the store's own
methods run (``store.status_reads_sql``), so both ways say the same. Where
the digest has no driver arguments to use (a SQLite file that does not exist
yet) the full path (``jobd.batches``) answers, and reports what it finds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..batch_record import Batch, BatchState
from ..config_digest import config_digest
from ..store.driver_reads import driver_status_reads
from ..store.driver_sql import existing_target

ConfigPath = str | os.PathLike[str] | None


def list_batches(config: ConfigPath, *, states: Sequence[BatchState] = (), limit: int = 50) -> list[Batch]:
    """Most recent batches first, as ``jobd.batches.list_batches``."""
    target = existing_target(config_digest(config).driver)
    if target is None:
        from ..batches import list_batches as from_store

        return from_store(states=states, limit=limit, config=config)
    with driver_status_reads(target) as reads:
        return reads.batches(states=states, limit=limit)


def batch_report(config: ConfigPath, batch_id: int) -> dict[str, Any]:
    """One batch's counters and its members by state now, as ``jobd.batches.batch_report``."""
    target = existing_target(config_digest(config).driver)
    if target is None:
        from ..batches import batch_report as from_store

        return from_store(batch_id, config=config)
    with driver_status_reads(target) as reads:
        return {**reads.batch(batch_id).to_dict(), "members": reads.batch_member_states(batch_id)}
