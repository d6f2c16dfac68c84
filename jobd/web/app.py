"""The Starlette application: routes, the guard, JSON errors, the page's files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..config import JobdConfig
from ..errors import JobdError
from .feed import LiveFeed
from .guard import Guard
from .openapi import openapi_document
from .responses import ApiError, error_response, status_for
from .routes import Api
from .security import Tokens
from .sources import WebSources

log = logging.getLogger("jobd.web")
STATIC = Path(__file__).parent / "static"


def create_app(config: JobdConfig, tokens: Tokens, *, sources: WebSources | None = None) -> ASGIApp:
    sources = sources or WebSources(config)
    feed = LiveFeed(sources.live_view)
    api = Api(sources, feed, tokens)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error.status, error.message, error.headers)

    async def jobd_error(request: Request, error: Exception) -> Response:
        status = status_for(error)  # type: ignore[arg-type]
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, error)
        return error_response(status, str(error))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return error_response(error.status_code, str(error.detail), dict(error.headers or {}))

    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error: {type(error).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sources.close()

    v1 = "/api/v1"
    routes = [
        Route("/", page),
        Route(f"{v1}/openapi.json", openapi),
        Route(f"{v1}/status", api.status),
        Route(f"{v1}/view", api.view),
        Route(f"{v1}/live", api.live),
        Route(f"{v1}/schedules", api.schedules),
        Route(f"{v1}/jobs", api.jobs, methods=["GET"]),
        Route(f"{v1}/jobs", api.submit, methods=["POST"]),
        Route(f"{v1}/jobs/{{job_id}}", api.job),
        Route(f"{v1}/jobs/{{job_id}}/live", api.job_live),
        Route(f"{v1}/jobs/{{job_id}}/retry", api.retry, methods=["POST"]),
        Route(f"{v1}/jobs/{{job_id}}/cancel", api.cancel, methods=["POST"]),
        Route(f"{v1}/jobs/{{job_id}}/delete", api.delete, methods=["POST"]),
        Route(f"{v1}/dead-jobs/{{action}}", api.dead_jobs, methods=["POST"]),
        Route(f"{v1}/daemons/{{daemon}}/{{action}}", api.daemon, methods=["POST"]),
        Route(f"{v1}/schedules/{{entry}}/{{action}}", api.schedule, methods=["POST"]),
        Route(f"{v1}/migrations", api.migrations),
        Route(f"{v1}/session", api.login, methods=["POST"]),
        Route(f"{v1}/session", api.whoami, methods=["GET"]),
        Route(f"{v1}/session", api.logout, methods=["DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: api_error, JobdError: jobd_error, HTTPException: http_error, Exception: unexpected},
        lifespan=lifespan,
    )
    app.state.feed = feed
    return Guard(app, tokens)
