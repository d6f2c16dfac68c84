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

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from jobd.config_checks import After, AtLeast, AtMost
from jobd.errors import ConfigError
from jobd.text_files import NotUtf8, read_utf8
from jobd.migrations.errors import UnsafeIdentifier
from jobd.migrations.identifiers import validate_identifier, validate_tenant_name
from jobd.migrations.snapshot_mode import SnapshotMode

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_PARALLEL = 4
DEFAULT_SNAPSHOT_RETENTION = 3
DEFAULT_LOCK_WAIT_TIMEOUT = 30
DEFAULT_DAEMON = "migrate"
DAEMON_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _safe_name(value: str) -> str:
    try:
        return validate_tenant_name(value)
    except UnsafeIdentifier as error:
        raise ValueError(str(error)) from None


def _safe_database(value: str) -> str:
    try:
        return validate_identifier(value, what="database")
    except UnsafeIdentifier as error:
        raise ValueError(str(error)) from None


def _parsable_url(value: str | None) -> str | None:
    if value is not None:
        # SQLAlchemy is imported only for a config with tenant URLs: every
        # command reads this section, and most never touch a tenant database.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError as error:
            raise ValueError(f"not a database URL: {error}") from None
    return value


def _daemon_name(value: str) -> str:
    if not DAEMON_NAME.match(value):
        raise ValueError(f"{value!r} is not a daemon name: a lower-case letter, then letters, digits, '-' or '_'")
    return value


@dataclass(frozen=True)
class StaticTenant:
    """A tenant listed in the config instead of a registry database."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    name: Annotated[str, After(_safe_name)]
    database: Annotated[str, After(_safe_database)]


def _one_source_of_tenants(settings: MigrationsSettings) -> MigrationsSettings:
    if (settings.registry_url is None) == (settings.tenants is None):
        raise ValueError("set either registry_url (with registry_query) or tenants, not both")
    if settings.registry_url is not None and not settings.registry_query:
        raise ValueError("registry_query is required with registry_url")
    if settings.tenants is not None and settings.tenant_url is None:
        raise ValueError("tenant_url is required with a static tenants list")
    if settings.tenants is not None:
        names = [tenant.name for tenant in settings.tenants]
        if len(names) != len(set(names)):
            raise ValueError("tenant names must be unique")
    return settings


@dataclass(frozen=True)
class MigrationsSettings:
    """Where the migrations and the tenants are, and how to run across them.

    Checked as a whole by ``_one_source_of_tenants`` (``CheckedMigrations``).
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    folder: Path
    registry_url: Annotated[str | None, After(_parsable_url)] = None
    registry_query: str | None = None
    tenants: list[StaticTenant] | None = None
    tenant_url: Annotated[str | None, After(_parsable_url)] = None
    parallel: Annotated[int, AtLeast(1), AtMost(64)] = DEFAULT_PARALLEL
    snapshot: SnapshotMode = SnapshotMode.TOUCHED
    snapshot_retention: Annotated[int, AtLeast(1)] = DEFAULT_SNAPSHOT_RETENTION
    lock_wait_timeout: Annotated[int, AtLeast(1), AtMost(86400)] = DEFAULT_LOCK_WAIT_TIMEOUT
    daemon: Annotated[str, After(_daemon_name)] = DEFAULT_DAEMON

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
        document = tomllib.loads(read_utf8(path))
    except NotUtf8 as error:
        raise ConfigError(str(path), None, str(error)) from None
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), None, f"not valid TOML: {error}") from None
    table: Any = document.get("migrations")
    if not isinstance(table, dict):
        raise ConfigError(str(path), "migrations", "missing [migrations] table")
    from pydantic import TypeAdapter, ValidationError

    try:
        settings = TypeAdapter(CheckedMigrations).validate_python(table)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        key = f"migrations.{location}" if location else "migrations"
        raise ConfigError(str(path), key, first["msg"].removeprefix("Value error, ")) from None
    if not settings.folder.is_absolute():
        settings = replace(settings, folder=(path.parent / settings.folder).resolve())
    return settings


#: The section as validated: its fields, then the rules that join them.
CheckedMigrations = Annotated[MigrationsSettings, After(_one_source_of_tenants)]
