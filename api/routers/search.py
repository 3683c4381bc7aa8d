"""Search routes: ranked passages for a query, passages like a text or passage, answers to questions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import get_engine
from api.errors import ApiError, responses
from api.routers.schemas import AskRequest, AskResponse, SimilarRequest, SimilarResponse
from search.engine import Engine, QueryError
from search.filters import parse_filters
from search.models import SearchResponse

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResponse, responses=responses(400, 503))
def search(
    engine: Annotated[Engine, Depends(get_engine)],
    q: Annotated[str, Query(description="the query, any language", examples=["长三角 研发投入"])],
    k: Annotated[int, Query(description="results per page, 1-100")] = 10,
    offset: Annotated[int, Query(ge=0, description="results to skip (paging)")] = 0,
    mode: Annotated[str | None, Query(description="dense, keyword or hybrid (see /health)")] = None,
    doc_id: Annotated[list[str] | None, Query(description="only these documents")] = None,
    source: Annotated[list[str] | None, Query(description="only these sources")] = None,
    category: Annotated[list[str] | None, Query(description="only these categories")] = None,
    date_from: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    date_to: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
) -> SearchResponse:
    """Rank passages for `q`; each result cites its document and the exact offsets of its text."""
    filters = parse_filters(
        doc_ids=doc_id or [], sources=source or [], categories=category or [],
        date_from=date_from, date_to=date_to,
    )
    return engine.search(q, k=k, mode=mode or None, filters=filters, offset=offset)


@router.post("/similar", response_model=SimilarResponse, responses=responses(400, 404, 422, 503))
def similar(body: SimilarRequest, engine: Annotated[Engine, Depends(get_engine)]) -> dict[str, Any]:
    """Passages most like a text, a stored passage ("more like this"), or each of several texts.

    The batch form `{"texts": [...]}` embeds all texts in one model call and answers one list per text.
    """
    given = [name for name in ("text", "passage_id", "texts") if getattr(body, name) is not None]
    if len(given) != 1:
        raise QueryError("give exactly one of text, passage_id or texts")
    filters = body.filters()
    if body.texts is not None:
        return {"results": engine.similar_texts(body.texts, k=body.k, filters=filters)}
    return {"results": engine.similar(text=body.text, passage_id=body.passage_id, k=body.k, filters=filters)}


@router.post("/ask", response_model=AskResponse, responses=responses(400, 422, 501, 503))
async def ask(body: AskRequest, engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    """An answer to a question with [n] citations of the passages it comes from.

    Answers 501 until the engine can answer questions (`Engine.ask`); the page then shows results only.
    """
    answer = getattr(engine, "ask", None)
    if answer is None:
        raise ApiError(501, "not_implemented",
                       "question answering is not available on this server yet; use GET /search for passages")
    result = await run_in_threadpool(answer, body.question, k=body.k, filters=body.filters())
    return result.model_dump() if isinstance(result, BaseModel) else result
