"""Choose stores by the names recorded in the settings and manifest."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from index.generations import IndexDamaged, IndexDir
from index.stores.base import KeywordStore, VectorStore
from index.stores.passages import FILE as PASSAGES_FILE
from index.stores.passages import PassageStore

VECTOR_STORES = ("faiss",)
KEYWORD_STORES = ("bm25", "none")
# What a store's files are called in messages about a damaged generation.
STORE_FILES = {"faiss": "vectors.faiss", "bm25": "keywords/"}


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


# --- opening a published generation ------------------------------------------------------------------
# Every reader (the engine's snapshot, the builder's previous generation) opens stores through these, so a
# store that cannot be read is reported as the damaged file it is, whatever the library raised.


def open_passages(index: IndexDir, name: str, manifest: dict[str, Any]) -> PassageStore:
    """The generation's passage store, checked to hold as many passages as its manifest says."""
    try:
        store = PassageStore.open(index.path(name))
        count = store.count_passages()
    except sqlite3.DatabaseError as exc:
        raise _damaged(index, name, PASSAGES_FILE, f"cannot be read ({exc})") from exc
    if count != manifest["passages"]:
        store.close()
        expected = manifest["passages"]
        raise _damaged(index, name, PASSAGES_FILE, f"holds {count} passages, its manifest {expected}")
    return store


def open_vector_store(
    index: IndexDir, name: str, manifest: dict[str, Any], options: Any = None
) -> VectorStore:
    kind = manifest["settings"]["vector_store"]
    what = STORE_FILES.get(kind, kind)
    try:
        store = load_vector_store(kind, index.path(name), options)
    except Exception as exc:  # faiss raises RuntimeError, numpy ValueError/EOFError, json ValueError …
        raise _damaged(index, name, what, f"cannot be read ({_brief(exc)})") from exc
    if len(store) != manifest["passages"]:
        raise _damaged(index, name, what, f"holds {len(store)} vectors for {manifest['passages']} passages")
    return store


def open_keyword_store(index: IndexDir, name: str, manifest: dict[str, Any]) -> KeywordStore | None:
    kind = manifest["settings"]["keyword_store"]
    what = STORE_FILES.get(kind, kind)
    try:
        store = load_keyword_store(kind, index.path(name))
    except Exception as exc:  # bm25s, numpy and json each raise their own kinds
        raise _damaged(index, name, what, f"cannot be read ({_brief(exc)})") from exc
    if store is not None and len(store) != manifest["passages"]:
        raise _damaged(index, name, what, f"holds {len(store)} passages, its manifest {manifest['passages']}")
    return store


def _damaged(index: IndexDir, name: str, what: str, problem: str) -> IndexDamaged:
    """The error for a store that failed to open. Only now are the checksums read (opening checks sizes):
    they name the file whose bytes changed, which the library's own error seldom does."""
    found = index.problems(name, checksums=True)
    return IndexDamaged(index.root, found[0]) if found else index.damaged(name, what, problem)


def _brief(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
