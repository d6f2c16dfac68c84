"""What a store URL's query may say, read without SQLAlchemy: SQLite's busy timeout and sync level, MySQL's timeouts.

``engine.py`` reads these values from the URL SQLAlchemy parsed, and the
config reads the same ones from the text of the file (``check_store_options``),
so a bad option is refused by `jobd check` with the file and key (exit 2)
instead of by the first command that opens the store (exit 3). So is an
option nobody takes: SQLAlchemy hands a MySQL URL's unknown options to
PyMySQL, whose signature says which it takes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from .. import defaults

#: A URL's query: each option's value, or its values when it is given more than once (SQLAlchemy's ``URL.query``).
Query = Mapping[str, "str | tuple[str, ...]"]

MYSQL_TIMEOUTS = {
    "connect_timeout": defaults.STORE_CONNECT_TIMEOUT_SECONDS,
    "read_timeout": defaults.STORE_READ_TIMEOUT_SECONDS,
    "write_timeout": defaults.STORE_WRITE_TIMEOUT_SECONDS,
}

#: How ``?synchronous=`` may be spelled (any case), and SQLite's pragma value for each (``driver_sql.sqlite_pragmas``).
SQLITE_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def sqlite_busy_timeout(query: Query) -> float:
    """Seconds a SQLite writer waits for another's lock: ``?timeout=``, else jobd's default."""
    given = query.get("timeout")
    try:
        return float(given) if isinstance(given, str) else defaults.SQLITE_BUSY_TIMEOUT_SECONDS
    except ValueError:
        raise ValueError(f"timeout={given!r} is not a number of seconds") from None


def sqlite_synchronous(query: Query) -> str:
    """When a SQLite commit reaches the disk: ``?synchronous=`` (normal or full), else NORMAL
    (``driver_sql.sqlite_pragmas`` says what each survives)."""
    given = query.get("synchronous")
    if given is None:
        return "NORMAL"
    value = SQLITE_SYNCHRONOUS.get(given.lower()) if isinstance(given, str) else None
    if value is None:
        raise ValueError(f"synchronous={given!r} is not one of {', '.join(SQLITE_SYNCHRONOUS)}")
    return value


def mysql_timeouts(query: Query) -> dict[str, float]:
    """PyMySQL's connect/read/write timeouts: the URL's own, else jobd's defaults.

    Without a read timeout a silent partition (packets dropped, no reset)
    blocks a statement, and whoever waits for it (a submit, the master's
    loop), until the kernel gives up on the connection: many minutes.
    (A health probe caps each: ``health.store_probe``.)
    """
    timeouts: dict[str, float] = {}
    for name, default in MYSQL_TIMEOUTS.items():
        given = query.get(name)
        try:
            timeouts[name] = float(given) if isinstance(given, str) else float(default)
        except ValueError:
            raise ValueError(f"{name}={given!r} is not a number of seconds") from None
    return timeouts


#: What a SQLite URL may say: jobd's options, and those SQLAlchemy hands to the sqlite3 module.
#: Not ``uri``: a SQLite URI filename (``file:PATH?mode=…``) is not a path, and jobd reads the
#: store's path in several places (the config's folder, the WAL's size, its own probes); none of
#: SQLite's URI parameters (``mode``, ``cache``, ``nolock``, ``immutable``…) suits a shared store.
SQLITE_URL_OPTIONS = frozenset({"timeout", "synchronous", "check_same_thread", "cached_statements", "detect_types", "isolation_level"})
#: A MySQL URL's TLS options, which SQLAlchemy gathers into PyMySQL's ``ssl`` argument.
SQLALCHEMY_SSL_OPTIONS = frozenset({"ssl_ca", "ssl_key", "ssl_cert", "ssl_capath", "ssl_cipher", "ssl_check_hostname"})
#: PyMySQL arguments a URL cannot give (they take objects, or jobd sets them).
_NOT_FROM_A_URL = frozenset({"self", "conv", "cursorclass", "auth_plugin_map", "ssl", "autocommit", "defer_connect"})


def mysql_unknown_options(query: Query) -> list[str]:
    """Options of a MySQL URL's query that neither jobd nor PyMySQL takes, sorted.

    SQLAlchemy hands every option it does not know to ``pymysql.connect``,
    which would fail on an unknown one with a ``TypeError`` at the first
    connection; PyMySQL's own signature says which it takes.
    """
    names = set(query) - set(MYSQL_TIMEOUTS)
    if not names:
        return []
    import inspect

    from pymysql.connections import Connection  # only for a URL with options of its own

    accepted = set(inspect.signature(Connection.__init__).parameters) - _NOT_FROM_A_URL
    return sorted(names - accepted - SQLALCHEMY_SSL_OPTIONS)


def mysql_tls_files(query: Query) -> None:
    """The files a MySQL URL's TLS options name exist: a missing one is a ``ValueError`` naming it, where
    PyMySQL's TLS set-up would fail every connection with a bare ``FileNotFoundError``.

    Checked where the store is opened, not with the config: `jobd check` passes on a machine that
    cannot reach the store (a CI job, a laptop), which need not hold the store's certificates either.
    """
    for name in ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath"):
        given = query.get(name)
        if isinstance(given, str) and not os.path.exists(given):
            raise ValueError(f"{name}={given!r}: no such file")


def check_store_options(url: str) -> None:
    """Raise ``ValueError`` naming the first option of ``url``'s query that cannot be used."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True)
    query = {name: given[0] if len(given) == 1 else tuple(given) for name, given in values.items()}
    if url.partition("://")[0].lower() == "sqlite":
        if "uri" in query:
            raise ValueError("uri=true is not taken: give the database file's path (sqlite:///PATH), not a SQLite file: URI")
        unknown = sorted(set(query) - SQLITE_URL_OPTIONS)
        if unknown:
            raise ValueError(f"{unknown[0]} is not an option of a SQLite store URL (jobd's are timeout and synchronous)")
        sqlite_busy_timeout(query)
        sqlite_synchronous(query)
        return
    unknown = mysql_unknown_options(query)
    if unknown:
        raise ValueError(f"{unknown[0]} is not an option of a MySQL store URL (neither jobd's nor PyMySQL's connect())")
    mysql_timeouts(query)
