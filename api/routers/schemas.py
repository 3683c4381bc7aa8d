"""Request and response bodies of the HTTP API (the search result itself is `search.models`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from index.documents import doc_id_problem
from search.answer import READ_PASSAGES
from search.errors import MAX_K
from search.filters import parse_filters
from search.models import SearchResult

if TYPE_CHECKING:
    from search.filters import Filters

ZQSB = "000_ad61b687c275495d.txt"
INVALID_DOC_ID = "invalid_doc_id"  # the validation error type of an unusable doc_id: a 422, not a 400
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER: no passage id or offset can be larger (it would overflow)


def lone_surrogate_path(value: Any) -> str | None:
    """Where a JSON value holds a lone UTF-16 surrogate ("\\ud800" escapes), or None.

    JSON allows such escapes, Python keeps them in str, but no tokenizer or database can encode them:
    they are refused up front as a bad request instead of failing deep inside a search or a build.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = str(key).encode("utf-8", "replace").decode("utf-8")  # the message must encode too
                stack += [(where or "body", key), (f"{where}.{name}" if where else name, child)]
        elif isinstance(item, list):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(item)]
    return None


def _refuse_lone_surrogates(data: Any) -> Any:
    where = lone_surrogate_path(data)
    if where is not None:
        raise ValueError(f"{where} is not valid Unicode text (a lone surrogate escape such as \\ud800)")
    return data


def _example(example: dict[str, Any], **config: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]}, **config)


class FilterFields(BaseModel):
    """Metadata filters of a JSON body; each list field also takes a single string. A field of no request
    is refused: a misspelt filter ignored would return unfiltered results as if filtered."""

    model_config = ConfigDict(extra="forbid")

    doc_id: list[str] = Field(default_factory=list, description="only these documents")
    source: list[str] = Field(default_factory=list, description="only these sources (publishers)")
    category: list[str] = Field(default_factory=list, description="only documents in one of these categories")
    date_from: str | None = Field(None, description="YYYY-MM-DD, inclusive")
    date_to: str | None = Field(None, description="YYYY-MM-DD, inclusive")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return _refuse_lone_surrogates(data)

    @field_validator("doc_id", "source", "category", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def filters(self) -> Filters | None:
        filters = parse_filters(doc_ids=self.doc_id, sources=self.source, categories=self.category,
                                date_from=self.date_from, date_to=self.date_to)
        return filters if filters.active() else None


# --- meta -----------------------------------------------------------------------------------------
class SyncOut(BaseModel):
    """The folder watcher's last sync (`semsearch serve --watch`)."""

    folders: list[str] = Field(description="the watched folders")
    last_sync: str | None = Field(description="when the last sync finished (UTC), null before the first")
    outcome: str | None = Field(description="ok, locked (another writer held the index: retried) or failed")
    error: str | None = None
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unavailable: list[str] = Field(default_factory=list,
                                   description="watched folders that are missing; their documents are kept")


class Health(BaseModel):
    status: str = Field(description="ok when the index answers")
    generation: str = Field(description="the published index generation searches are answered from")
    documents: int
    passages: int
    model: str
    modes: list[str] = Field(description="retrieval modes this index supports")
    ask: bool = Field(description="POST /ask is available (always true; kept for the clients that read it)")
    max_body_bytes: int = Field(description="largest request body (uploads) the server accepts")
    max_results: int = Field(description="how deep a search pages: offset + k is at most this")
    max_query_chars: int = Field(description="longest query or question, in characters")
    sync: SyncOut | None = Field(default=None, description="the folder sync, when the server watches folders")

    model_config = _example({"status": "ok", "generation": "000003", "documents": 2, "passages": 63,
                             "model": "multilingual-e5-small", "modes": ["dense"], "ask": False,
                             "max_body_bytes": 10485760, "max_results": 10000,
                             "max_query_chars": 1000})


class FacetValue(BaseModel):
    value: str
    documents: int


class DateRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(None, alias="from")
    to: str | None = None


class Facets(BaseModel):
    """The values the page offers as filters, with how many documents have each."""

    sources: list[FacetValue]
    categories: list[FacetValue]
    dates: DateRange = Field(description="earliest and latest document date")

    model_config = _example({"sources": [{"value": "证券时报网", "documents": 1}],
                             "categories": [{"value": "要闻", "documents": 1}],
                             "dates": {"from": "2021-05-21", "to": "2021-11-29"}})


# --- similar --------------------------------------------------------------------------------------
class SimilarRequest(FilterFields):
    """Exactly one of `text`, `passage_id` or `texts` (the batch form)."""

    text: str | None = Field(None, description="a passage-like text")
    passage_id: int | None = Field(None, description="a stored passage (never returned itself)", ge=0,
                                   le=MAX_ID, strict=True)
    texts: list[str] | None = Field(None,
                                    description="several texts: one result list each, embedded together",
                                    max_length=64)
    k: int = Field(10, description="results per text", ge=1, le=MAX_K, strict=True)

    model_config = _example({"texts": ["超算中心", "大数据产业园"], "k": 3})


class SimilarResponse(BaseModel):
    """`results` is a list of results, or for `texts` one list per text, in order."""

    results: list[SearchResult] | list[list[SearchResult]]


# --- ask ------------------------------------------------------------------------------------------
class AskRequest(FilterFields):
    question: str = Field(description="a question in any language")
    k: int = Field(5, description=f"passages retrieved and returned beside the answer; the span reader "
                          f"reads the first {READ_PASSAGES} of them, the sentence extractor all",
                   ge=1, le=MAX_K, strict=True)
    mode: Literal["extract", "generate"] = Field(
        "extract", description="extract: the best sentence of the corpus, verbatim; generate: an LLM writes "
        "the answer from the passages (needs the server's SEMSEARCH_LLM_* settings)"
    )
    stream: bool = Field(False, description="answer with server-sent events (tokens while an LLM writes)",
                         strict=True)
    # `filters` the field: the name `filters` is already FilterFields' method that parses them.
    nested_filters: FilterFields | None = Field(
        None, alias="filters",
        description="the same filter fields as an object, e.g. {\"source\": [\"新华社\"]}",
    )

    model_config = _example({"question": "到2025年长三角研发投入强度的目标是多少"})


# --- passages and documents -----------------------------------------------------------------------
class Passage(BaseModel):
    passage_id: int
    doc_id: str
    ordinal: int = Field(description="position of the passage in its document")
    paragraph: int = Field(description="index of its first paragraph")
    start: int = Field(description="offset in the document's cleaned text")
    end: int
    text: str


class DocumentMeta(BaseModel):
    doc_id: str
    title: str
    date: str | None = None
    author: str | None = None
    source: str | None = None
    url: str | None = None
    categories: list[str] = Field(default_factory=list)


class PassageContext(BaseModel):
    """A passage, its document's metadata, and the passages just before and after it."""

    passage: Passage
    document: DocumentMeta
    before: list[Passage]
    after: list[Passage]


class DocumentListItem(DocumentMeta):
    passages: int = Field(description="number of passages")


class DocumentList(BaseModel):
    total: int
    offset: int
    limit: int
    documents: list[DocumentListItem]


class PassageSpan(BaseModel):
    passage_id: int
    paragraph: int
    page: int | None = Field(default=None, description="the page (from 1) of a PDF the passage starts on")
    start: int
    end: int


class DocumentOut(DocumentMeta):
    """A whole document: `text[start:end]` of each paragraph and passage is exact."""

    text: str = Field(description="the cleaned text, paragraphs joined by a blank line")
    paragraphs: list[tuple[int, int]] = Field(description="[start, end) of each paragraph in `text`")
    pages: list[int] = Field(default_factory=list,
                             description="where each page of a PDF starts in `text`, page 1 first; else []")
    passages: list[PassageSpan]

    model_config = _example({"doc_id": ZQSB, "title": "多地布局_十四五_区域创新中心建设",
                             "date": "2021-11-29",
                             "author": "证券时报网", "source": "证券时报网", "url": None,
                             "categories": ["金融", "证券时报网", "要闻"], "text": "记者发现，……\n\n……",
                             "paragraphs": [[0, 120], [122, 240]],
                             "passages": [{"passage_id": 1, "paragraph": 0, "start": 0, "end": 240}]})


class DocumentIn(BaseModel):
    """A document sent as JSON; the text is cleaned and split into paragraphs like a file's. A field not
    listed here is refused (a misspelt `titel` dropped would index the document without its title)."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str | None = Field(None, min_length=1, max_length=500,
                               description="stable id (sending it again replaces the document); "
                                           "derived from the text when left out")
    title: str | None = None
    text: str = Field(min_length=1, description="plain text, paragraphs separated by blank lines")
    date: str | None = Field(None, description="any clear date form: 2021-11-29, 2021年11月29日 …")
    source: str | None = None
    author: str | None = None
    url: str | None = None
    categories: list[str] = Field(default_factory=list)

    @field_validator("doc_id")
    @classmethod
    def _usable_id(cls, value: str | None) -> str | None:
        if value is not None and (problem := doc_id_problem(value)):
            raise PydanticCustomError(INVALID_DOC_ID, problem)
        return value


class DocumentsIn(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)

    model_config = _example({"documents": [{
        "doc_id": "api/chengdu-supercomputing.txt", "title": "成都超算中心投运",
        "text": "成都超算中心自2020年投运以来，为西部地区产业发展提供了强大的算力支撑。",
        "date": "2021-05-21", "source": "新华网", "categories": ["科技"]}]}, extra="forbid")


# --- jobs -----------------------------------------------------------------------------------------
class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    """An index write running in the background; poll GET /jobs/{job} until state is done or failed."""

    job: str
    kind: str = Field(description="add or delete")
    state: str = Field(description="queued, running, done, failed, or lost: accepted by a server that "
                                   "stopped before finishing it, and its journal entry could not be read "
                                   "(error says what to do)")
    progress: float = Field(description="0 until the job has finished, then 1")
    queue_position: int | None = Field(None, description="1 for the next job to run; null once started")
    documents: list[str] = Field(description="ids of the documents the job adds or deletes")
    summary: dict[str, Any] | None = Field(None, description="what the build did, once done")
    error: JobError | None = None
    resumed: bool = Field(False, description="accepted by an earlier server process that stopped before "
                                             "it was finished, and run again after the restart")
    waiting: str | None = Field(None, description="while another writer (the CLI) holds the index: which "
                                                  "process; the job waits for it as long as it runs")
    created: str | None = None
    started: str | None = None
    finished: str | None = None

    model_config = _example({"job": "4f1c2a9b7e01", "kind": "add", "state": "done", "progress": 1.0,
                             "queue_position": None, "documents": ["api/chengdu-supercomputing.txt"],
                             "summary": {"generation": "000004", "added": 1, "embedded": 1}, "error": None,
                             "resumed": False,
                             "created": "2021-11-29T13:05:00Z", "started": "2021-11-29T13:05:00Z",
                             "finished": "2021-11-29T13:05:01Z"})
