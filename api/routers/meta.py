"""Routes about the index itself: health and the values the page offers as filters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.deps import get_engine
from api.errors import responses
from api.routers.schemas import Facets, Health
from api.security import read_access
from search.engine import Engine
from search.errors import MAX_QUERY_CHARS, MAX_RESULT_WINDOW

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health, responses=responses(503))
def health(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> dict[str, Any]:
    """The published generation searches are answered from, its size, model and abilities."""
    info = engine.info()
    return {k: info[k] for k in ("generation", "documents", "passages", "model")} | {
        "status": "ok",
        "modes": info.get("modes", ["dense"]),
        "ask": True,
        "max_body_bytes": request.app.state.max_body_bytes,
        "max_results": MAX_RESULT_WINDOW,
        "max_query_chars": MAX_QUERY_CHARS,
        "sync": _sync(request),
    }


def _sync(request: Request) -> dict[str, Any] | None:
    watcher = getattr(request.app.state, "watcher", None)
    if watcher is None:
        return None
    return watcher.status.to_dict() | {"folders": [str(r) for r in watcher.roots]}


@router.get("/facets", response_model=Facets, responses=responses(503), dependencies=[Depends(read_access)])
def facets(engine: Annotated[Engine, Depends(get_engine)]) -> dict[str, Any]:
    """Sources and categories with their document counts, and the date range, for filter choices."""
    found = engine.facets()
    dates = found.get("dates") or [{}]
    return {"sources": found["sources"], "categories": found["categories"], "dates": dates[0]}
