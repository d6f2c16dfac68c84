"""Why a store write failed: the store is out of reach (try again later), or it refused this data (never).

The difference decides whether one job can stop a host. A write retried
until it succeeds is right when the server is gone, a connection dropped or
a lock timed out: it will succeed once the store is back. The same retry on
a value the store refuses (``Data too long for column 'error'``, a string
SQLite finds too big, text a driver cannot encode) never succeeds, and
holds every job behind it. Such a write must fail the job it belongs to,
with the store's reason, and let the others through.

Pure classification of DBAPI exceptions (pymysql and sqlite3), wrapped by
SQLAlchemy, by jobd's ``StoreFault`` or not at all; and
``raised_as_unavailable``, the boundary above which callers see jobd's own
``StoreUnavailable`` instead. Nothing here loads SQLAlchemy: the master
reaches its store through the driver alone (``driver_runner``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import StoreUnavailable
from .diagnosis import describe_store_error

# MySQL/MariaDB server error codes that blame the statement's data, whatever
# exception class pymysql gives them: retrying the same values fails again.
MYSQL_DATA_ERRORS = frozenset({
    1048,  # column cannot be null
    1062,  # duplicate entry
    1118,  # row size too large
    1153,  # packet larger than max_allowed_packet
    1264,  # out of range value
    1265,  # data truncated
    1292,  # truncated incorrect value
    1300,  # invalid character string
    1301,  # result larger than max_allowed_packet
    1366,  # incorrect string value
    1406,  # data too long for column
    3140,  # invalid JSON text
    4025,  # CHECK constraint failed
})
# SQLite result codes that blame the data (the rest of its OperationalErrors:
# locked, busy, I/O, full disk, cannot open — the store is not serving now).
SQLITE_DATA_ERRORS = frozenset({
    18,  # SQLITE_TOOBIG: string or blob too big
    19,  # SQLITE_CONSTRAINT
    20,  # SQLITE_MISMATCH
    25,  # SQLITE_RANGE
})


class StoreFault(Exception):
    """A statement the store did not carry out: the driver's own exception is ``orig``.

    The store's runners (``sql_runner``) raise it for every driver error,
    through SQLAlchemy or not, so the master catches one class of jobd's
    own; ``is_outage`` tells a store out of reach from data it refused.
    """

    def __init__(self, orig: BaseException, *, statement: str | None = None, connection_invalidated: bool = False) -> None:
        super().__init__(f"({type(orig).__module__}.{type(orig).__name__}) {orig}")
        self.orig = orig
        self.statement = statement
        self.connection_invalidated = connection_invalidated  # the connection was dropped: the next statement opens another


def is_store_error(error: BaseException) -> bool:
    """Whether ``error`` is a store's failure: jobd's ``StoreFault`` or SQLAlchemy's ``DBAPIError`` (loaded or not)."""
    return isinstance(error, StoreFault) or any(
        klass.__module__.startswith("sqlalchemy") and klass.__name__ == "DBAPIError" for klass in type(error).__mro__
    )


def driver_error(error: BaseException) -> BaseException:
    """The driver's own exception behind a wrapper (SQLAlchemy's, ``StoreFault``), or ``error`` itself."""
    wrapped = getattr(error, "orig", None)
    return wrapped if isinstance(wrapped, BaseException) else error


def is_outage(error: BaseException) -> bool:
    """True if ``error`` says the store cannot serve now (retry later); False if it refused the data.

    An unknown operational error counts as an outage: retrying a write that
    could have succeeded is safe, failing a job over a passing fault is not.
    """
    if getattr(error, "connection_invalidated", False) is True:
        return True
    cause = driver_error(error)
    if isinstance(cause, sqlite3.Error):
        if isinstance(cause, (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
            return False
        return getattr(cause, "sqlite_errorcode", None) not in SQLITE_DATA_ERRORS
    code = _mysql_code(cause)
    if code is not None:
        if code in MYSQL_DATA_ERRORS:
            return False
        return _is_pymysql(cause, ("OperationalError", "InternalError", "InterfaceError"))
    if _is_pymysql(cause, ("OperationalError", "InternalError", "InterfaceError")):
        return True  # no code: a lost connection, a socket error
    if isinstance(cause, (UnicodeError, ValueError, TypeError, OverflowError, RecursionError)):
        return False  # raised while binding this statement's values: nothing reached the store
    if isinstance(cause, OSError):
        return True
    return not _is_pymysql(cause, ("DataError", "IntegrityError", "ProgrammingError", "NotSupportedError"))


def is_data_error(error: BaseException) -> bool:
    """Whether ``error`` is a failure of a store write to refuse for good (see ``is_outage``)."""
    wrapped = driver_error(error) is not error
    if not wrapped and not isinstance(error, (sqlite3.Error, UnicodeError, ValueError, TypeError, OverflowError)):
        return _is_pymysql(error, ("MySQLError",)) and not is_outage(error)
    return not is_outage(error)


def describe(error: BaseException) -> str:
    """The store's own reason, without SQLAlchemy's statement and parameters (which may be megabytes)."""
    cause = driver_error(error)
    text = str(cause) or type(cause).__name__
    return f"{type(cause).__name__}: {text}" if isinstance(cause, (UnicodeError, ValueError, TypeError)) else text


def _mysql_code(error: BaseException) -> int | None:
    if not _is_pymysql(error, ("MySQLError",)):
        return None
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _is_pymysql(error: BaseException, names: tuple[str, ...]) -> bool:
    """Whether ``error`` is one of pymysql's exception classes named ``names`` (pymysql need not be installed)."""
    return any(
        klass.__module__.startswith("pymysql") and klass.__name__ in names for klass in type(error).__mro__
    )


@contextmanager
def raised_as_unavailable() -> Iterator[None]:
    """Turn the store's errors (``is_store_error``) into jobd's ``StoreUnavailable`` (the driver's reason, what to do).

    The boundary for callers above the store — the operator functions the
    CLI and ``jobd web`` call — so nothing there needs SQLAlchemy's classes:
    a store that is down, refuses a statement, or has no jobd tables yet is
    one error with one exit code (3) and an actionable message.
    Also a decorator (``@raised_as_unavailable()``).
    """
    try:
        yield
    except Exception as error:
        if not is_store_error(error):
            raise
        raise StoreUnavailable(describe_store_error(error)) from error
