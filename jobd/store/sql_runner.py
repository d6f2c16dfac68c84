"""How the store's tables reach the database: a transaction to write in, statements to read with.

Every table class of the store (``masters``, ``leases``, ``jobs``…) runs its
driver SQL (``sql_statements.Statements``) through a ``SqlRunner``, and
never asks who opened the connection:

* ``engine.EngineRunner`` runs it on SQLAlchemy's pooled connections: the
  CLI, ``jobd web`` and applications, which load SQLAlchemy anyway for the
  schema, operator actions and the full submit.
* ``driver_runner.DriverRunner`` runs it on DB-API connections of its own,
  one per thread: the master, which so never loads SQLAlchemy (about 20 MB
  of its memory for as long as the host runs).

Both raise ``errors.StoreFault`` for a driver error, so what callers catch
does not depend on the runner.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from .sql_statements import Statements


class SqlRunner(Protocol):
    """Transactions on one store."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"mysql"``: which SQL the statements are written in."""
        ...

    @property
    def url(self) -> str:
        """The store's URL as an operator may see it (no password)."""
        ...

    def write(self) -> AbstractContextManager[Statements]:
        """A writing transaction (SQLite: ``BEGIN IMMEDIATE``), committed when the block ends normally, else rolled back."""
        ...

    def read(self) -> AbstractContextManager[Statements]:
        """Statements that only read; they take no write lock."""
        ...

    def returns_ids(self) -> bool:
        """Whether an INSERT can answer the ids it made (``RETURNING``: SQLite 3.35+, MariaDB 10.5+)."""
        ...

    def dispose(self) -> None:
        """Close this process's connections (the runner opens new ones if used again)."""
        ...
