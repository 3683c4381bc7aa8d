"""What the answer and generation code need of a search engine: `Engine` is one, a test may pass another.

Declared here, not taken from `search.engine`, so that the modules the engine delegates questions to do
not import the engine back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from index.embedders.base import Embedder
from index.stores.passages import Filters, PassageRow
from search.models import SearchResponse


class Retriever(Protocol):
    @property
    def embedder(self) -> Embedder:
        """The model that embedded the passages, to compare a question with single sentences."""
        ...

    def search(self, query: str, k: int = 10, *, filters: Filters | None = None) -> SearchResponse:
        ...

    def passages_with_documents(
        self, passage_ids: Sequence[int]
    ) -> tuple[dict[int, PassageRow], dict[str, dict[str, Any]]]:
        """The passages of these ids that exist, and their documents' metadata by doc_id."""
        ...
