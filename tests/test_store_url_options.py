"""A store URL's options: jobd's own are read as jobd documents them, and one that cannot be used
is refused where the config is read (`jobd check`, `jobd init`, `jobd start`: exit 2, file and key),
before anything opens the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jobd.store.engine import driver_target, make_engine
from support import Deployment

MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("sqlite:///{store}?synchronous=off", "synchronous='off' is not one of normal, full"),
        ("sqlite:///{store}?synchronous=full&synchronous=normal", "synchronous=('full', 'normal') is not one of normal, full"),
        ("sqlite:///{store}?timeout=soon", "timeout='soon' is not a number of seconds"),
        ("sqlite:///{store}?timout=3", "timout is not an option of a SQLite store URL (jobd's are timeout and synchronous)"),
        # A URI filename made a folder named "file:" beside the config, and each master's probe a file of that name.
        ("sqlite:///file:{store}?uri=true&mode=rwc",
         "uri=true is not taken: give the database file's path (sqlite:///PATH), not a SQLite file: URI"),
        (f"{MARIADB}?read_timeout=soon", "read_timeout='soon' is not a number of seconds"),
        (f"{MARIADB}?charset=utf8mb4&bogus=1", "bogus is not an option of a MySQL store URL (neither jobd's nor PyMySQL's connect())"),
        (f"{MARIADB}?autocommit=1", "autocommit is not an option of a MySQL store URL"),
    ],
)
def test_an_option_that_cannot_be_used_is_refused_where_the_config_is_read_and_nothing_is_made(
    deployment_factory: Callable[[str], Deployment], tmp_path: Path, url: str, complaint: str,
) -> None:
    store = tmp_path / "jobd.db"
    deployment = deployment_factory(url.format(store=store))
    deployment.write_config({"main": {"workers": 1}})
    for command in ("check", "init", "start"):
        completed = deployment.jobd(command)
        assert completed.returncode == 2, (command, completed.stderr)
        assert f"{deployment.config_path}: store: {complaint}" in completed.stderr, (command, completed.stderr)
    assert not store.exists()
    assert not (deployment.root / "jobd.pid").exists()


def test_mysql_timeouts_in_the_url_are_seconds_and_may_have_fractions(mariadb_url: str) -> None:
    url = f"{mariadb_url}?read_timeout=2.5&connect_timeout=3&charset=utf8mb4"
    assert {name: driver_target(url).kwargs[name] for name in ("connect_timeout", "read_timeout", "write_timeout")} == {
        "connect_timeout": 3.0, "read_timeout": 2.5, "write_timeout": 10.0,
    }
    engine = make_engine(url)  # SQLAlchemy alone would read them as integers, and fail on 2.5
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            assert connection.connection.dbapi_connection._read_timeout == 2.5  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_tls_file_the_url_names_that_is_missing_is_named_where_the_store_is_opened(
    deployment_factory: Callable[[str], Deployment],
) -> None:
    """Not by the config's check, which passes where the store is out of reach (and its certificates may be)."""
    deployment = deployment_factory(f"{MARIADB}?ssl_ca=/nonexistent/ca.pem")
    deployment.write_config({"main": {"workers": 1}})
    complaint = "store URL: ssl_ca='/nonexistent/ca.pem': no such file"
    checked = deployment.jobd("check")
    assert checked.returncode == 0, checked.stderr
    assert f"task catalogue not published: {complaint}" in checked.stdout
    for command in (("init",), ("trigger", "main", "t.noop"), ("jobs",)):
        completed = deployment.jobd(*command)
        assert completed.returncode == 3, (command, completed.stderr)
        assert f"error: {complaint}" in completed.stderr and "Traceback" not in completed.stderr, (command, completed.stderr)
