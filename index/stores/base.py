"""Protocols of the stores a generation is made of.

A vector store maps int64 passage ids to unit vectors and answers inner-product top-k; a keyword store
answers lexical top-k. Both are written once per generation and then only read, which is what makes
switching generations atomic and readers lock-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


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
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (nq, k), best first; id -1 pads missing results.

        `allowed` restricts the search to these ids (filters applied inside retrieval, so a filtered
        search still finds k results when k matching passages exist).
        """
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (for "more like this")."""
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

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) 1-d arrays, best first, only passages that match at least one term."""
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
