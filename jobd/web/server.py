"""``jobd web``: check the bind against the tokens, then serve the app with uvicorn.

uvicorn is the ASGI server: a well-kept, small HTTP/1.1 server on asyncio
that streams Server-Sent Events without buffering. One process, one event
loop: store and socket calls run in a thread pool, and the live view is read
once for every open page (``feed``), so open browsers cost the master one
reader, not one each.
"""

from __future__ import annotations

import logging
import os

from ..config import JobdConfig
from .app import create_app
from .security import check_bind, parse_bind, tokens_from

log = logging.getLogger("jobd.web")


def serve(config: JobdConfig, bind: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. BadInput (exit 2) for a bind the tokens do not allow."""
    import uvicorn

    tokens = tokens_from(config)
    host, port = parse_bind(bind or config.web.bind)
    check_bind(host, tokens)
    logging.basicConfig(
        level=getattr(logging, config.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    shown = f"[{host}]" if ":" in host else host
    access = "tokens required" if tokens.configured else "no tokens: loopback only"
    log.info("jobd web on http://%s:%d/ (%s; pid %d)", shown, port, access, os.getpid())
    uvicorn.run(
        create_app(config, tokens), host=host, port=port, log_level="warning", access_log=False,
        proxy_headers=False, server_header=False, timeout_graceful_shutdown=2, lifespan="on",
    )
