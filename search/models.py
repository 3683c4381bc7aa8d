"""Result objects shared by the Python API, the CLI's --json output and the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AlsoIn(BaseModel):
    """Another place where a near-identical passage stands, cited as a result is:
    `document.text[start:end]` is that passage."""

    doc_id: str
    title: str
    passage_id: int
    start: int = Field(description="character offset of the copy in its document's cleaned text")
    end: int
    page: int | None = Field(default=None, description="the page (from 1) of a PDF the copy starts on")


class SearchResult(BaseModel):
    """One ranked passage with its exact citation: `document.text[start:end] == text`."""

    rank: int = Field(description="1-based rank in the whole result list (offset included)")
    score: float = Field(description="the ranking score (cosine for dense, fused for hybrid)")
    passage_id: int
    doc_id: str
    title: str
    source: str | None = None
    date: str | None = None
    categories: list[str] = Field(default_factory=list)
    paragraph: int = Field(description="index of the passage's first paragraph in its document")
    page: int | None = Field(
        default=None, description="the page (from 1) of a PDF the passage starts on; null without pages"
    )
    start: int = Field(description="character offset of the passage in its document's cleaned text")
    end: int
    text: str
    dense_score: float | None = Field(
        default=None,
        description="the dense evidence: the passage's cosine with the query, averaged with its best "
        "sentence's (`sentence_score`) where the index has sentence vectors",
    )
    keyword_score: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None
    sentence_score: float | None = Field(
        default=None, description="cosine of the passage's sentence most like the query (sentence vectors)"
    )
    word_share: float | None = Field(
        default=None,
        description="share of the query's words in the passage, each weighted by its rarity (idf); hybrid",
    )
    highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) offsets into `text` of matched query terms"
    )
    also_in: list[AlsoIn] = Field(default_factory=list, description="near-identical passages elsewhere")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "rank": 1,
                    "score": 0.91,
                    "passage_id": 12,
                    "doc_id": "000_ad61b687c275495d.txt",
                    "title": "多地布局_十四五_区域创新中心建设",
                    "source": "证券时报网",
                    "date": "2021-11-29",
                    "categories": ["金融", "证券时报网", "要闻"],
                    "paragraph": 9,
                    "start": 1062,
                    "end": 1198,
                    "text": "根据《长三角科技创新共同体建设发展规划》，到2025年长三角研发投入强度超过3%，…",
                    "highlights": [[20, 24]],
                    "also_in": [],
                }
            ]
        }
    }


class SearchResponse(BaseModel):
    """A page of results; `total` counts every result the query has (up to the retrieval depth)."""

    query: str
    mode: str
    total: int
    offset: int = 0
    generation: str | None = None
    results: list[SearchResult]

    def detached(self) -> SearchResponse:
        """A copy that shares nothing mutable with this one, for the answer cache: ten times cheaper than
        `model_copy(deep=True)` (generic deep copy), which cost a search 1.3 ms."""
        return self.model_copy(
            update={
                "results": [
                    r.model_copy(
                        update={
                            "categories": list(r.categories),
                            "highlights": list(r.highlights),  # of tuples: immutable
                            "also_in": [a.model_copy() for a in r.also_in],
                        }
                    )
                    for r in self.results
                ]
            }
        )


class Citation(BaseModel):
    """A cited place: `document.text[start:end] == text` (the answer sentence, or a whole passage for
    a generated answer's [n])."""

    n: int = Field(description="the [n] mark the citation is referred to by")
    passage_id: int
    doc_id: str
    title: str
    source: str | None = None
    date: str | None = None
    page: int | None = Field(default=None, description="the page (from 1) of a PDF the cited text starts on")
    start: int = Field(description="character offset of the cited text in its document's cleaned text")
    end: int
    text: str


class AskResponse(BaseModel):
    """An answer to a question, the places it is cited from, and the passages it was read from.

    Extractive answers (`mode="extract"`) are a sentence standing verbatim in the corpus; `answer_span` is
    the part of it that answers the question. `answer` is null when no sentence answers with at least the
    configured confidence; `message` then says so, and `passages` still lists what was found.
    """

    question: str
    answer: str | None = Field(description="null when no passage answers with confidence")
    answer_span: tuple[int, int] | None = Field(
        None, description="[start, end) of the exact answer inside `answer`, when one was found"
    )
    confidence: float | None = Field(
        None, description="estimated probability (0-1) that `answer` holds the answer; null for generated"
    )
    citations: list[Citation] = Field(default_factory=list)
    passages: list[SearchResult] = Field(default_factory=list)
    message: str | None = Field(None, description="why there is no answer, or a note about it")
    mode: str = Field("extract", description="extract (a sentence of the corpus) or generate (an LLM's text)")
    unknown_citations: list[int] = Field(
        default_factory=list, description="generate: [n] marks the answer uses that match no passage"
    )
    unsupported_citations: list[int] = Field(
        default_factory=list,
        description="generate: [n] marks whose passage shares no content with the sentence citing it",
    )
