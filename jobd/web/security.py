"""Who may do what over HTTP: tokens, loopback binds, cross-site requests (pure rules).

Two tokens: a read token lets a client look, the admin token also lets it
act (retry, cancel, submit). With no token configured, ``jobd web`` only
listens on loopback and then everyone on this host may read and act — as
they could with the CLI. Tokens are compared in constant time.

A browser page authenticates with a cookie (EventSource cannot send a
header), so every request that changes something must also prove it is not
a cross-site forgery: a JSON body (a form cannot send one without a CORS
preflight, which this server never approves), no foreign ``Origin`` or
``Sec-Fetch-Site``, and — unless it carries ``Authorization: Bearer`` — the
``X-Requested-By`` header.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import defaults
from ..config import JobdConfig
from ..errors import BadInput

COOKIE_NAME = "jobd_token"
CSRF_HEADER = "x-requested-by"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class Access(enum.IntEnum):
    """What a request may do; each level includes the ones below it."""

    NONE = 0
    READ = 1
    ADMIN = 2


@dataclass(frozen=True)
class Tokens:
    read: str | None = None
    admin: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.read or self.admin)


def tokens_from(config: JobdConfig, environ: Mapping[str, str] = os.environ) -> Tokens:
    """The tokens in force: the environment's win over the config file's."""
    read = environ.get(defaults.WEB_READ_TOKEN_ENV_VAR) or config.web.read_token
    admin = environ.get(defaults.WEB_ADMIN_TOKEN_ENV_VAR) or config.web.admin_token
    for name, value in (("read", read), ("admin", admin)):
        if value is not None and len(value) < defaults.WEB_MIN_TOKEN_LENGTH:
            raise BadInput(f"the web {name} token must be at least {defaults.WEB_MIN_TOKEN_LENGTH} characters long")
    if read and admin and hmac.compare_digest(read.encode(), admin.encode()):
        raise BadInput("the web read token and admin token must differ")
    return Tokens(read=read or None, admin=admin or None)


def access_of(presented: str | None, tokens: Tokens) -> Access:
    """The access a presented token gives (every token compared, in constant time)."""
    if not tokens.configured:
        return Access.ADMIN
    if not presented:
        return Access.NONE
    given = presented.encode()
    admin = bool(tokens.admin) and hmac.compare_digest(given, (tokens.admin or "").encode())
    read = bool(tokens.read) and hmac.compare_digest(given, (tokens.read or "").encode())
    if admin:
        return Access.ADMIN
    return Access.READ if read else Access.NONE


def parse_bind(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8686`` for IPv6) → host, port; BadInput if malformed."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--bind {address!r} is not host:port such as 127.0.0.1:8686")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Tokens) -> None:
    """Refuse to listen beyond this host without tokens: anyone who can connect could act."""
    if not is_loopback(host) and not tokens.configured:
        raise BadInput(
            f"refusing to listen on {host} without tokens: anyone who can reach it could read and retry jobs. "
            f"Set [web] read_token/admin_token in the config (or ${defaults.WEB_READ_TOKEN_ENV_VAR} and "
            f"${defaults.WEB_ADMIN_TOKEN_ENV_VAR}), or bind to 127.0.0.1"
        )


def host_header_allowed(host_header: str | None, tokens: Tokens) -> bool:
    """Without tokens only loopback names may be used: a DNS-rebound page is refused."""
    if tokens.configured:
        return True
    if not host_header:
        return False
    host = urlsplit(f"//{host_header}").hostname or ""
    return is_loopback(host)


def cross_site_reason(headers: Mapping[str, str], *, bearer: bool) -> str | None:
    """Why an unsafe request looks cross-site or form-made, or None if it may go on.

    ``headers`` has lower-case names (as Starlette gives them).
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return "a request that changes something must send Content-Type: application/json"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != headers.get("host", ""):
        return f"cross-site request refused (Origin {origin} is not this server)"
    if not bearer and headers.get(CSRF_HEADER) is None:
        return f"a request authenticated by cookie must send the {CSRF_HEADER} header"
    return None
