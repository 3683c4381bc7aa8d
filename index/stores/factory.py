"""Choose stores by the names recorded in the settings and manifest."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

from index.generations import IndexDamaged, IndexDir
from index.manifest import Manifest
from index.stores.base import KeywordStore, VectorStore
from index.stores.passages import FILE as PASSAGES_FILE
from index.stores.passages import PassageStore
from index.stores.sentence_store import FOLDER as SENTENCES_FOLDER
from index.stores.sentence_store import SentenceStore

# Store name -> "module:Class", imported only when that store is used (faiss and bm25s load slowly). Every
# class is created with `Class(dim, options=...)` / `Class()` and read back with `Class.load(folder, ...)`.
VECTOR_STORES: dict[str, str] = {"faiss": "index.stores.faiss_store:FaissStore"}
KEYWORD_STORES: dict[str, str | None] = {"bm25": "index.stores.bm25_store:BM25Store", "none": None}
# What a store's files are called in messages about a damaged generation.
STORE_FILES = {"faiss": "vectors.faiss", "bm25": "keywords/", "sentences": f"{SENTENCES_FOLDER}/"}


def _store_class(kind: str, name: str, registry: dict[str, Any]) -> Any:
    if name not in registry:
        raise ValueError(f"unknown {kind} store {name!r}; choose one of {', '.join(registry)}")
    target = registry[name]
    if target is None:
        return None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def create_vector_store(name: str, dim: int, options: Any = None) -> VectorStore:
    """A new, empty store; `options` are the store's own settings (`IndexSettings.faiss` for faiss)."""
    return _store_class("vector", name, VECTOR_STORES)(dim, options=options)


def load_vector_store(name: str, folder: Path, options: Any = None) -> VectorStore:
    """A saved store; `options` (the builder's settings) shape what is added to it from now on."""
    return _store_class("vector", name, VECTOR_STORES).load(folder, options=options)


def create_keyword_store(name: str) -> KeywordStore | None:
    cls = _store_class("keyword", name, KEYWORD_STORES)
    return cls() if cls is not None else None


def load_keyword_store(name: str, folder: Path) -> KeywordStore | None:
    cls = _store_class("keyword", name, KEYWORD_STORES)
    return cls.load(folder) if cls is not None else None


# --- opening a published generation ------------------------------------------------------------------
# Every reader (the engine's snapshot, the builder's previous generation) opens stores through these, so a
# store that cannot be read is reported as the damaged file it is, whatever the library raised.


def open_passages(index: IndexDir, name: str, manifest: Manifest) -> PassageStore:
    """The generation's passage store, checked to hold as many passages as its manifest says."""
    try:
        store = PassageStore.open(index.path(name))
        count = store.count_passages()
    except sqlite3.DatabaseError as exc:
        raise _damaged(index, name, PASSAGES_FILE, f"cannot be read ({exc})") from exc
    if count != manifest.passages:
        store.close()
        expected = manifest.passages
        raise _damaged(index, name, PASSAGES_FILE, f"holds {count} passages, its manifest {expected}")
    return store


def open_vector_store(
    index: IndexDir, name: str, manifest: Manifest, options: Any = None
) -> VectorStore:
    kind = manifest.settings["vector_store"]
    what = STORE_FILES.get(kind, kind)
    try:
        store = load_vector_store(kind, index.path(name), options)
    except Exception as exc:  # faiss raises RuntimeError, numpy ValueError/EOFError, json ValueError …
        raise _damaged(index, name, what, f"cannot be read ({_brief(exc)})") from exc
    if len(store) != manifest.passages:
        raise _damaged(index, name, what, f"holds {len(store)} vectors for {manifest.passages} passages")
    return store


def open_keyword_store(index: IndexDir, name: str, manifest: Manifest) -> KeywordStore | None:
    kind = manifest.settings["keyword_store"]
    what = STORE_FILES.get(kind, kind)
    try:
        store = load_keyword_store(kind, index.path(name))
    except Exception as exc:  # bm25s, numpy and json each raise their own kinds
        raise _damaged(index, name, what, f"cannot be read ({_brief(exc)})") from exc
    if store is not None and len(store) != manifest.passages:
        raise _damaged(index, name, what, f"holds {len(store)} passages, its manifest {manifest.passages}")
    return store


def open_sentence_store(index: IndexDir, name: str, manifest: Manifest) -> SentenceStore | None:
    """The generation's sentence vectors; None when it was built without them."""
    folder = index.path(name)
    if not SentenceStore.exists(folder):
        return None
    what = STORE_FILES["sentences"]
    try:
        store = SentenceStore.load(folder)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError … for a damaged .npy
        raise _damaged(index, name, what, f"cannot be read ({_brief(exc)})") from exc
    if len(store) != manifest.passages:
        raise _damaged(index, name, what, f"holds the sentences of {len(store)} passages, its manifest "
                                          f"{manifest.passages}")
    if store.dim != manifest.dim:
        raise _damaged(index, name, what, f"holds {store.dim}-dimension vectors, its manifest {manifest.dim}")
    return store


def _damaged(index: IndexDir, name: str, what: str, problem: str) -> IndexDamaged:
    """The error for a store that failed to open. Only now are the checksums read (opening checks sizes):
    they name the file whose bytes changed, which the library's own error seldom does."""
    found = index.problems(name, checksums=True)
    return IndexDamaged(index.root, found[0]) if found else index.damaged(name, what, problem)


def _brief(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
