"""One error shape everywhere: {"error": {"code", "message"}}, never a stack trace.

Status codes: 400 a bad query or parameter (or a Host the server does not serve), 401 no or a wrong key,
403 a write from another site or, without a key, from another machine, 404 an unknown id or route,
413 a body over the size limit, 415 a body of another type than JSON or multipart, 422 malformed JSON,
an unreadable upload or an unusable doc_id, 429 over the rate limit, 501 a feature not built yet,
503 the index is unavailable, damaged (the message names the file and the command that repairs it) or
locked, 500 anything unexpected (logged).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.documents import LoadError
from index.generations import IndexDamaged, IndexFolderError, IndexLocked
from search.engine import NotFound, QueryError

log = logging.getLogger("semsearch.api")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: bad_request, not_found, too_large …")
    message: str = Field(description="for people: what is wrong and what to do")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [{"error": {"code": "bad_request", "message": "the query is empty; type some words"}}]
        }
    }


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these error statuses, all with the one error shape."""
    what = {
        400: "bad query or parameter",
        404: "unknown id",
        413: "body over the size limit",
        415: "unsupported body type",
        422: "malformed JSON body or unreadable upload",
        501: "not available yet",
        503: "index unavailable, damaged or locked",
    }
    return {s: {"model": ErrorResponse, "description": what.get(s, "error")} for s in statuses}


class ApiError(Exception):
    """An error a route raises on purpose, with its status and code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # A message may quote the client's input, which can hold lone surrogates (JSON "\\ud800"): they
    # cannot be encoded as UTF-8, and the error response itself would fail with a 500.
    message = message.encode("utf-8", "replace").decode("utf-8")
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(x) for x in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = _where(tuple(e.get("loc", ())))
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """Malformed JSON is 422; a body or parameter of the wrong type or range is a bad request, 400."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        detail = (first.get("ctx") or {}).get("error", "")
        return error(422, "malformed_json", f"the body is not valid JSON{f' ({detail})' if detail else ''}")
    return error(400, "bad_request", _validation_message(exc))


HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
              415: "unsupported_media_type", 429: "rate_limited"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(QueryError)
    async def _query(_: Request, exc: QueryError) -> JSONResponse:
        return error(400, "bad_request", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error(404, "not_found", str(exc))

    @app.exception_handler(LoadError)
    async def _load(_: Request, exc: LoadError) -> JSONResponse:
        return error(422, "unreadable_document", str(exc))

    @app.exception_handler(IndexLocked)
    async def _locked(_: Request, exc: IndexLocked) -> JSONResponse:
        return error(503, "index_locked", str(exc), {"Retry-After": "5"})

    @app.exception_handler(IndexDamaged)
    async def _damaged(_: Request, exc: IndexDamaged) -> JSONResponse:
        return error(503, "index_damaged", str(exc))

    @app.exception_handler(IndexFolderError)
    async def _index(_: Request, exc: IndexFolderError) -> JSONResponse:
        return error(503, "index_unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc)

    # Starlette's class, not FastAPI's subclass: unknown routes and wrong methods are raised by Starlette.
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; the API is described at /docs"
        return error(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "unexpected server error; the server log has the details")


def _size(n: int) -> str:
    """10 MB, 64 KB, 1.5 MB, 900 bytes: the units SEMSEARCH_MAX_BODY takes."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{round(n / size, 2):g} {unit}"
    return f"{n} bytes"


def _too_large_message(max_bytes: int) -> str:
    return (f"the request body is over the limit of {_size(max_bytes)} (the server's SEMSEARCH_MAX_BODY); "
            "send fewer or smaller documents")


class _TooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, because FastAPI
    turns any other error while reading a body into a generic 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_message(max_bytes), {"Connection": "close"})


class BodySizeLimit:
    """ASGI middleware: answer 413 for a request body over `max_bytes`.

    A declared Content-Length over the limit is refused before any byte is read; a chunked body is
    counted as it streams, so an upload can never make the server buffer more than the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self) -> JSONResponse:
        return error(413, "too_large", _too_large_message(self.max_bytes), {"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refusal()(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:  # too late to change the status; the client sees a cut response
                raise
            await self._refusal()(scope, receive, send)


def error_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe FastAPI's automatic 422 responses with the error shape this API really sends."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path in schema.get("paths", {}).values():
        for op in path.values():
            resp = op.get("responses", {}).get("422") if isinstance(op, dict) else None
            if resp is not None:
                resp["description"] = "malformed JSON body or unreadable upload"
                resp["content"] = {"application/json": {"schema": ref}}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if "ErrorResponse" not in components:
        template = "#/components/schemas/{model}"
        components["ErrorResponse"] = ErrorResponse.model_json_schema(ref_template=template)
        for name, sub in components["ErrorResponse"].pop("$defs", {}).items():
            components.setdefault(name, sub)
    json.dumps(schema)  # fail here, not in the client, if something unserialisable slipped in
    return schema
