"""The vectors of every passage's sentences, for the dense side's sentence-level evidence.

A passage vector averages everything the passage says. On a news archive many articles on one topic say
most of the same things, and the one sentence a question is about is diluted by the rest: the passage
cosines of one topic's articles lie within ~0.02 of each other. Each sentence embedded alone keeps what
it says sharp, so the engine scores a candidate passage by its own cosine and its best sentence's
(`search.engine`). Measured on every development set (docs/fusion.md): dense recall@1 on the news set
0.51 -> 0.65, hybrid cross-lingual +4 to +6 points, the Wikipedia sets level or better.

Sentences are cut by the one sentence rule (`index.text.split_sentences`); those shorter than
MIN_SENTENCE_CHARS (a dateline, "（完）") say nothing on their own and are left out, and a passage of a
single sentence has that sentence's vector, its own. Vectors are embedded as passages are (the same
prompt, the same embedding cache, keyed by the sentence's text), and kept in float16: ~1.9 KB a passage
for e5-small.

In an index folder the store is three .npy files under `sentences/`, written once per generation and
memory-mapped when read:

    ids.npy       int64 passage ids, ascending (every passage of the generation)
    offsets.npy   int64, len(ids) + 1: the sentences of ids[i] are rows offsets[i]:offsets[i+1]
    vectors.npy   float16 (sentences × dim) unit vectors
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.text import split_sentences

FOLDER = "sentences"
MIN_SENTENCE_CHARS = 4


def passage_sentences(text: str) -> list[str]:
    """The sentences of a passage that get a vector of their own (none for a one-sentence passage: its
    passage vector is its sentence's)."""
    pieces = [text[s:e] for s, e in split_sentences(text) if e - s >= MIN_SENTENCE_CHARS]
    return pieces if len(pieces) > 1 else []


def _block_max(cosines: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The largest of each block of `cosines`, blocks of these (non-zero) lengths one after another."""
    return np.maximum.reduceat(cosines, np.concatenate([[0], np.cumsum(lengths)[:-1]]))


def best_cosines(blocks: Sequence[np.ndarray | None], query: np.ndarray) -> np.ndarray:
    """For each block of (n, dim) sentence vectors, the cosine of its row most like the (dim,) unit `query`;
    NaN for None or an empty block (as `SentenceStore.best`, for stores that read blocks, not rows)."""
    out = np.full(len(blocks), np.nan, dtype=np.float64)
    some = [i for i, b in enumerate(blocks) if b is not None and len(b)]
    if some:
        rows = np.concatenate([blocks[i] for i in some]).astype(np.float32)
        lengths = np.asarray([len(blocks[i]) for i in some])  # type: ignore[arg-type]
        out[some] = _block_max(rows @ np.asarray(query, dtype=np.float32), lengths)
    return out


class SentenceStore:
    """Sentence vectors by passage id: read-only once built (see the module doc)."""

    def __init__(self, dim: int, ids: np.ndarray, offsets: np.ndarray, vectors: np.ndarray) -> None:
        if len(offsets) != len(ids) + 1 or int(offsets[-1]) != len(vectors) or vectors.shape[1:] != (dim,):
            raise ValueError(f"sentence store does not fit together: {len(ids)} passages, {len(offsets)} "
                             f"offsets, vectors {vectors.shape} for dimension {dim}")
        self.dim = dim
        self.ids, self.offsets, self.vectors = ids, offsets, vectors
        self._decoder: Any = None  # faiss' float16 codec, made on the first `best`

    @classmethod
    def build(cls, dim: int, parts: Iterable[tuple[int, np.ndarray]]) -> SentenceStore:
        """From (passage id, its (n, dim) sentence vectors) in any order; n may be 0."""
        rows = sorted(parts, key=lambda part: part[0])
        ids = np.asarray([pid for pid, _ in rows], dtype=np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("a passage id is given twice")
        counts = np.asarray([len(v) for _, v in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        blocks = [np.asarray(v, dtype=np.float16).reshape(-1, dim) for _, v in rows]
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=np.float16)
        return cls(dim, ids, offsets, vectors)

    def __len__(self) -> int:
        """The passages it covers (those without sentences of their own included)."""
        return len(self.ids)

    @property
    def sentence_count(self) -> int:
        return len(self.vectors)

    def _rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each id is in `self.ids`, and whether it is held there at all."""
        if not len(self.ids):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return at, self.ids[at] == ids

    def of(self, ids: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """The sentence vectors (float16, possibly none) of each id held; ids not held are left out."""
        wanted = np.asarray(ids, dtype=np.int64)
        at, held = self._rows(wanted)
        return {
            int(pid): self.vectors[self.offsets[k] : self.offsets[k + 1]]
            for pid, k, h in zip(wanted, at, held, strict=True)
            if h
        }

    def best(self, ids: Sequence[int] | np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each id, the cosine of its sentence most like the (dim,) unit `query`; NaN for a passage
        without sentences of its own or one the store does not hold."""
        wanted = np.asarray(ids, dtype=np.int64)
        out = np.full(len(wanted), np.nan, dtype=np.float64)
        if not len(wanted) or not len(self.ids):
            return out
        at, held = self._rows(wanted)
        starts = np.where(held, self.offsets[at], 0)
        counts = np.where(held, self.offsets[at + 1] - starts, 0)
        some = np.flatnonzero(counts > 0)
        if not len(some):
            return out
        lengths = counts[some]
        firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # every row of every passage asked for: each passage's start, then its following rows
        rows = np.repeat(starts[some] - firsts, lengths) + np.arange(int(lengths.sum()))
        cosines = self._decoded(rows) @ np.asarray(query, dtype=np.float32)
        out[some] = _block_max(cosines, lengths)
        return out

    def _decoded(self, rows: np.ndarray) -> np.ndarray:
        """These rows as float32. faiss converts float16 with the CPU's vector instructions, about twice as
        fast as numpy (whose conversion of a query's ~800 rows took most of the time of `best`)."""
        if self._decoder is None:
            import faiss

            self._decoder = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16)
        codes = np.ascontiguousarray(self.vectors[rows]).view(np.uint8)
        return self._decoder.sa_decode(codes)

    # --- files ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        target = Path(folder) / FOLDER
        target.mkdir(parents=True, exist_ok=True)
        np.save(target / "ids.npy", np.asarray(self.ids, dtype=np.int64))
        np.save(target / "offsets.npy", np.asarray(self.offsets, dtype=np.int64))
        np.save(target / "vectors.npy", np.asarray(self.vectors, dtype=np.float16))

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (Path(folder) / FOLDER / "ids.npy").exists()

    @classmethod
    def load(cls, folder: Path) -> SentenceStore:
        """Memory-mapped: a query reads only its candidates' rows."""
        source = Path(folder) / FOLDER
        ids = np.load(source / "ids.npy", allow_pickle=False)
        offsets = np.load(source / "offsets.npy", allow_pickle=False)
        # A plain ndarray over the mapping: np.memmap's own indexing costs ~0.2 ms a query.
        vectors = np.asarray(np.load(source / "vectors.npy", mmap_mode="r", allow_pickle=False))
        kinds = (ids.dtype, offsets.dtype, vectors.dtype)
        if kinds != (np.int64, np.int64, np.float16) or vectors.ndim != 2:
            raise ValueError(f"unexpected types: ids {ids.dtype}, offsets {offsets.dtype}, vectors "
                             f"{vectors.dtype} {vectors.shape}")
        return cls(int(vectors.shape[1]), ids, offsets, vectors)
