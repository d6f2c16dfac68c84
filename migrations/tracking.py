"""The tracking table inside each tenant: one row per applied step.

A row is written in the same transaction that clears the step's in-flight
marker, right after the step's last statement succeeds, so "recorded" always
means "applied". The table is part of every snapshot: restoring a tenant
also restores exactly which steps it had.
"""

from __future__ import annotations

from datetime import datetime

from jobd import __version__
from jobd.migrations.database import TenantConnection
from jobd.migrations.plan import AppliedStep
from jobd.migrations.steps import Step

TRACKING_TABLE = "jobd_migrations"
TRACKING_FORMAT = 1  # bump with a migration of the table itself when its columns change

TRACKING_DDL = f"""
CREATE TABLE IF NOT EXISTS `{TRACKING_TABLE}` (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    file VARCHAR(255) NOT NULL,
    tag VARCHAR(64) NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at DATETIME(6) NOT NULL,
    duration_ms INT UNSIGNED NOT NULL,
    jobd_version VARCHAR(32) NOT NULL,
    run_id CHAR(32) NOT NULL,
    UNIQUE KEY file_tag (file, tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='jobd migration tracking, format {TRACKING_FORMAT}'
"""


def tracking_exists(session: TenantConnection) -> bool:
    return TRACKING_TABLE in session.base_tables()


def read_applied(session: TenantConnection) -> list[AppliedStep]:
    """The tenant's applied steps, oldest first; empty when the table does not exist yet."""
    if not tracking_exists(session):
        return []
    rows = session.execute(
        f"SELECT file, tag, checksum, applied_at, duration_ms, jobd_version FROM `{TRACKING_TABLE}` ORDER BY id"
    )
    return [AppliedStep(*row) for row in rows]


def record_step(session: TenantConnection, step: Step, *, run_id: str, applied_at: datetime, duration_ms: int) -> None:
    """Insert the step's row (not committed: the caller commits it with the in-flight marker)."""
    session.execute(
        f"INSERT INTO `{TRACKING_TABLE}` (file, tag, checksum, applied_at, duration_ms, jobd_version, run_id) "
        "VALUES (:file, :tag, :checksum, :applied_at, :duration_ms, :version, :run_id)",
        file=step.file,
        tag=step.tag,
        checksum=step.checksum,
        applied_at=applied_at,
        duration_ms=duration_ms,
        version=__version__,
        run_id=run_id,
    )


def realign_checksum(session: TenantConnection, file: str, tag: str, checksum: str) -> None:
    session.execute(
        f"UPDATE `{TRACKING_TABLE}` SET checksum = :checksum WHERE file = :file AND tag = :tag",
        checksum=checksum,
        file=file,
        tag=tag,
    )


def forget_step(session: TenantConnection, file: str, tag: str) -> None:
    session.execute(f"DELETE FROM `{TRACKING_TABLE}` WHERE file = :file AND tag = :tag", file=file, tag=tag)
