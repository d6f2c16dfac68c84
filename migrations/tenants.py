"""The tenants to migrate: read from a registry database or the config, validated.

Every name is checked before it is used anywhere; a row that fails is kept
as a ``RefusedTenant`` so the run reports it instead of silently dropping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from jobd.errors import StoreUnavailable
from jobd.migrations.errors import UnknownTenant, UnsafeIdentifier
from jobd.migrations.identifiers import validate_identifier, validate_tenant_name
from jobd.migrations.settings import MigrationsSettings


@dataclass(frozen=True)
class Tenant:
    """A tenant whose name and database passed validation."""

    name: str
    database: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class RefusedTenant:
    """A registry row that will not be touched, and why."""

    name: str
    database: str
    reason: str


@dataclass(frozen=True)
class TenantList:
    tenants: tuple[Tenant, ...]
    refused: tuple[RefusedTenant, ...]


def tenants_from_rows(rows: Iterable[Sequence[object]]) -> TenantList:
    """Validate (name, database[, size]) rows; refuse bad names and duplicates (pure)."""
    tenants: list[Tenant] = []
    refused: list[RefusedTenant] = []
    names: set[str] = set()
    databases: set[str] = set()
    for row in rows:
        raw_name = row[0] if len(row) > 0 else None
        raw_database = row[1] if len(row) > 1 else raw_name
        try:
            name = validate_tenant_name(raw_name)
            database = validate_identifier(raw_database, what="database")
        except UnsafeIdentifier as error:
            refused.append(RefusedTenant(str(raw_name), str(raw_database), str(error)))
            continue
        if name in names or database in databases:
            refused.append(RefusedTenant(name, database, "listed twice in the registry; refused"))
            continue
        size = row[2] if len(row) > 2 else None
        names.add(name)
        databases.add(database)
        tenants.append(Tenant(name, database, int(size) if isinstance(size, (int, float)) else None))
    return TenantList(tuple(tenants), tuple(refused))


def load_tenants(settings: MigrationsSettings) -> TenantList:
    """The configured tenants, from the static list or by running the registry query."""
    if settings.tenants is not None:
        return tenants_from_rows((tenant.name, tenant.database) for tenant in settings.tenants)
    assert settings.registry_url is not None and settings.registry_query is not None
    engine = create_engine(settings.registry_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(text(settings.registry_query))]
    except SQLAlchemyError as error:
        raise StoreUnavailable(f"tenant registry query failed: {error.__class__.__name__}: {error.args[0] if error.args else error}") from None
    finally:
        engine.dispose()
    return tenants_from_rows(rows)


def select_tenants(tenant_list: TenantList, names: Sequence[str] | None) -> TenantList:
    """Keep only the named tenants (``--tenants a,b``); an unknown name is an error."""
    if not names:
        return tenant_list
    known = {tenant.name: tenant for tenant in tenant_list.tenants}
    refused = {item.name: item for item in tenant_list.refused}
    unknown = [name for name in names if name not in known and name not in refused]
    if unknown:
        raise UnknownTenant(f"unknown tenant(s): {', '.join(unknown)} (not in the registry)")
    return TenantList(
        tuple(known[name] for name in names if name in known),
        tuple(refused[name] for name in names if name in refused),
    )


def find_tenant(tenant_list: TenantList, name: str) -> Tenant:
    """The valid tenant called ``name``, or UnknownTenant / UnsafeIdentifier."""
    for tenant in tenant_list.tenants:
        if tenant.name == name:
            return tenant
    for refused in tenant_list.refused:
        if refused.name == name:
            raise UnsafeIdentifier(refused.reason)
    raise UnknownTenant(f"unknown tenant {name!r} (not in the registry)")
