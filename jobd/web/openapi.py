"""The API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Written out rather than generated: the routes are few, and the document is
a contract other teams code against, so it changes only on purpose.
"""

from __future__ import annotations

from typing import Any

from .. import __version__

_ERROR = {"description": "refused; nothing changed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = {"content": {"application/json": {"schema": {"type": "object"}}}}
_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_SSE = {"description": "Server-Sent Events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _read(summary: str, ok: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [{"token": []}],
            "responses": {"200": ok or {"description": "ok", **_JSON}, "401": _ERROR, "404": _ERROR}, **extra}


def _action(summary: str, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary + " Needs the admin token; a request authenticated by cookie also sends X-Requested-By.",
        "security": [{"token": []}],
        "responses": {"200": {"description": "done", **_JSON}, "400": _ERROR, "401": _ERROR, "403": _ERROR,
                      "404": _ERROR, "409": _ERROR, "413": _ERROR},
        **extra,
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobd web API", "version": "1", "x-jobd-version": __version__,
                 "description": "Status, jobs and schedules of a jobd deployment; submit intents; act on jobs, daemons and schedule entries."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "the read token (look) or the admin token (look and act)"}},
            "schemas": {
                "Error": {"type": "object", "required": ["status", "error", "message"], "properties": {
                    "status": {"type": "integer"}, "error": {"type": "string"}, "message": {"type": "string"}}},
                "DeadFilter": {"type": "object", "additionalProperties": False, "properties": {
                    "daemon": {"type": "string"}, "task": {"type": "string"},
                    "created_after": {"type": ["number", "string"]}, "created_before": {"type": ["number", "string"]},
                    "all": {"type": "boolean", "description": "needed when no other filter is given"}}},
                "Intent": {"type": "object", "required": ["daemon", "task"], "additionalProperties": False, "properties": {
                    "daemon": {"type": "string"}, "task": {"type": "string"}, "args": {"type": "object"},
                    "priority": {"type": "integer"}, "delay": {"type": "number", "minimum": 0},
                    "run_at": {"type": "number", "description": "epoch seconds"}, "unique_key": {"type": "string"},
                    "max_attempts": {"type": "integer", "minimum": 1}}},
            },
        },
        "paths": {
            "/api/v1/status": {"get": _read("The `jobd status --json` document (docs/status-json.md).")},
            "/api/v1/view": {"get": _read("The live dashboard view (internal shape, as `jobd top` draws it).")},
            "/api/v1/live": {"get": _read("The live view pushed as Server-Sent Events (`view` events).", _SSE)},
            "/api/v1/schedules": {"get": _read("Schedule entries: trigger, time zone, last fire and outcome, next ticks.")},
            "/api/v1/jobs": {
                "get": _read("Jobs, newest first. Page on with `before` (the `next_before` of the last page); no total is counted.",
                             parameters=[
                                 {"name": "state", "in": "query", "schema": {"type": "string"}, "description": "repeatable or comma-separated"},
                                 {"name": "daemon", "in": "query", "schema": {"type": "string"}},
                                 {"name": "task", "in": "query", "schema": {"type": "string"}},
                                 {"name": "created_after", "in": "query", "schema": {"type": "string"},
                                  "description": "epoch seconds or ISO 8601 (no zone: UTC); a primary-key range, not a scan"},
                                 {"name": "created_before", "in": "query", "schema": {"type": "string"}},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                                 {"name": "before", "in": "query", "schema": {"type": "integer"}}]),
                "post": _action("Submit an intent, validated like `jobd trigger` (201 with the job id).",
                                requestBody={"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Intent"}}}}),
            },
            "/api/v1/jobs/{job_id}": {"get": _read("One job: args, state, attempts, checkpoint, progress, result, error, traceback, log lines.",
                                                   parameters=[_ID])},
            "/api/v1/jobs/{job_id}/live": {"get": _read("One job pushed as Server-Sent Events (`job` events) while it changes.",
                                                        _SSE, parameters=[_ID])},
            "/api/v1/jobs/{job_id}/retry": {"post": _action("Queue a dead or cancelled job again.", parameters=[_ID])},
            "/api/v1/jobs/{job_id}/cancel": {"post": _action("Cancel a waiting job, or ask a running one to stop.", parameters=[_ID])},
            "/api/v1/jobs/{job_id}/delete": {"post": _action("Delete a finished job and its log lines (409 while it runs or waits).",
                                                             parameters=[_ID])},
            "/api/v1/dead-jobs/{action}": {"post": _action(
                "`retry` or `delete` every dead job matching the filter, in bounded batches; answers `count` and `more_left`.",
                parameters=[{"name": "action", "in": "path", "required": True, "schema": {"enum": ["retry", "delete"]}}],
                requestBody={"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeadFilter"}}}})},
            "/api/v1/daemons/{daemon}/{action}": {"post": _action(
                "Ask the master to `start`, `stop`, `restart` (rolling) or `scale` a daemon (body `{\"workers\": N}`); "
                "answers at once, the live view shows it getting there. 503 when no master runs.",
                parameters=[{"name": "daemon", "in": "path", "required": True, "schema": {"type": "string"}},
                            {"name": "action", "in": "path", "required": True, "schema": {"enum": ["start", "stop", "restart", "scale"]}}])},
            "/api/v1/schedules/{entry}/{action}": {"post": _action(
                "`pause` or `resume` a schedule entry, or `run` its task and args now as an intent (201 with the job id).",
                parameters=[{"name": "entry", "in": "path", "required": True, "schema": {"type": "string"}},
                            {"name": "action", "in": "path", "required": True, "schema": {"enum": ["pause", "resume", "run"]}}])},
            "/api/v1/migrations": {"get": _read("Tenant migrations: each tenant's step, pending steps, problems and last runs "
                                                "(`configured: false` without a [migrations] table).")},
            "/api/v1/session": {
                "post": {"summary": "Trade a token for the page's cookie (HttpOnly, SameSite=Strict).",
                         "responses": {"200": {"description": "signed in", **_JSON}, "401": _ERROR, "403": _ERROR}},
                "get": _read("What the caller's token allows."),
                "delete": {"summary": "Forget the page's cookie.", "responses": {"200": {"description": "signed out", **_JSON}}},
            },
        },
    }
