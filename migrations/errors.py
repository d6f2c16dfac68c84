"""Errors of the migration engine, placed in jobd's hierarchy.

Each one names the tenant, file or step involved and says what to do, so an
operator reading a summary table knows the next command to type.
"""

from __future__ import annotations

from jobd.errors import BadInput, JobdError


class UnsafeIdentifier(BadInput):
    """A tenant, database or table name does not match the strict identifier rule.

    Names come from a registry anyone with write access to it can edit, so a
    name that is not plainly an identifier is refused instead of escaped.
    """


class MigrationFolderError(BadInput):
    """The migrations folder or one of its files is malformed."""


class TenantBlocked(JobdError):
    """A tenant cannot be migrated until an operator acts (drift, unresolved failure)."""


class TenantBusy(JobdError):
    """Another runner holds the tenant's migration lock."""


class SnapshotError(JobdError):
    """A snapshot could not be taken, found or restored."""


class UnknownTenant(BadInput):
    """A command names a tenant that the registry does not list."""
