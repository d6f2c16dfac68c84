"""Every answer of the API is JSON, errors included: ``{"status", "error", "message"}`` with a 4xx/5xx code."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import BadInput, InvalidTransition, JobdError, MasterNotRunning, StoreUnavailable, UnknownJob


class ApiError(Exception):
    """A request refused with ``status`` and a message for the person who sent it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"status": status, "error": HTTPStatus(status).phrase, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(error: JobdError) -> int:
    """The HTTP status of a jobd error: the CLI's exit codes, in HTTP's words."""
    if isinstance(error, UnknownJob):
        return 404
    if isinstance(error, BadInput):
        return 400
    if isinstance(error, InvalidTransition):
        return 409
    if isinstance(error, (StoreUnavailable, MasterNotRunning)):
        return 503
    return 500


async def read_json(request: Request, *, empty: Any = None) -> Any:
    """The request's JSON body (the guard already capped its size); ApiError 400 if it is not JSON."""
    body = await request.body()
    if not body.strip():
        if empty is not None:
            return empty
        raise ApiError(400, "the request needs a JSON body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None
