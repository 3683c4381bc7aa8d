"""Choose stores by the names recorded in the settings and manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from index.stores.base import KeywordStore, VectorStore

VECTOR_STORES = ("faiss",)
KEYWORD_STORES = ("bm25", "none")


def create_vector_store(name: str, dim: int, options: Any = None) -> VectorStore:
    """A new, empty store; `options` are the store's own settings (`IndexSettings.faiss` for faiss)."""
    if name == "faiss":
        from index.stores.faiss_store import FaissStore

        return FaissStore(dim, options=options)
    raise ValueError(f"unknown vector store {name!r}; choose one of {', '.join(VECTOR_STORES)}")


def load_vector_store(name: str, folder: Path, options: Any = None) -> VectorStore:
    """A saved store; `options` (the builder's settings) shape what is added to it from now on."""
    if name == "faiss":
        from index.stores.faiss_store import FaissStore

        return FaissStore.load(folder, options=options)
    raise ValueError(f"unknown vector store {name!r}; choose one of {', '.join(VECTOR_STORES)}")


def create_keyword_store(name: str) -> KeywordStore | None:
    if name == "bm25":
        from index.stores.bm25_store import BM25Store

        return BM25Store()
    if name == "none":
        return None
    raise ValueError(f"unknown keyword store {name!r}; choose one of {', '.join(KEYWORD_STORES)}")


def load_keyword_store(name: str, folder: Path) -> KeywordStore | None:
    if name == "bm25":
        from index.stores.bm25_store import BM25Store

        return BM25Store.load(folder)
    if name == "none":
        return None
    raise ValueError(f"unknown keyword store {name!r}; choose one of {', '.join(KEYWORD_STORES)}")
