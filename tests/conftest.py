"""Fixtures: real MariaDB databases, real masters and workers, cleaned up by pid."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from jobd.store import Store, open_store
from jobd.store.driver_runner import DriverRunner
from jobd.store.driver_sql import for_master
from jobd.store.engine import driver_target, make_engine, shown_url
from support import Deployment, MemcachedServer, require

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


# -- MariaDB ------------------------------------------------------------------


def _mariadb_available() -> bool:
    try:
        pymysql.connect(**MARIADB, connect_timeout=3).close()
    except pymysql.MySQLError:
        return False
    return True


@pytest.fixture(scope="session")
def mariadb() -> dict[str, Any]:
    require(_mariadb_available(), "MariaDB is not reachable on 127.0.0.1:3306")
    return MARIADB


@pytest.fixture
def mariadb_url(mariadb: dict[str, Any]) -> Iterator[str]:
    """A fresh, empty database on the local MariaDB, dropped afterwards."""
    name = f"jobdt_{secrets.token_hex(4)}"
    connection = pymysql.connect(**mariadb)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@pytest.fixture(params=["sqlite", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobd.db'}"
    return str(request.getfixturevalue("mariadb_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    opened.initialise()
    yield opened
    opened.dispose()


def store_the_masters_way(url: str) -> Store:
    """A store whose tables a master writes run through the master's ``DriverRunner``, as in a master
    (the submit, operator actions and the schema still through SQLAlchemy)."""
    engine = make_engine(url)
    submit_engine = make_engine(url, autocommit=True) if engine.dialect.name == "mysql" else None
    runner = DriverRunner(for_master(driver_target(url)), shown_url(url))
    return Store(engine, submit_engine=submit_engine, runner=runner)


@pytest.fixture(params=["through SQLAlchemy", "through the driver"])
def store_both_ways(request: pytest.FixtureRequest, store_url: str) -> Iterator[Store]:
    """``store``, and the same store the master's way (``store_the_masters_way``)."""
    opened = open_store(store_url) if request.param == "through SQLAlchemy" else store_the_masters_way(store_url)
    opened.initialise()
    yield opened
    opened.dispose()


# -- memcached ----------------------------------------------------------------


@pytest.fixture(scope="session")
def memcached() -> Iterator[MemcachedServer]:
    """The suite's own memcached on a free loopback port (never a user's), killed by pid."""
    server = MemcachedServer().start()
    yield server
    server.stop()


# -- deployments: a config, task code and real master processes ---------------


@pytest.fixture
def deployment_factory() -> Iterator[Callable[[str], Deployment]]:
    created: list[Deployment] = []

    def make(store_url: str | None = None) -> Deployment:
        root = Path(tempfile.mkdtemp(prefix="jobd-", dir="/tmp"))  # short: Unix socket paths are capped
        url = store_url or f"sqlite:///{root / 'jobd.db'}"
        deployment = Deployment(root, url)
        created.append(deployment)
        return deployment

    yield make
    for deployment in created:
        deployment.kill_everything()
        shutil.rmtree(deployment.root, ignore_errors=True)


@pytest.fixture
def deployment(deployment_factory: Callable[[str | None], Deployment]) -> Deployment:
    return deployment_factory(None)
