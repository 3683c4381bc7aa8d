"""The embedder protocol: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from index.errors import SemsearchError


@runtime_checkable
class Embedder(Protocol):
    """Turns queries and passages into unit vectors of one model.

    `name` is what the manifest records: an index built with one name refuses to be searched with another.
    """

    name: str
    dim: int
    max_tokens: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's query prompt."""
        ...

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, with the model's passage prompt."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens of each text, without prompt and special tokens (the chunker's budget unit)."""
        ...


class EmbedderError(SemsearchError, RuntimeError):
    """The model could not be loaded or used; the message says what to do (a 500 over HTTP: the server's
    setup, not the request, is at fault)."""

    code = "model_unavailable"


class PromptedEmbedder:
    """What the transformer backends share: the prompts and token counting of a Hugging Face tokenizer.

    A subclass sets `tokenizer`, `query_prompt` and `passage_prompt` and implements `_encode(texts, prompt)`.
    """

    tokenizer: Any
    query_prompt: str | None
    passage_prompt: str | None

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # One count for every backend, so chunk boundaries do not depend on the backend. verbose=False:
        # long paragraphs are measured precisely so that they can be split; the "longer than the maximum
        # sequence length" warning would only alarm the user.
        encoded = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise a model conversion or export across processes (test workers, API and indexer starting at
    once): it takes a minute and gigabytes of memory, so it is done once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; the atomic renames still prevent torn files
        yield
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
