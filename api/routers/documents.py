"""Documents and passages: read them, add them (JSON or file upload), delete them.

Writes are index builds, so they run as background jobs (see `api.jobs`): POST and DELETE answer
202 with a job to poll at GET /jobs/{job}, or, with `?wait=SECONDS`, wait that long for it to finish
and answer 200 with the finished job. Searches keep answering from the current generation meanwhile.
A job is journaled in the index folder before the 202, and resumed by the next server if this one is
killed (`api.jobs`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import declared_parameters_only, get_engine, get_jobs
from api.errors import ApiError, responses
from api.jobs import KEEP_FINISHED, KEEP_FINISHED_DAYS, Action, Job, JobQueue
from api.routers.schemas import (
    INVALID_DOC_ID,
    MAX_ID,
    DocumentList,
    DocumentOut,
    DocumentsIn,
    JobOut,
    PassageContext,
)
from api.security import read_access, write_access
from index.documents import Document, doc_id_problem
from index.loaders import SUPPORTED_EXTENSIONS, documents_from_records, load_bytes
from search.engine import Engine, NotFound

router = APIRouter(tags=["documents"])
READ = [Depends(read_access), Depends(declared_parameters_only)]  # open unless SEMSEARCH_READS_NEED_KEY
WRITE = [Depends(write_access), Depends(declared_parameters_only)]  # the API key whenever one is configured

MAX_FILES = 100
EXAMPLE_ID = "000_ad61b687c275495d.txt"
MAX_WAIT_SECONDS = 300.0

Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS,
                              description="seconds to wait for the job to finish before answering")]


@router.get("/passages/{passage_id}", response_model=PassageContext, responses=responses(400, 404, 503),
            dependencies=READ)
def passage(
    passage_id: Annotated[int, Path(ge=0, le=MAX_ID, description="a passage id from a search result")],
    engine: Annotated[Engine, Depends(get_engine)],
    neighbours: Annotated[int, Query(ge=0, le=20, description="passages shown before and after")] = 1,
) -> dict[str, Any]:
    """A passage with its document's metadata and its neighbouring passages."""
    return engine.passage(passage_id, neighbours=neighbours)


@router.get("/documents", response_model=DocumentList, responses=responses(400, 503), dependencies=READ)
def documents(
    engine: Annotated[Engine, Depends(get_engine)],
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The indexed documents, by doc_id, one page at a time."""
    return engine.documents(offset=offset, limit=limit) | {"limit": limit}


@router.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=responses(404, 503),
            dependencies=READ)
def document(
    doc_id: Annotated[str, Path(description="the id; it may contain slashes", examples=[EXAMPLE_ID])],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    """A whole document: metadata, cleaned text, paragraph offsets and its passages' offsets."""
    return engine.document(doc_id)


def _job_response(jobs: JobQueue, job: Job) -> JSONResponse:
    finished = job.done.is_set()
    return JSONResponse(job.to_dict(jobs.position(job)), status_code=200 if finished else 202,
                        headers={"Location": f"/jobs/{job.id}"})


async def _wait(job: Job, seconds: float) -> None:
    if seconds > 0:
        await run_in_threadpool(job.done.wait, seconds)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DocumentsIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                    "required": ["file"],
                },
            },
        },
    }
}


@router.post(
    "/documents",
    status_code=202,
    response_model=JobOut,
    responses=responses(400, 413, 415, 422, 503) | {200: {"model": JobOut, "description": "finished (wait)"}},
    openapi_extra=_UPLOAD_BODY,
    dependencies=WRITE,
)
async def add_documents(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    jobs: Annotated[JobQueue, Depends(get_jobs)],
    wait: Wait = 0,
) -> JSONResponse:
    """Add or replace documents, indexed in the background.

    Send JSON `{"documents": [{"doc_id", "title", "text", "date", "source", "categories"}]}`, or a
    multipart form with one or more files (field `file`) in any supported format: .txt, .md, .html,
    .jsonl, .pdf, .docx. A document whose doc_id is already indexed is replaced, unless that id is a file's
    of an indexed folder (the job fails with `doc_id_taken`). Answers 202 with the job.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        docs = await _from_json(await request.body())
    elif content_type == "multipart/form-data":
        docs = await _from_upload(request)
    else:
        raise ApiError("unsupported_media_type",
                       "send application/json ({\"documents\": [...]}) or multipart/form-data with files")
    seen: set[str] = set()
    for doc in docs:
        if problem := doc_id_problem(doc.doc_id):  # ids from uploaded files; JSON ids were checked as parsed
            raise ApiError(INVALID_DOC_ID, f"doc_id {doc.doc_id!r}: {problem}")
        if doc.doc_id in seen:
            raise ApiError("bad_request", f"doc_id {doc.doc_id!r} is sent twice; ids must be unique")
        seen.add(doc.doc_id)
    payload = {"documents": [asdict(d) for d in docs]}
    job = await run_in_threadpool(jobs.submit, "add", [d.doc_id for d in docs], payload)  # fsyncs: not here
    await _wait(job, wait)
    return _job_response(jobs, job)


def job_actions(engine: Engine) -> dict[str, Action]:
    """What the jobs of these routes do with their journaled payload (see `api.jobs`)."""

    def add(payload: dict[str, Any], resumed: bool) -> dict[str, Any]:
        docs = [Document(**(d | {"paragraphs": [tuple(p) for p in d["paragraphs"]]}))
                for d in payload["documents"]]
        return engine.add_documents(docs).to_dict()

    def delete(payload: dict[str, Any], resumed: bool) -> dict[str, Any]:
        doc_ids = payload["doc_ids"]
        if resumed:  # the server that accepted it may have published the delete before it stopped
            doc_ids = [d for d in doc_ids if _indexed(engine, d)]
            if not doc_ids:
                return {"deleted": 0, "already_deleted": payload["doc_ids"]}
        return engine.delete_documents(doc_ids).to_dict()

    return {"add": add, "delete": delete}


def _indexed(engine: Engine, doc_id: str) -> bool:
    try:
        engine.document(doc_id)
    except NotFound:
        return False
    return True


async def _from_json(body: bytes) -> list[Document]:
    try:
        payload = await run_in_threadpool(json.loads, body)  # up to the body limit: not on the event loop
    except ValueError as exc:
        raise ApiError("malformed_json", f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # valid JSON, but nested deeper than any document list needs
        raise ApiError("bad_request", "the JSON body is nested too deeply") from None
    try:
        parsed = DocumentsIn.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors()
        # a well-formed body whose id breaks the id rule is unprocessable (422), like an unreadable file
        if bad_ids := [e for e in errors if e["type"] == INVALID_DOC_ID]:
            errors, code = bad_ids, INVALID_DOC_ID
        else:
            code = "bad_request"
        where = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in errors[:5]
        )
        raise ApiError(code, where) from None
    records = [d.model_dump(exclude_none=True) for d in parsed.documents]
    return await run_in_threadpool(documents_from_records, records)


async def _from_upload(request: Request) -> list[Document]:
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except StarletteHTTPException as exc:
        if exc.status_code == 413:  # over the size limit: that answer, not "unreadable"
            raise
        raise ApiError("unreadable_upload", f"the upload cannot be read: {exc.detail}") from None
    except Exception as exc:  # a cut or garbled multipart body; Starlette raises several types
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise ApiError("unreadable_upload", f"the upload cannot be read: {detail}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        # 422 like any unreadable upload: a multipart body cut short parses as a form without files
        raise ApiError("unreadable_upload",
                       "the form has no complete file; send files in a field named 'file' "
                       f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    docs: list[Document] = []
    try:
        for upload in files:
            data = await upload.read()
            docs += await run_in_threadpool(load_bytes, upload.filename or "upload", data)
    finally:
        await form.close()
    return docs


@router.delete(
    "/documents/{doc_id:path}",
    status_code=202,
    response_model=JobOut,
    responses=responses(404, 503) | {200: {"model": JobOut, "description": "finished (wait)"}},
    dependencies=WRITE,
)
async def delete_document(
    doc_id: str,
    engine: Annotated[Engine, Depends(get_engine)],
    jobs: Annotated[JobQueue, Depends(get_jobs)],
    wait: Wait = 0,
) -> JSONResponse:
    """Remove a document from the index, in the background like additions (in order with them)."""
    if doc_id not in jobs.pending_doc_ids():
        try:
            await run_in_threadpool(engine.document, doc_id)
        except NotFound:
            raise ApiError("not_found", f"no document with id {doc_id!r}") from None
    job = await run_in_threadpool(jobs.submit, "delete", [doc_id], {"doc_ids": [doc_id]})
    await _wait(job, wait)
    return _job_response(jobs, job)


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=responses(404),
            dependencies=WRITE)
def job(job_id: str, jobs: Annotated[JobQueue, Depends(get_jobs)]) -> dict[str, Any]:
    """The state of a background write: queued, running, done (with its summary) or failed (with why)."""
    found = jobs.get(job_id)
    if found is None:
        raise ApiError("not_found",
                       f"no job {job_id!r} (the last {KEEP_FINISHED} finished jobs are kept, for at most "
                       f"{KEEP_FINISHED_DAYS:g} days)")
    return found.to_dict(jobs.position(found))
