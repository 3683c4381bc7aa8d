"""Choose an embedder by backend name, and share loaded models within a process."""

from __future__ import annotations

import threading
from pathlib import Path

from index.config import EmbedderSettings
from index.embedders.base import Embedder, EmbedderError

_cache: dict[tuple, Embedder] = {}
_lock = threading.Lock()

# "torch": sentence-transformers float32 (the reference); "onnx": the same float32 model on onnxruntime;
# "onnx-int8": dynamically quantised to int8 (see index.embedders.onnx and docs/performance.md).
BACKENDS = ("torch", "onnx", "onnx-int8")
# The default: "onnx" for a local model folder (the same vectors as "torch", 1.5x faster to index and
# 3x faster per query here), "torch" for a hub name, which only sentence-transformers can fetch.
AUTO = "auto"


def resolve_backend(settings: EmbedderSettings) -> str:
    """The backend these settings mean: `auto` resolved, any other name as given."""
    if settings.backend != AUTO:
        return settings.backend
    from index.embedders.sbert import resolve_model_path

    return "onnx" if Path(resolve_model_path(settings.model)).is_dir() else "torch"


def create_embedder(settings: EmbedderSettings) -> Embedder:
    """Return the embedder for these settings; loading a model takes seconds, so it is loaded once."""
    backend = resolve_backend(settings)
    key = (settings.model, backend, settings.query_prompt, settings.passage_prompt)
    with _lock:
        if key in _cache:
            return _cache[key]
        if backend == "torch":
            from index.embedders.sbert import SentenceTransformerEmbedder

            embedder: Embedder = SentenceTransformerEmbedder(settings)
        elif backend in ("onnx", "onnx-int8"):
            from index.embedders.onnx import OnnxEmbedder

            embedder = OnnxEmbedder(settings, quantized=backend == "onnx-int8")
        else:
            raise EmbedderError(
                f"unknown embedder backend {settings.backend!r}; choose one of {AUTO}, {', '.join(BACKENDS)}"
            )
        _cache[key] = embedder
        return embedder
