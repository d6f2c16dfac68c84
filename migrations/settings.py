"""The ``[migrations]`` table of jobd.toml, validated.

The foundation's full config model embeds ``MigrationsSettings`` under the
key ``migrations``; until then ``load_migrations_settings`` reads only that
table so the migration commands work on their own.

Example::

    [migrations]
    folder = "tenants/migrations"          # relative to the config file
    registry_url = "mysql+pymysql://jobd@db1:3306/registry"
    registry_query = "SELECT name, db_name, size_bytes FROM tenants WHERE active = 1"
    # tenants = [{ name = "acme", database = "t_acme" }]   # instead of a registry
    tenant_url = "mysql+pymysql://jobd@db1:3306/"        # default: the registry's server
    parallel = 4
    snapshot = "touched"                    # "touched" | "schema" | "none"
    snapshot_retention = 3                  # snapshots kept per tenant
    lock_wait_timeout = 30                  # seconds a DDL waits for a metadata lock
    daemon = "migrate"                      # the daemon whose jobs migrate tenants when a master runs
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobd.errors import ConfigError
from jobd.migrations.errors import UnsafeIdentifier
from jobd.migrations.identifiers import validate_identifier, validate_tenant_name
from jobd.migrations.snapshot_mode import SnapshotMode

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_PARALLEL = 4
DEFAULT_SNAPSHOT_RETENTION = 3
DEFAULT_LOCK_WAIT_TIMEOUT = 30
DEFAULT_DAEMON = "migrate"


class StaticTenant(BaseModel):
    """A tenant listed in the config instead of a registry database."""

    model_config = ConfigDict(extra="forbid")

    name: str
    database: str

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        try:
            return validate_tenant_name(value)
        except UnsafeIdentifier as error:
            raise ValueError(str(error)) from None

    @field_validator("database")
    @classmethod
    def _safe_database(cls, value: str) -> str:
        try:
            return validate_identifier(value, what="database")
        except UnsafeIdentifier as error:
            raise ValueError(str(error)) from None


class MigrationsSettings(BaseModel):
    """Where the migrations and the tenants are, and how to run across them."""

    model_config = ConfigDict(extra="forbid")

    folder: Path
    registry_url: str | None = None
    registry_query: str | None = None
    tenants: list[StaticTenant] | None = None
    tenant_url: str | None = None
    parallel: int = Field(default=DEFAULT_PARALLEL, ge=1, le=64)
    snapshot: SnapshotMode = SnapshotMode.TOUCHED
    snapshot_retention: int = Field(default=DEFAULT_SNAPSHOT_RETENTION, ge=1)
    lock_wait_timeout: int = Field(default=DEFAULT_LOCK_WAIT_TIMEOUT, ge=1, le=86400)
    daemon: str = Field(default=DEFAULT_DAEMON, pattern=r"^[a-z][a-z0-9_-]{0,63}$")

    @field_validator("registry_url", "tenant_url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        if value is not None:
            # SQLAlchemy is imported only for a config with tenant URLs: every
            # command reads this model, and most never touch a tenant database.
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(value)
            except ArgumentError as error:
                raise ValueError(f"not a database URL: {error}") from None
        return value

    @model_validator(mode="after")
    def _one_source_of_tenants(self) -> MigrationsSettings:
        if (self.registry_url is None) == (self.tenants is None):
            raise ValueError("set either registry_url (with registry_query) or tenants, not both")
        if self.registry_url is not None and not self.registry_query:
            raise ValueError("registry_query is required with registry_url")
        if self.tenants is not None and self.tenant_url is None:
            raise ValueError("tenant_url is required with a static tenants list")
        if self.tenants is not None:
            names = [tenant.name for tenant in self.tenants]
            if len(names) != len(set(names)):
                raise ValueError("tenant names must be unique")
        return self

    def server_url(self) -> URL:
        """The server the tenant databases live on, without a database selected."""
        base = self.tenant_url if self.tenant_url is not None else self.registry_url
        assert base is not None  # guaranteed by the model validator
        from sqlalchemy.engine import make_url

        return make_url(base).set(database=None)


def load_migrations_settings(config_path: str | Path) -> MigrationsSettings:
    """Read and validate the ``[migrations]`` table of a TOML config file.

    ``folder`` is resolved against the config file's directory, so a config
    works the same from any current directory.
    """
    path = Path(config_path)
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), None, f"not valid TOML: {error}") from None
    table: Any = document.get("migrations")
    if not isinstance(table, dict):
        raise ConfigError(str(path), "migrations", "missing [migrations] table")
    try:
        settings = MigrationsSettings.model_validate(table)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        key = f"migrations.{location}" if location else "migrations"
        raise ConfigError(str(path), key, first["msg"]) from None
    if not settings.folder.is_absolute():
        settings = settings.model_copy(update={"folder": (path.parent / settings.folder).resolve()})
    return settings
