"""The HTTP JSON API under ``/api/v1/`` (the OpenAPI document: ``openapi.py``).

Each handler checks access first (``Authorizer``), then its input, then
calls ``WebSources`` in a thread; anything refused changes nothing. Every
action is logged with who did it: the kind of token and the remote address.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .. import defaults
from ..errors import JobdError
from ..store.errors import raised_as_unavailable
from .feed import LiveFeed, sse_frame
from .migrations_view import migrations_report
from .operations import DeadFilter, Operations, parse_moment
from .responses import ApiError, read_json
from .security import COOKIE_NAME, Access, Tokens, access_of, cross_site_reason
from .sources import WebSources

log = logging.getLogger("jobd.web")

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JOB_REFRESH_SECONDS = 0.5
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}



async def off_loop(function: Any, *args: Any) -> Any:
    """``function(*args)`` on a worker thread; a store that fails is a ``StoreUnavailable`` (503), not a driver error."""
    return await run_in_threadpool(_store_errors_translated, function, *args)


def _store_errors_translated(function: Any, *args: Any) -> Any:
    with raised_as_unavailable():
        return function(*args)


class Intent(BaseModel):
    """``POST /api/v1/jobs``: what ``jobd trigger`` takes, as JSON."""

    model_config = ConfigDict(extra="forbid")

    daemon: str = Field(min_length=1, max_length=defaults.MAX_NAME_LENGTH)
    task: str = Field(min_length=1, max_length=defaults.MAX_NAME_LENGTH)
    args: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=defaults.PRIORITY_RANGE[0], le=defaults.PRIORITY_RANGE[1])  # as jobd.submit's
    delay: float | None = Field(default=None, ge=0, description="run no earlier than this many seconds from now")
    run_at: float | None = Field(default=None, description="epoch seconds")
    unique_key: str | None = Field(default=None, max_length=defaults.MAX_NAME_LENGTH)
    max_attempts: int | None = Field(default=None, ge=1, le=defaults.MOST_ATTEMPTS)


class DeadJobsFilter(BaseModel):
    """``POST /api/v1/dead-jobs/{retry,delete}``: which dead jobs; ``all`` must be said when no filter is given."""

    model_config = ConfigDict(extra="forbid")

    daemon: str | None = Field(default=None, min_length=1, max_length=defaults.MAX_NAME_LENGTH)
    task: str | None = Field(default=None, min_length=1, max_length=defaults.MAX_NAME_LENGTH)
    created_after: float | str | None = None
    created_before: float | str | None = None
    all: StrictBool = False


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: StrictInt = Field(ge=0, le=512)


def _validated(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}") from None


def _no_parameters(body: Any, action: str) -> None:
    if not isinstance(body, dict) or body:
        raise ApiError(400, f"{action} takes no parameters: send {{}} or an empty body")


def who(access: Access, request: Request) -> str:
    client = request.client
    address = f"{client.host}:{client.port}" if client else "unknown address"
    kind = {Access.ADMIN: "admin token", Access.READ: "read token"}.get(access, "no token")
    return f"{kind} from {address}"


class Api:
    def __init__(self, sources: WebSources, feed: LiveFeed, tokens: Tokens) -> None:
        self.sources = sources
        self.feed = feed
        self.tokens = tokens
        self.operations = Operations(sources.config, lambda: sources.store)

    # -- access -----------------------------------------------------------

    def authorise(self, request: Request, need: Access) -> Access:
        """The caller's access, or ApiError 401 (no valid token) / 403 (not enough, or cross-site)."""
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        presented = bearer or request.cookies.get(COOKIE_NAME)
        access = access_of(presented, self.tokens)
        if access is Access.NONE:
            missing = "a valid token is needed" if presented else "a token is needed"
            raise ApiError(401, f"{missing}: send Authorization: Bearer <token>", {"www-authenticate": "Bearer"})
        if request.method in UNSAFE:
            forged = cross_site_reason(request.headers, bearer=bearer is not None)
            if forged is not None:
                log.warning("refused %s %s from %s: %s", request.method, request.url.path, who(access, request), forged)
                raise ApiError(403, forged)
        if access < need:
            raise ApiError(403, "this needs the admin token (the read token can only look)")
        return access

    # -- reads ------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return JSONResponse(await off_loop(self.sources.status))

    async def view(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return JSONResponse(await self.feed.current())

    async def live(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return StreamingResponse(self.feed.stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def schedules(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return JSONResponse({"schedules": await off_loop(self.sources.schedules)})

    async def jobs(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        query = request.query_params
        limit = _int(query.get("limit"), "limit", 50)
        if not 1 <= limit <= defaults.WEB_JOBS_PAGE_MAX:
            raise ApiError(400, f"limit must be 1-{defaults.WEB_JOBS_PAGE_MAX}")
        before = _int(query.get("before"), "before", None)
        states = [value for item in query.getlist("state") for value in item.split(",") if value]
        after = parse_moment(query.get("created_after"), "created_after")
        until = parse_moment(query.get("created_before"), "created_before")
        rows, next_before = await off_loop(
            lambda: self.sources.jobs(states=states, daemon=query.get("daemon") or None, task=query.get("task") or None,
                                      limit=limit, before=before, created_after=after, created_before=until)
        )
        following = None
        if next_before is not None:
            params = [(key, value) for key, value in query.multi_items() if key != "before"]
            following = "/api/v1/jobs?" + urlencode([*params, ("before", str(next_before))])
        return JSONResponse({"jobs": rows, "next_before": next_before, "next": following})

    async def job(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return JSONResponse(await off_loop(self.sources.job, _job_id(request)))

    async def job_live(self, request: Request) -> Response:
        """One job as it changes (state, progress, new log lines), for the job page."""
        self.authorise(request, Access.READ)
        job_id = _job_id(request)
        first = await off_loop(self.sources.job, job_id)  # 404 before the stream starts
        return StreamingResponse(self._job_stream(job_id, first), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _job_stream(self, job_id: int, first: dict[str, Any]) -> Any:
        await self.feed.subscribe()  # the running job's live progress comes from the shared view
        try:
            yield b"retry: 2000\n\n"
            last = ""
            job = first
            while True:
                running = next((row for row in (self.feed.latest or {}).get("running") or [] if row.get("job_id") == job_id), None)
                if running is not None:
                    job = {**job, "live": running}
                text = json.dumps(job, sort_keys=True, default=str)
                if text != last:
                    last = text
                    yield sse_frame("job", job)
                await asyncio.sleep(JOB_REFRESH_SECONDS if running is None else self.feed.interval)
                try:
                    job = await off_loop(self.sources.job, job_id)
                except JobdError as error:  # pruned, or the store went away: say so and end the stream
                    yield sse_frame("gone", {"job_id": job_id, "message": str(error)})
                    return
        finally:
            self.feed.unsubscribe()

    # -- actions ----------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        access = self.authorise(request, Access.ADMIN)
        body = await read_json(request)
        try:
            intent = Intent.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise ApiError(400, f"{where}: {first['msg']}") from None
        job_id = await off_loop(self.sources.submit, intent.model_dump())
        log.info("submitted job %s (%s on %s) by %s", job_id, intent.task, intent.daemon, who(access, request))
        return JSONResponse({"job_id": job_id, "url": f"/api/v1/jobs/{job_id}"}, status_code=201)

    async def retry(self, request: Request) -> Response:
        return await self._action(request, "retry")

    async def cancel(self, request: Request) -> Response:
        return await self._action(request, "cancel")

    async def _action(self, request: Request, action: str) -> Response:
        access = self.authorise(request, Access.ADMIN)
        job_id = _job_id(request)
        body = await read_json(request, empty={})
        if not isinstance(body, dict) or body:
            raise ApiError(400, f"{action} takes no parameters: send {{}} or an empty body")
        job = await off_loop(getattr(self.sources, action), job_id)
        log.info("%s of job %s by %s: now %s", action, job_id, who(access, request), job["state"])
        return JSONResponse({"job_id": job_id, "state": job["state"]})

    async def delete(self, request: Request) -> Response:
        access = self.authorise(request, Access.ADMIN)
        job_id = _job_id(request)
        _no_parameters(await read_json(request, empty={}), "delete")
        answer = await off_loop(self.operations.delete_job, job_id)
        log.info("delete of job %s (%s) by %s", job_id, answer["state"], who(access, request))
        return JSONResponse(answer)

    async def dead_jobs(self, request: Request) -> Response:
        """Retry or delete every dead job matching a filter, in bounded batches; answers how many."""
        access = self.authorise(request, Access.ADMIN)
        action = request.path_params["action"]
        if action not in ("retry", "delete"):
            raise ApiError(404, f"no dead-jobs action {action!r} (retry, delete)")
        body = _validated(DeadJobsFilter, await read_json(request))
        where = DeadFilter(body.daemon, body.task, parse_moment(body.created_after, "created_after"),
                           parse_moment(body.created_before, "created_before"))
        if where.empty and not body.all:
            raise ApiError(400, "no filter given: name a daemon, task or time window, or send \"all\": true for every dead job")
        answer = await off_loop(self.operations.dead_jobs, action, where)
        log.info("%s of %s dead jobs (%s) by %s%s", action, answer["count"], where.describe(), who(access, request),
                 "; more are left" if answer["more_left"] else "")
        return JSONResponse(answer)

    async def daemon(self, request: Request) -> Response:
        """Start, stop, restart (rolling) or scale a daemon through the master's control operations."""
        access = self.authorise(request, Access.ADMIN)
        name, action = request.path_params["daemon"], request.path_params["action"]
        if action not in ("start", "stop", "restart", "scale"):
            raise ApiError(404, f"no daemon action {action!r} (start, stop, restart, scale)")
        body = await read_json(request, empty={})
        workers = None
        if action == "scale":
            workers = _validated(Scale, body).workers
        else:
            _no_parameters(body, action)
        answer = await off_loop(self.operations.daemon, action, name, workers)
        log.info("%s of daemon %s%s by %s", action, name, f" to {workers} workers" if action == "scale" else "", who(access, request))
        return JSONResponse(answer)

    async def schedule(self, request: Request) -> Response:
        """Pause or resume a schedule entry, or run its task now."""
        access = self.authorise(request, Access.ADMIN)
        name, action = request.path_params["entry"], request.path_params["action"]
        if action not in ("pause", "resume", "run"):
            raise ApiError(404, f"no schedule action {action!r} (pause, resume, run)")
        _no_parameters(await read_json(request, empty={}), action)
        answer = await off_loop(self.operations.schedule, action, name)
        done = f"submitted job {answer['job_id']}" if action == "run" else ("done" if answer["changed"] else "no change")
        log.info("%s of schedule entry %s by %s: %s", action, name, who(access, request), done)
        return JSONResponse(answer, status_code=201 if action == "run" else 200)

    async def migrations(self, request: Request) -> Response:
        self.authorise(request, Access.READ)
        return JSONResponse(await off_loop(migrations_report, self.sources.config))

    # -- the browser's session --------------------------------------------

    async def login(self, request: Request) -> Response:
        """Trade a token for an HttpOnly, SameSite=Strict cookie (what the page's event stream sends)."""
        reason = cross_site_reason(request.headers, bearer=False)
        if reason is not None:
            raise ApiError(403, reason)
        body = await read_json(request)
        token = body.get("token") if isinstance(body, dict) else None
        access = access_of(token if isinstance(token, str) else None, self.tokens)
        if access is Access.NONE:
            log.warning("failed sign-in from %s", who(access, request))
            raise ApiError(401, "that token is not valid", {"www-authenticate": "Bearer"})
        response = JSONResponse({"access": access.name.lower()})
        if self.tokens.configured:
            response.set_cookie(COOKIE_NAME, str(token), httponly=True, samesite="strict", path="/")
        return response

    async def whoami(self, request: Request) -> Response:
        access = self.authorise(request, Access.READ)
        return JSONResponse({"access": access.name.lower(), "tokens": self.tokens.configured})

    async def logout(self, request: Request) -> Response:
        response = JSONResponse({"access": "none"})
        response.delete_cookie(COOKIE_NAME, path="/")
        return response


def _int(value: str | None, name: str, default: int | None) -> Any:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {value!r}") from None


def _job_id(request: Request) -> int:
    raw = request.path_params["job_id"]
    try:
        job_id = int(raw)
    except (TypeError, ValueError):
        raise ApiError(404, f"no job with id {raw!r}") from None
    if not 0 < job_id <= defaults.MAX_ROW_ID:
        raise ApiError(404, f"no job with id {raw!r}")
    return job_id
