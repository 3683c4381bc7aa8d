"""Where an index lives: a folder of generations (the default) or a Milvus collection.

Both are an `IndexLocation`: they say which generation is published (`pointer`), open it for reading as an
`index.stores.base.Generation`, check it (`verify`) and give the writer that builds the next one. The
engine (search/) holds a location and never asks which kind it is.

    location = open_index(StoreConfig.from_env(store="milvus", milvus_uri="http://127.0.0.1:19530"))

Settings: `--store` / `$SEMSEARCH_STORE` (`faiss`, the default, or `milvus`), `--index` /
`$SEMSEARCH_INDEX` (the folder; for Milvus it keeps only the local job journal), `--milvus-uri` /
`$SEMSEARCH_MILVUS_URI`, `--milvus-token` / `$SEMSEARCH_MILVUS_TOKEN`, `--collection` /
`$SEMSEARCH_MILVUS_COLLECTION` (default `semsearch`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from index import settings
from index.config import IndexSettings, default_index_dir
from index.generations import IndexDamaged, IndexDir, IndexFolderError, Pointer
from index.manifest import Manifest
from index.stores.base import Generation
from index.stores.factory import open_keyword_store, open_passages, open_sentence_store, open_vector_store

if TYPE_CHECKING:
    from index.builder import IndexBuilder
    from index.embedders.base import Embedder

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = settings.default("SEMSEARCH_MILVUS_COLLECTION")


@dataclass
class StoreConfig:
    """Which back end holds the index, and how to reach it."""

    store: str = "faiss"
    index: Path | None = None
    milvus_uri: str | None = None
    milvus_token: str | None = None
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def from_env(cls, **given: Any) -> StoreConfig:
        """The environment's settings; arguments given (not None) win, as CLI flags over variables."""
        env = {
            "store": settings.value("SEMSEARCH_STORE"),
            "index": default_index_dir(),
            "milvus_uri": settings.value("SEMSEARCH_MILVUS_URI"),
            "milvus_token": settings.value("SEMSEARCH_MILVUS_TOKEN"),
            "collection": settings.value("SEMSEARCH_MILVUS_COLLECTION"),
        }
        env.update({k: v for k, v in given.items() if v is not None})
        if env["index"] is not None:
            env["index"] = Path(env["index"])
        config = cls(**env)
        if config.store not in BACKENDS:
            raise IndexFolderError(f"unknown store {config.store!r}; choose one of {', '.join(BACKENDS)}")
        return config


@runtime_checkable
class IndexLocation(Protocol):
    """What the engine and the CLI need of wherever an index is kept."""

    root: Path  # a local folder: the index itself, or (Milvus) where the server keeps its job journal

    def __str__(self) -> str:
        """Where the index is, as `semsearch info` names it: the folder, or the server and collection."""
        ...

    def published(self) -> list[str]:
        """The published generations' names (empty: no index yet)."""
        ...

    def pointer(self) -> Pointer | None:
        """The published generation readers follow; None before the first build."""
        ...

    def readable_manifest(self) -> Manifest | None:
        """The current generation's manifest (its settings), or None when none can be read."""
        ...

    def open_generation(self, pointer: Pointer) -> Generation:
        """Open and check that generation; `IndexDamaged` when it cannot be used."""
        ...

    def verify(self, name: str, *, checksums: bool, pointer: Pointer | None = None) -> Manifest:
        """The generation's manifest after a full check; `IndexDamaged` naming what is wrong."""
        ...

    def damaged(self, name: str, file: str, problem: str) -> IndexDamaged: ...

    def builder(
        self, settings: IndexSettings | None = None, *, embedder: Embedder | None = None, **options: Any
    ) -> IndexBuilder:
        """The writer of the next generation (`index_paths`, `upsert`, `delete`)."""
        ...


class FolderIndex(IndexDir):
    """An index folder: generations of FAISS + BM25 + SQLite files (see `index.generations`)."""

    @classmethod
    def from_config(cls, config: StoreConfig) -> FolderIndex:
        return cls(config.index or default_index_dir())

    def __str__(self) -> str:
        return str(self.root)

    def open_generation(self, pointer: Pointer) -> Generation:
        name = pointer.name
        manifest = self.verify(name, checksums=False, pointer=pointer)
        passages = open_passages(self, name, manifest)
        try:
            vectors = open_vector_store(self, name, manifest)
            keywords = open_keyword_store(self, name, manifest)
            sentences = open_sentence_store(self, name, manifest)
            if keywords is not None and keywords.outdated:
                log.warning(
                    "the keyword index of %s was built by an older version of the analyser: queries match "
                    "its old terms (identifiers only by their pieces) until `semsearch index` runs on this "
                    "index again, which re-analyses it without re-embedding anything",
                    self.path(name),
                )
        except BaseException:
            passages.close()
            raise
        folder = self.path(name)
        return Generation(
            name, pointer.key, manifest, passages, vectors, keywords,
            size_bytes=lambda: sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
            sentences=sentences,
        )

    def builder(
        self, settings: IndexSettings | None = None, *, embedder: Embedder | None = None, **options: Any
    ) -> IndexBuilder:
        from index.builder import IndexBuilder

        return IndexBuilder(self.root, settings, embedder=embedder, **options)


# Store name -> "module:Class" of its location; each is made with `Class.from_config(StoreConfig)`.
BACKENDS: dict[str, str] = {
    "faiss": "index.backends:FolderIndex",
    "milvus": "index.milvus_index:MilvusIndex",
}


def open_index(config: StoreConfig) -> IndexLocation:
    module, _, cls = BACKENDS[config.store].partition(":")
    return getattr(importlib.import_module(module), cls).from_config(config)


def as_location(where: Path | str | IndexLocation | None) -> IndexLocation:
    """A location as given, a folder path as an index folder, None as the environment says."""
    if where is None:
        return open_index(StoreConfig.from_env())
    if isinstance(where, str | Path):
        return FolderIndex(where)
    return where
