"""The fault proxy itself: it forwards, cuts, refuses and stalls as the fault tests assume."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.mysql


def _connect(proxy: TcpProxy, timeout: float = 2) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user="root", connect_timeout=timeout, read_timeout=timeout)


def _select_one(connection: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])


def test_the_proxy_forwards_cuts_refuses_stalls_and_heals(mariadb: dict[str, Any]) -> None:
    with TcpProxy(mariadb["host"], mariadb["port"]) as proxy:
        connection = _connect(proxy)
        assert _select_one(connection) == 1

        proxy.cut()
        with pytest.raises(pymysql.err.OperationalError):
            _select_one(connection)

        proxy.refuse()
        with pytest.raises(pymysql.err.OperationalError):
            _connect(proxy)

        proxy.heal()
        connection = _connect(proxy)
        proxy.stall()
        with pytest.raises(pymysql.err.OperationalError):  # read timeout: nothing came back
            _select_one(connection)

        proxy.heal()
        fresh = _connect(proxy)
        assert _select_one(fresh) == 1
