"""The only way a name reaches SQL text: validated by a strict rule, then quoted.

Tenant databases and their tables are identifiers, which cannot be bound
parameters. Everything that must be pasted into a statement goes through
``quote``; names that are not plain identifiers are refused, never escaped,
because a registry row such as ``x; DROP DATABASE y`` is an attack or a
mistake, and neither should run.
"""

from __future__ import annotations

import re

from jobd.migrations.errors import UnsafeIdentifier

# MariaDB allows far more in quoted identifiers; jobd accepts only what a
# schema designer would type. Not all digits, so it never reads as a number.
IDENTIFIER_PATTERN = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_]{1,64}$")
TENANT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_identifier(name: object, *, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe database/table identifier, else raise UnsafeIdentifier."""
    if not isinstance(name, str) or not IDENTIFIER_PATTERN.fullmatch(name):
        raise UnsafeIdentifier(
            f"{what} {name!r} is not a plain identifier (letters, digits, _; at most 64); refused"
        )
    return name


def validate_tenant_name(name: object) -> str:
    """Return ``name`` if it is a safe tenant name (as shown to people and used in lock names)."""
    if not isinstance(name, str) or not TENANT_NAME_PATTERN.fullmatch(name):
        raise UnsafeIdentifier(
            f"tenant name {name!r} is not allowed (letters, digits, _ . -; at most 64); refused"
        )
    return name


def quote(*parts: str) -> str:
    """Backtick-quote a possibly qualified identifier (``quote(db, table)`` → `db`.`table`)."""
    return ".".join(f"`{validate_identifier(part)}`" for part in parts)
