"""The FastAPI application: thin routers over one `Engine`, one background index writer, and the page.

    semsearch serve --index .index        # or: uvicorn --factory api.server:app_from_env

The search page is static HTML, CSS and JavaScript in `api/static/`, served at `/` with no build step
and nothing fetched from elsewhere, so it works offline. The API is described at `/docs`, a page of the
same kind that renders `/openapi.json` (no Swagger UI, whose assets come from a CDN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import declared_parameters_only
from api.errors import BodySizeLimit, error_openapi, install_error_handlers
from api.jobs import JOURNAL, JobJournal, JobQueue
from api.metrics import install_metrics
from api.routers import documents, meta, search
from api.routers.schemas import DocumentsIn
from api.security import (
    SecuritySettings,
    install_security,
    rate_limit,
    read_access,
    security_openapi,
)
from api.security import max_body_from_env as _max_body_from_env
from index import settings
from index.watch import FolderWatcher
from search.engine import Engine

STATIC = Path(__file__).resolve().parent / "static"

# The page needs nothing but its own files and the API: a document's HTML can never run, even if it
# were inserted as markup by mistake. /docs, our own API reference, is held to the same policy.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def max_body_from_env() -> int:
    """`SEMSEARCH_MAX_BODY` (bytes or 10MB), else `SEMSEARCH_MAX_BODY_MB` (may be fractional), else 10 MB."""
    return _max_body_from_env()


class PageHeaders:
    """Security headers on every response; the page's CSP and revalidation on the page and its assets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        page = path in ("/", "/docs") or path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    # no-cache = revalidate by ETag: a new version of the page is never hidden by a cache
                    headers += [(b"content-security-policy", PAGE_CSP.encode()),
                                (b"cache-control", b"no-cache"), (b"x-frame-options", b"DENY")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answer HEAD like GET without the body, on every GET route (uptime probes send HEAD)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # a copy: the server's own scope still says HEAD, so it frames the response as one
        await self.app({**scope, "method": "GET"}, receive, without_body)


def create_app(
    index_dir: Path | str | None = None,
    *,
    engine: Engine | None = None,
    max_body_bytes: int | None = None,
    security: SecuritySettings | None = None,
    watch: Sequence[Path | str] = (),
    watch_options: dict[str, Any] | None = None,
) -> FastAPI:
    """The app for one index folder; the model is loaded here, before the first request.

    `security` (keys, rate limit, body limit, CORS; see `api.security`) defaults to the environment's.
    `watch`: folders kept in sync while the app runs (`index.watch`; `watch_options` are its timings).
    """
    security = security or SecuritySettings.from_env()  # before the model loads: a bad setting fails fast
    engine = engine or Engine.open(index_dir)
    folder = getattr(getattr(engine, "dir", None), "root", None)  # a stand-in engine of a test has none
    jobs = JobQueue(documents.job_actions(engine), JobJournal(folder / JOURNAL) if folder else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs.start()
        watcher = app.state.watcher
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            jobs.stop()

    app = FastAPI(
        title="semsearch",
        description=(
            "Semantic search with exact citations over document collections, first of all Chinese news "
            "and policy articles. Every result cites its document and the character offsets of its text. "
            "Errors always have the shape `{\"error\": {\"code\", \"message\"}}`."
        ),
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN: /docs is ours (apidocs.html)
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.jobs = jobs
    app.state.max_body_bytes = max_body_bytes if max_body_bytes is not None else security.max_body_bytes
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=app.state.max_body_bytes)
    app.add_middleware(PageHeaders)
    app.add_middleware(HeadAsGet)
    metrics = install_metrics(app)  # inside CORS, outside the rest: every answer is counted
    jobs.on_finished = metrics.job_finished
    # API writes and the watcher's syncs both take the index's write lock; whichever finds it held
    # retries later (the job queue for a while, the watcher on its next tick).
    app.state.watcher = None
    if watch:
        app.state.watcher = FolderWatcher(
            watch, engine.index_paths, index_dir=engine.dir.root,
            on_sync=lambda summary: metrics.record_build(summary.to_dict()), **(watch_options or {}))
    install_security(app, security)  # after the others: CORS must be outermost to answer preflights

    app.include_router(meta.router)
    # rate limit first: requests without a (valid) key count against their address too
    app.include_router(search.router, dependencies=[Depends(rate_limit), Depends(read_access),
                                                    Depends(declared_parameters_only)])
    app.include_router(documents.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return FileResponse(STATIC / "apidocs.html", media_type="text/html; charset=utf-8")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            # POST /documents reads its JSON body by hand (it also takes multipart uploads), so FastAPI
            # does not see the model its openapi_extra refers to: add it and what it nests.
            extra = DocumentsIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, nested in extra.pop("$defs", {}).items():
                components.setdefault(name, nested)
            components.setdefault("DocumentsIn", extra)
            app.openapi_schema = security_openapi(error_openapi(schema), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    engine.embedder  # noqa: B018 - warm the model so the first search is not slow
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory api.server:app_from_env`: the index of `$SEMSEARCH_INDEX` (else ./.index)."""
    return create_app(settings.value("SEMSEARCH_INDEX"))
