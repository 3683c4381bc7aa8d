"""Protocols of the stores a generation is made of, and of the generation readers open.

A vector store maps int64 passage ids to unit vectors and answers inner-product top-k; a keyword store
answers lexical top-k; a passage reader gives passages, documents and filters. In an index folder the
three are files written once per generation (FAISS, BM25, SQLite) and then only read, which is what makes
switching generations atomic and readers lock-free; in Milvus (`index.stores.milvus_store`) they are views
of one collection at a published generation. The engine sees only these protocols.

A filter resolves to a `Selection`: whatever the back end's searches accept as `allowed` (the matching
passage ids for FAISS and BM25, a filter expression for Milvus); `len()` of it is the number of passages
it admits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from index.manifest import Manifest
    from index.stores.passages import Filters, PassageRow


@runtime_checkable
class Selection(Protocol):
    """The passages a filter admits, in the form the back end's searches take (see the module doc)."""

    def __len__(self) -> int: ...


@runtime_checkable
class VectorStore(Protocol):
    """Dense top-k over passage ids."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dim) float32 unit vectors."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: Selection | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (nq, k), best first; id -1 pads missing results.

        `allowed` restricts the search to these ids (filters applied inside retrieval, so a filtered
        search still finds k results when k matching passages exist).
        """
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (for "more like this")."""
        ...

    def describe(self) -> dict[str, Any]:
        """The layout actually chosen and its parameters (recorded in the manifest)."""
        ...

    def save(self, folder: Path) -> None: ...

    def __len__(self) -> int: ...


@runtime_checkable
class KeywordStore(Protocol):
    """Lexical top-k over passage ids."""

    def build(self, ids: np.ndarray, texts: Sequence[str], previous: KeywordStore | None = None) -> None:
        """Index these passages. Passage ids are stable for unchanged text, so an implementation may
        reuse the analysed tokens of `previous` (the last generation's store) for ids it already holds
        instead of tokenising the whole corpus again."""
        ...

    def search(self, query: str, k: int, allowed: Selection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) 1-d arrays, best first, only passages that match at least one term."""
        ...

    def count(self, query: str, allowed: Selection | None = None) -> int:
        """How many passages (of `allowed`) match at least one query term: as many as `search` returns
        when k is no limit. A search's total, where a page reads only the first of them."""
        ...

    def matched_terms(self, terms: Sequence[str], passage_ids: Sequence[int]) -> list[set[str]]:
        """For each passage id, which of these analysed terms (`index.analysis.tokenize`'s) it contains;
        an unknown id contains none. Read from the index, so no passage is analysed again at query time."""
        ...

    def contains(self, terms: Sequence[str], passage_ids: Sequence[int]) -> np.ndarray:
        """(passages, terms) bool array: whether each passage holds each term (`matched_terms` as a
        matrix, for scoring many candidates at once)."""
        ...

    def idf(self, terms: Sequence[str]) -> np.ndarray:
        """How informative each analysed term is here: its inverse document frequency, as the ranking
        weighs it (float64, one per term). A term no passage holds gets the largest value; an empty
        store gives every term the same."""
        ...

    @property
    def outdated(self) -> bool:
        """Whether it was built by another analysis (`index.analysis.ANALYZER_VERSION`) than this
        process's: it still answers, with the terms it has, until the builder analyses it again."""
        ...

    def save(self, folder: Path) -> None: ...

    def __len__(self) -> int: ...


@runtime_checkable
class PassageReader(Protocol):
    """Passages, documents and filters of one generation (read side of `index.stores.passages`)."""

    def count_documents(self) -> int: ...

    def count_passages(self) -> int: ...

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]: ...

    def word_bounds(self, ids: Sequence[int]) -> dict[int, frozenset[int]]:
        """Stored word bounds for highlighting; passages without them are left out."""
        ...

    def passage_ids_of(self, doc_id: str) -> list[int]:
        """The document's passages in reading order."""
        ...

    def document(self, doc_id: str) -> dict[str, Any] | None:
        """The document's fields (`Document`'s, `pages` [] where it has none) and its `content_hash`."""
        ...

    def documents_meta(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """doc_id -> the metadata of each document found (no text): title, date, author, source, url,
        categories, path and pages."""
        ...

    def list_documents(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]: ...

    def filter_ids(self, filters: Filters) -> Selection:
        """The passages whose document matches every filter."""
        ...

    def facets(self) -> dict[str, list[dict[str, Any]]]: ...

    def close(self) -> None: ...


@runtime_checkable
class SentenceReader(Protocol):
    """The vectors of every passage's sentences (read side; `index.stores.sentence_store` for folders)."""

    def best(self, ids: Sequence[int] | np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each id, the cosine of its sentence most like the (dim,) unit `query` (float64); NaN for a
        passage without sentences of its own (a one-sentence passage) or one the store does not hold."""
        ...

    def of(self, ids: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """The (n, dim) float16 sentence vectors of each id held (n may be 0); ids not held left out."""
        ...

    @property
    def sentence_count(self) -> int:
        """Sentences with a vector of their own, over all passages."""
        ...

    def __len__(self) -> int:
        """The passages it covers."""
        ...


@dataclass
class Generation:
    """Everything of one published generation, opened read-only: what a search is answered from."""

    name: str
    key: str  # the generation's identity: what answers are cached by
    manifest: Manifest
    passages: PassageReader
    vectors: VectorStore
    keywords: KeywordStore | None
    size_bytes: Callable[[], int]  # bytes it takes where it is stored
    # Every passage's sentence vectors (`index.stores.sentence_store`, or the passage rows of a Milvus
    # collection); None when the generation was built without them: the dense side then ranks by the
    # passage vectors alone.
    sentences: SentenceReader | None = None

    @functools.cached_property
    def stats(self) -> dict[str, int]:
        """Documents, passages and bytes, read once: a published generation never changes, and `/health`
        (which load balancers poll) would otherwise count them on every call."""
        return {
            "documents": self.passages.count_documents(),
            "passages": self.passages.count_passages(),
            "size_bytes": self.size_bytes(),
        }
