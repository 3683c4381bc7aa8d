"""The search layer's errors and the checks of a query, shared by the engine, answers and generation.

Outside the facade (`search.engine`) so that the modules it delegates to can raise them without
importing it back.
"""

from __future__ import annotations

from index.embedders.base import EmbedderError
from index.errors import SemsearchError
from index.generations import IndexFolderError
from index.text import drop_invisible

MAX_QUERY_CHARS = 1000
MAX_K = 100  # results a page (or an answer's passages) holds at most
# The deepest result a search pages to (offset + k): each page is a slice of one ranking, so a page far
# down ranks everything above it; past this, filters narrow a search better than paging does.
MAX_RESULT_WINDOW = 10_000


class QueryError(SemsearchError, ValueError):
    """The request itself is wrong (empty query, bad k, unknown mode …); the message says which part."""

    code, status = "bad_request", 400


class NotFound(SemsearchError, LookupError):
    """An unknown passage or document id."""

    code, status = "not_found", 404


class ModelMismatch(IndexFolderError):
    """The index was built with another model than the one configured for searching it."""


def check_query(query: str) -> str:
    """The query without surrounding space and invisible characters (as indexed text has none); a
    `QueryError` when it is empty, holds no word (punctuation or symbols alone, which match nothing and
    would rank passages by noise) or is too long."""
    if not isinstance(query, str):
        raise QueryError(f"the query must be a string, not {type(query).__name__}")
    if not drop_invisible(query).strip():
        raise QueryError("the query is empty; type some words to search for")
    query = drop_invisible(query).strip()
    if not any(ch.isalnum() for ch in query):
        raise QueryError(f"the query {query[:20]!r} holds no words, only punctuation or symbols; "
                         "type some words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    return query


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QueryError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")


def check_count(value: int, name: str, least: int = 0) -> None:
    """A count given to the Python API (a list's offset or limit, neighbours): a whole number >= least."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise QueryError(f"{name} must be a whole number, {least} or more, not {value!r}")


def check_passage_id(passage_id: int) -> None:
    """Passage ids are SQLite integers: a string, a float or a number past 2**63 - 1 names none."""
    if isinstance(passage_id, bool) or not isinstance(passage_id, int) or not 0 <= passage_id < 2**63:
        raise QueryError(f"a passage id is a whole number from 0 to 2**63 - 1, not {passage_id!r}")


def check_offset(offset: int, k: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise QueryError(f"offset must be a whole number, 0 or more, not {offset!r}")
    if offset + k > MAX_RESULT_WINDOW:
        raise QueryError(f"offset + k is {offset + k}; results are paged to the first {MAX_RESULT_WINDOW} "
                         "only: narrow the search with filters (source, category, dates, documents)")


class ReaderUnavailable(SemsearchError, RuntimeError):
    """The span reader's weights are missing or damaged; answers fall back to the sentence extractor."""

    code, status = "reader_unavailable", 503


class TowerUnavailable(EmbedderError):
    """The query tower's weights are missing or damaged, or its model could not be built: searches embed
    every question with e5 (and log why once); `make model` stops with this message."""
