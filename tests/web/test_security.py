"""The access rules of `jobd web` as pure functions: tokens, binds, hosts, cross-site requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.config import parse_config
from jobd.errors import BadInput, ConfigError
from jobd.web.security import Access, Tokens, access_of, check_bind, cross_site_reason, host_header_allowed, parse_bind, tokens_from

READ, ADMIN = "r" * 20, "a" * 20
BOTH = Tokens(read=READ, admin=ADMIN)


def test_each_token_gives_its_own_access_and_nothing_else_does() -> None:
    assert access_of(ADMIN, BOTH) is Access.ADMIN
    assert access_of(READ, BOTH) is Access.READ
    assert access_of(None, BOTH) is Access.NONE
    assert access_of("", BOTH) is Access.NONE
    assert access_of(READ + "x", BOTH) is Access.NONE
    assert access_of(READ, Tokens(admin=ADMIN)) is Access.NONE
    assert access_of(None, Tokens()) is Access.ADMIN  # no token configured: loopback only, like the CLI


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_binds_need_no_token(host: str) -> None:
    check_bind(host, Tokens())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "jobs-1.example.com"])
def test_other_binds_are_refused_without_tokens(host: str) -> None:
    with pytest.raises(BadInput, match="refusing to listen"):
        check_bind(host, Tokens())
    check_bind(host, Tokens(read=READ))


def test_bind_addresses_are_parsed_or_refused() -> None:
    assert parse_bind("127.0.0.1:8686") == ("127.0.0.1", 8686)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad in ("8686", "host:", "host:0", "host:70000", ":80"):
        with pytest.raises(BadInput):
            parse_bind(bad)


def test_without_tokens_only_loopback_host_names_are_served() -> None:
    assert host_header_allowed("127.0.0.1:8686", Tokens())
    assert host_header_allowed("localhost:8686", Tokens())
    assert host_header_allowed("[::1]:8686", Tokens())
    assert not host_header_allowed("evil.example:8686", Tokens())
    assert not host_header_allowed(None, Tokens())
    assert host_header_allowed("jobs-1:8686", BOTH)


def test_unsafe_requests_must_be_same_origin_json() -> None:
    same = {"host": "jobs-1:8686", "content-type": "application/json", "x-requested-by": "jobd"}
    assert cross_site_reason(same, bearer=False) is None
    assert cross_site_reason({**same, "origin": "http://jobs-1:8686", "sec-fetch-site": "same-origin"}, bearer=False) is None
    assert cross_site_reason({**same, "content-type": "application/x-www-form-urlencoded"}, bearer=False)
    assert cross_site_reason({**same, "content-type": "text/plain"}, bearer=True)
    assert cross_site_reason({**same, "origin": "http://evil.example"}, bearer=True)
    assert cross_site_reason({**same, "origin": "null"}, bearer=True)
    assert cross_site_reason({**same, "sec-fetch-site": "cross-site"}, bearer=False)
    assert cross_site_reason({**same, "sec-fetch-site": "same-site"}, bearer=False)
    without_header = {key: value for key, value in same.items() if key != "x-requested-by"}
    assert cross_site_reason(without_header, bearer=False)
    assert cross_site_reason(without_header, bearer=True) is None  # a bearer token is never sent by a browser on its own


def test_tokens_come_from_the_environment_before_the_config(tmp_path: Path) -> None:
    config = parse_config(f'[web]\nread_token = "{READ}"\nadmin_token = "{ADMIN}"\n', tmp_path / "jobd.toml")
    assert tokens_from(config, {}) == BOTH
    assert tokens_from(config, {"JOBD_WEB_ADMIN_TOKEN": "b" * 20}) == Tokens(read=READ, admin="b" * 20)
    with pytest.raises(BadInput, match="at least 16"):
        tokens_from(config, {"JOBD_WEB_READ_TOKEN": "short"})
    with pytest.raises(BadInput, match="must differ"):
        tokens_from(config, {"JOBD_WEB_READ_TOKEN": ADMIN})


def test_the_web_table_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="web.read_token"):
        parse_config('[web]\nread_token = "short"\n', tmp_path / "jobd.toml")
    with pytest.raises(ConfigError, match="web.bind"):
        parse_config('[web]\nbind = "8686"\n', tmp_path / "jobd.toml")
    with pytest.raises(ConfigError, match="web.tokens"):
        parse_config('[web]\ntokens = "x"\n', tmp_path / "jobd.toml")
    assert parse_config("", tmp_path / "jobd.toml").web.bind == "127.0.0.1:8686"
