"""Which tables a step's statements touch, found with sqlglot (pure).

The snapshot only needs the tables a step can change. When a statement is
not understood, the answer is "unknown" and the caller snapshots the whole
schema: a wider snapshot costs time, a narrower one could lose data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError

from jobd.migrations.errors import MigrationFolderError

_RENAME_PATTERN = re.compile(r"^\s*RENAME\s+TABLES?\s+(?P<pairs>.+)$", re.I | re.S)
_IDENT = r"`?([A-Za-z0-9_]+)`?(?:\s*\.\s*`?([A-Za-z0-9_]+)`?)?"
_PAIR_PATTERN = re.compile(rf"^\s*{_IDENT}\s+TO\s+{_IDENT}\s*$", re.I)
_TABLE_KINDS = frozenset({"TABLE", "INDEX"})
# Statements that touch no table.
_HARMLESS_PATTERN = re.compile(r"^\s*(DO|SET|SELECT\s+SLEEP)\b", re.I)
# Built once, here, under the import lock. sqlglot loads a dialect lazily and
# registers its class before the class is fully built, so two runner threads
# asking for "mysql" at the same first moment could get a half-built dialect
# that fails to parse plain MySQL DDL: the tenant's snapshot plan then missed
# the tables of every later statement (a CI failure, reproduced).
_MYSQL = Dialect.get_or_raise("mysql")


@dataclass(frozen=True)
class Touched:
    """The tables a set of statements names; ``complete`` is False when one was not understood."""

    tables: frozenset[str]
    complete: bool
    reason: str = ""


def touched_tables(statements: Iterable[str]) -> Touched:
    """The unqualified table names the statements reference.

    Every statement is read even after one is not understood, so the names
    of the others are still known (a restore must move aside the tables the
    later statements create). A statement that names another database is
    refused: a tenant migration must stay inside its tenant.
    """
    tables: set[str] = set()
    not_understood: str | None = None
    for statement in statements:
        found = _tables_of(statement)
        if found is None:
            not_understood = not_understood or f"not understood: {statement[:60]!r}"
            continue
        tables |= found
    return Touched(frozenset(tables), not_understood is None, not_understood or "")


def _tables_of(statement: str) -> set[str] | None:
    if _HARMLESS_PATTERN.match(statement):
        return set()
    rename = _RENAME_PATTERN.match(statement)
    if rename:
        return _rename_tables(statement, rename["pairs"])
    try:
        parsed = sqlglot.parse_one(statement, read=_MYSQL)
    except ParseError:
        return None
    if parsed is None or isinstance(parsed, exp.Command):
        return None
    if isinstance(parsed, (exp.Create, exp.Drop)) and str(parsed.args.get("kind") or "").upper() not in _TABLE_KINDS:
        return None  # routines, views, triggers, events: not tables a snapshot copies
    names: set[str] = set()
    for table in parsed.find_all(exp.Table):
        if table.args.get("db") is not None or table.args.get("catalog") is not None:
            raise MigrationFolderError(
                f"statement names another database ({table.sql(dialect='mysql')}); "
                "tenant migrations must use unqualified table names"
            )
        if table.name:
            names.add(table.name)
    # CTE names are not tables of the schema.
    names -= {cte.alias for cte in parsed.find_all(exp.CTE)}
    return names if names or isinstance(parsed, exp.Select) else None


def _rename_tables(statement: str, pairs: str) -> set[str]:
    names: set[str] = set()
    for pair in pairs.split(","):
        match = _PAIR_PATTERN.match(pair)
        if not match:
            raise MigrationFolderError(f"cannot read RENAME TABLE: {statement[:80]!r}")
        source_db, source, target_db, target = match.groups()
        if source is not None or target is not None:
            raise MigrationFolderError(
                f"RENAME TABLE names another database: {statement[:80]!r}; use unqualified names"
            )
        names |= {source_db, target_db}
    return names
