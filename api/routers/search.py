"""Search routes: ranked passages for a query, passages like a text or passage, answers to questions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import get_engine
from api.errors import ApiError, responses
from api.routers.schemas import AskRequest, SimilarRequest, SimilarResponse
from search.engine import Engine, QueryError
from search.filters import parse_filters
from search.models import AskResponse, SearchResponse

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


@router.post("/ask", response_model=AskResponse, responses=responses(400, 422, 501, 502, 503) | _EVENT_STREAM)
async def ask(
    body: AskRequest, request: Request, engine: Annotated[Engine, Depends(get_engine)]
) -> Any:
    """An answer to a question with [n] citations of the passages it comes from.

    `mode`: `extract` (default) answers with a sentence of the documents, or `answer: null` with a message
    when none is confident; `generate` lets the configured LLM write the answer (400 when none is
    configured, 502 when it fails). `stream: true` answers with server-sent events: `data: {"type":
    "token", "text"}` while the answer is written, then `data: {"type": "done", "response": {...}}`.
    """
    from fastapi.responses import StreamingResponse

    from search.generate import GenerationFailed, GenerationNotConfigured, sse

    answer = getattr(engine, "ask", None)
    if answer is None:
        raise ApiError(501, "not_implemented",
                       "question answering is not available on this server yet; use GET /search for passages")
    # mode and stream are read from the body itself while AskRequest does not declare them.
    raw = await request.json()
    mode = getattr(body, "mode", None) or (raw.get("mode") if isinstance(raw, dict) else None) or "extract"
    stream = getattr(body, "stream", None)
    stream = stream if stream is not None else (raw.get("stream", False) if isinstance(raw, dict) else False)
    if mode not in ("extract", "generate"):
        raise QueryError(f"mode must be extract or generate, not {mode!r}")
    if not isinstance(stream, bool):
        raise QueryError(f"stream must be true or false, not {stream!r}")
    filters = body.filters()
    nested = raw.get("filters") if isinstance(raw, dict) else None
    if nested is not None:  # {"filters": {"doc_id": [...], "source": [...], ...}} as well as flat fields
        if not isinstance(nested, dict):
            raise QueryError("filters must be an object like {\"source\": [\"新华社\"]}")

        def many(name: str) -> list[str]:
            value = nested.get(name) or []
            if isinstance(value, str):
                return [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise QueryError(f"filters.{name} must be a string or a list of strings")
            return value

        for name in ("date_from", "date_to"):
            if nested.get(name) is not None and not isinstance(nested[name], str):
                raise QueryError(f"filters.{name} must be a date like 2021-11-29")

        parsed = parse_filters(doc_ids=many("doc_id"), sources=many("source"), categories=many("category"),
                               date_from=nested.get("date_from"), date_to=nested.get("date_to"))
        filters = parsed if parsed.active() else filters
    try:
        if stream and mode == "generate":
            events = await run_in_threadpool(engine.ask_stream, body.question, k=body.k, filters=filters)
        else:
            result = await run_in_threadpool(answer, body.question, k=body.k, filters=filters, mode=mode)
            result = result.model_dump() if isinstance(result, BaseModel) else result
            if not stream:
                return result
            events = iter([{"type": "done", "response": result}])
    except GenerationNotConfigured as exc:
        raise ApiError(400, "generation_not_configured", str(exc)) from exc
    except GenerationFailed as exc:
        raise ApiError(502, "llm_failed", str(exc)) from exc
    return StreamingResponse(sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
