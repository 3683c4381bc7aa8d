"""The embedder protocol: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


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


class EmbedderError(RuntimeError):
    """The model could not be loaded or used; the message says what to do."""
