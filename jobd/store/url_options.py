"""What a store URL's query may say, read without SQLAlchemy: SQLite's busy timeout and sync level, MySQL's timeouts.

``engine.py`` reads these values from the URL SQLAlchemy parsed, and the
config reads the same ones from the text of the file (``check_store_options``),
so a bad option is refused by `jobd check` with the file's line (exit 2)
instead of by the first command that opens the store (exit 3). Unknown
options are left to the driver: PyMySQL takes several of its own.
"""

from __future__ import annotations

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


def check_store_options(url: str) -> None:
    """Raise ``ValueError`` naming the first option of ``url``'s query that jobd reads and cannot use."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True)
    query = {name: given[0] if len(given) == 1 else tuple(given) for name, given in values.items()}
    if url.partition("://")[0].lower() == "sqlite":
        sqlite_busy_timeout(query)
        sqlite_synchronous(query)
    else:
        mysql_timeouts(query)
