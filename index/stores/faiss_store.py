"""FAISS vector store: exact inner product over unit vectors, with passage ids."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

FILE = "vectors.faiss"


class FaissStore:
    """`IndexIDMap2(IndexFlatIP)`: exact cosine search on normalised vectors, ids kept for removal."""

    def __init__(self, dim: int, index: Any | None = None) -> None:
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the store holds {self.dim}")
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, max(len(self), 1)))
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                n = queries.shape[0]
                return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return (
            np.vstack([self.index.reconstruct(int(i)) for i in ids])
            if len(ids)
            else np.zeros((0, self.dim), np.float32)
        )

    def save(self, folder: Path) -> None:
        # faiss.write_index only prints a failed write (disk full) to stderr and returns normally, which
        # would publish a truncated generation. Python's own file I/O raises OSError instead.
        data = faiss.serialize_index(self.index)
        with open(folder / FILE, "wb") as fh:
            fh.write(memoryview(data))
            fh.flush()
            os.fsync(fh.fileno())

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> FaissStore:
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(folder / FILE), flags)
        return cls(index.d, index)

    def __len__(self) -> int:
        return int(self.index.ntotal)
