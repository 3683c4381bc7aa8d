"""Search routes: ranked passages for a query, passages like a text or passage, answers to questions."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from api.deps import get_engine
from api.errors import responses
from api.routers.schemas import AskRequest, SimilarRequest, SimilarResponse
from search.engine import MODES, Engine, QueryError
from search.errors import MAX_K, MAX_QUERY_CHARS, MAX_RESULT_WINDOW
from search.filters import parse_filters
from search.models import AskResponse, SearchResponse

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResponse, responses=responses(400, 503))
def search(
    engine: Annotated[Engine, Depends(get_engine)],
    # The limits are described here and checked by the engine (`search.errors`), whose messages say more.
    q: Annotated[str, Query(description="the query, any language", examples=["长三角 研发投入"],
                            json_schema_extra={"maxLength": MAX_QUERY_CHARS})],
    k: Annotated[int, Query(description="results per page",
                            json_schema_extra={"minimum": 1, "maximum": MAX_K})] = 10,
    offset: Annotated[
        int, Query(ge=0, description=f"results to skip (paging); offset + k is at most {MAX_RESULT_WINDOW}")
    ] = 0,
    mode: Annotated[str | None, Query(description="dense, keyword or hybrid (see /health for this index's)",
                                      json_schema_extra={"enum": list(MODES)})] = None,
    doc_id: Annotated[list[str] | None, Query(description="only these documents")] = None,
    source: Annotated[list[str] | None, Query(description="only these sources")] = None,
    category: Annotated[list[str] | None, Query(description="only these categories")] = None,
    date_from: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    date_to: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
) -> Response:
    """Rank passages for `q`; each result cites its document and the exact offsets of its text."""
    filters = parse_filters(
        doc_ids=doc_id or [], sources=source or [], categories=category or [],
        date_from=date_from, date_to=date_to,
    )
    response = engine.search(q, k=k, mode=mode or None, filters=filters, offset=offset)
    # Serialised by pydantic's own encoder straight to bytes: FastAPI would otherwise dump the model,
    # validate the dump against `response_model` again and encode it, some 1-2 ms of a 20 ms search.
    return Response(response.model_dump_json(), media_type="application/json")


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


_EVENT_STREAM = {200: {"description": "the answer; with `stream: true` as server-sent events",
                       "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


@router.post("/ask", response_model=AskResponse, responses=responses(400, 422, 502, 503) | _EVENT_STREAM)
def ask(body: AskRequest, engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    """An answer to a question with [n] citations of the passages it comes from.

    `mode`: `extract` (default) answers with a sentence of the documents, or `answer: null` with a message
    when none is confident; `generate` lets the configured LLM write the answer (400 when none is
    configured, 502 when it fails). `stream: true` answers with server-sent events: `data: {"type":
    "token", "text"}` while the answer is written, then `data: {"type": "done", "response": {...}}`, or
    `data: {"type": "error", "code": "llm_failed", "message"}` when the LLM fails after its first token
    (before it, the answer is a 502).
    Filters are the flat fields or a `filters` object of the same fields (which wins when it has any).
    """
    from fastapi.responses import StreamingResponse

    from search.generate import GenerationFailed, sse

    filters = body.filters()
    if body.nested_filters is not None and (nested := body.nested_filters.filters()) is not None:
        filters = nested
    if body.stream and body.mode == "generate":
        stream = engine.ask_stream(body.question, k=body.k, filters=filters)
        # The first event before the 200: an LLM that cannot be reached at all is a 502 as unstreamed,
        # not a 200 whose only event is the error.
        first = next(stream, None)
        if first is not None and first["type"] == "error":
            raise GenerationFailed(first["message"])
        events = itertools.chain([first] if first is not None else [], stream)
    else:
        result = engine.ask(body.question, k=body.k, filters=filters, mode=body.mode)
        if not body.stream:
            return result
        events = iter([{"type": "done", "response": result.model_dump()}])
    return StreamingResponse(sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
