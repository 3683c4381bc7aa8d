"""One error shape everywhere: {"error": {"code", "message"}}, never a stack trace.

Status codes: 400 a bad query or parameter (or a Host the server does not serve), 401 no or a wrong key,
403 a write from another site or, without a key, from another machine, 404 an unknown id or route,
413 a body over the size limit, 415 a body of another type than JSON or multipart, 422 malformed JSON,
an unreadable upload or document or an unusable doc_id, 429 over the rate limit, 502 the LLM server
failed, 503 the index is unavailable, damaged (the message names the file and the command that repairs
it) or locked, 500 anything unexpected (logged). The codes of the index's and the search's errors are in
`index.errors` (each class carries its own); the HTTP layer's own are `HTTP_ERRORS` below.
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
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index import settings
from index.errors import INTERNAL_MESSAGE, SemsearchError, classify

log = logging.getLogger("semsearch.api")

DEFAULT_MAX_BODY_BYTES: int = settings.default("SEMSEARCH_MAX_BODY")


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
        502: "the LLM server failed",
        503: "index unavailable, damaged or locked",
    }
    return {s: {"model": ErrorResponse, "description": what.get(s, "error")} for s in statuses}


# The HTTP layer's own errors (a key, a Host, a body): code -> status. The errors of the index and the
# search carry theirs (`index.errors.SemsearchError`); `tests/api/test_errors.py` checks both tables.
HTTP_ERRORS: dict[str, int] = {
    "bad_request": 400,
    "host_not_allowed": 400,
    "unauthorized": 401,
    "cross_site_write": 403,
    "writes_closed": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "too_large": 413,
    "unsupported_media_type": 415,
    "malformed_json": 422,
    "unreadable_upload": 422,
    "invalid_doc_id": 422,
    "rate_limited": 429,
}


class ApiError(SemsearchError):
    """An error of the HTTP layer itself; its status is its code's row of `HTTP_ERRORS`."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = HTTP_ERRORS[code], code, message, headers


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
        if not where:  # the body itself: absent, or not a JSON object
            msg = "a JSON object is required as the body, sent with Content-Type: application/json"
        elif e.get("type") == "missing":
            msg = "is required"
        elif e.get("type") == "extra_forbidden":
            msg = "is not a field of this request (see /docs for the fields)"
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


# The code of an error Starlette itself raises (an unknown route, a wrong method), by its status.
_STARLETTE_CODES = ("bad_request", "not_found", "method_not_allowed", "too_large", "unsupported_media_type",
                    "rate_limited")
HTTP_CODES = {HTTP_ERRORS[code]: code for code in _STARLETTE_CODES}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SemsearchError)
    async def _ours(request: Request, exc: SemsearchError) -> JSONResponse:
        return error_response(request, exc)

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

    # A client that hung up in the middle of its body: no fault of the server's, so no 500 (which would
    # log a traceback and count as a server error in /metrics), and nobody is left to read the answer.
    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        log.info("%s %s: the client closed the connection before sending its whole body",
                 request.method, request.url.path)
        return error(400, "bad_request", "the connection was closed before the whole body was sent")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The response for `exc`, from the one error table (`index.errors`); a 500 is logged, never detailed."""
    info = classify(exc)
    if info is None or info.unexpected:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, "internal_error", INTERNAL_MESSAGE)
    return error(info.status, info.code, info.message, info.headers)


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
        return error(HTTP_ERRORS["too_large"], "too_large", _too_large_message(self.max_bytes),
                     {"Connection": "close"})

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
