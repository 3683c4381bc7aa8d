"""Choose an embedder by backend name, and share loaded models within a process."""

from __future__ import annotations

import threading

from index.config import EmbedderSettings
from index.embedders.base import Embedder, EmbedderError

_cache: dict[tuple, Embedder] = {}
_lock = threading.Lock()

# "torch": sentence-transformers float32 (the reference); "onnx": the same float32 model on onnxruntime;
# "onnx-int8": dynamically quantised to int8 (see index.embedders.onnx and docs/performance.md).
BACKENDS = ("torch", "onnx", "onnx-int8")


def create_embedder(settings: EmbedderSettings) -> Embedder:
    """Return the embedder for these settings; loading a model takes seconds, so it is loaded once."""
    key = (settings.model, settings.backend, settings.query_prompt, settings.passage_prompt)
    with _lock:
        if key in _cache:
            return _cache[key]
        if settings.backend == "torch":
            from index.embedders.sbert import SentenceTransformerEmbedder

            embedder: Embedder = SentenceTransformerEmbedder(settings)
        elif settings.backend in ("onnx", "onnx-int8"):
            from index.embedders.onnx import OnnxEmbedder

            embedder = OnnxEmbedder(settings, quantized=settings.backend == "onnx-int8")
        else:
            raise EmbedderError(
                f"unknown embedder backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        _cache[key] = embedder
        return embedder
