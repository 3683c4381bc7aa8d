"""FAISS vector store over unit vectors with int64 passage ids, its index chosen by size.

Three layouts, one contract (`index.stores.base.VectorStore`):

- ``flat``: ``IndexIDMap2(IndexFlatIP)``, exact inner product. Used up to ``exact_max`` vectors (default
  50,000): below that a full scan costs a few milliseconds and nothing beats exact results.
- ``ivf``: ``IndexIVFScalarQuantizer`` (inverted lists over k-means cells, residuals stored as float16 by
  default, or 8-bit codes). Chosen above ``exact_max`` because it is the one FAISS layout that keeps every
  operation the builder needs incremental: ``add`` assigns only the new vectors to their cells,
  ``remove_ids`` drops ids in place (a hashtable direct map finds them without a scan), and
  ``reconstruct`` returns a stored vector for "more like this". Measured at 1M clustered 384-d vectors
  (docs/performance.md, "## Scale"): fp16 codes, 2048 cells, 64 probed: recall@10 0.988, 0.8 GB; 8-bit
  codes: 0.959 and 0.41 GB. The cells are re-trained when the index has grown fourfold since training.
- ``hnsw``: ``IndexIDMap2(IndexHNSWSQ | IndexHNSWFlat)``, a graph. Faster per query, but FAISS's HNSW
  cannot remove vectors, so removals are tombstones filtered out at search time and the graph is rebuilt
  from the stored vectors once they pass ``TOMBSTONE_REBUILD`` of the index; a re-added id whose vector did
  not change (the builder's common case: a changed document keeps the ids of its unchanged passages) just
  loses its tombstone. Its build is slow on two cores (see docs), so it is opt-in (``kind="hnsw"``).

Filtered search (``allowed``) must still return k results whenever k allowed vectors exist. Small allowed
sets are searched exactly over their reconstructed vectors (cheaper than any index walk); larger ones go
through the index with an ``IDSelectorBitmap`` and a wider probe, and fall back to the exact path if the
walk still came back short.

Files in a generation folder: ``vectors.faiss`` (the FAISS index), ``vectors.json`` (layout and
parameters; absent in generations written before it existed, which are flat), ``vectors.deleted.npy``
(HNSW tombstones, when there are any).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index import settings
from index.config import FaissSettings

log = logging.getLogger(__name__)

FILE = "vectors.faiss"
META_FILE = "vectors.json"
DELETED_FILE = "vectors.deleted.npy"
KINDS = ("auto", "flat", "ivf", "hnsw")
CODECS = ("sq8", "fp16", "flat")

EXACT_FILTER_MAX = 20_000  # allowed sets up to this size are searched exactly over their own vectors
RETRAIN_GROWTH = 4.0  # IVF cells are re-trained once the index has grown this much since training
SHRINK_TO_FLAT = 0.5  # an auto index goes back to flat below this share of exact_max (hysteresis)
TOMBSTONE_REBUILD = 0.2  # HNSW: rebuild the graph once this share of its vectors are tombstones
SAME_VECTOR_COS = 0.99  # HNSW: a re-added id whose vector is this close to its stored (sq8) one is revived
_BITMAP_MAX_ID = 1 << 31  # ids below this are selected with a bitmap (256 MB at most), others with a set


def options_from(data: FaissSettings | dict[str, Any] | None) -> FaissSettings:
    """Checked settings from a `FaissSettings`, the dict a manifest holds (unknown keys ignored) or None."""
    if isinstance(data, FaissSettings):
        options = data
    else:
        known = {f.name for f in fields(FaissSettings)}
        options = FaissSettings(**{k: v for k, v in (data or {}).items() if k in known})
    if options.kind not in KINDS:
        raise ValueError(f"unknown faiss index kind {options.kind!r}; choose one of {', '.join(KINDS)}")
    if options.codec not in CODECS:
        raise ValueError(f"unknown faiss codec {options.codec!r}; choose one of {', '.join(CODECS)}")
    return options


def default_nlist(n: int) -> int:
    """Cells for n vectors: a power of two near 2·sqrt(n), so a list holds a few hundred vectors."""
    return int(min(16384, max(64, 2 ** round(math.log2(max(2 * math.sqrt(max(n, 1)), 1))))))


def default_nprobe(nlist: int) -> int:
    """Cells probed: 1/64 of them (at least 8). Measured at 1M clustered e5-like vectors, nlist 2048, fp16
    codes, one thread on an idle machine (bench/scale.py): nprobe 16 / 32 / 64 gave recall@10 0.926 /
    0.962 / 0.988 at p50 2.4 / 4.6 / 8.5 ms; 32 is the first above 0.95 and the last under 5 ms. Set
    FaissSettings.nprobe for more recall."""
    return int(min(nlist, max(8, nlist // 64)))


class FaissStore:
    """Dense top-k over passage ids; the layout follows the size (see the module docstring).

    Searches may run in many threads at once; add / remove / save are for the one builder thread.
    `options` are `index.config.FaissSettings` (or their dict form from a manifest).
    """

    def __init__(
        self,
        dim: int,
        index: Any | None = None,
        options: FaissSettings | dict[str, Any] | None = None,
        *,
        kind: str | None = None,
        trained_on: int = 0,
        deleted: np.ndarray | None = None,
    ) -> None:
        self.dim = dim
        self.options = options_from(options)
        if index is None:
            kind = "flat" if self.options.kind in ("auto", "flat") else self.options.kind
            # A forced ivf / hnsw is built on the first add (ivf needs vectors to train its cells).
            index = _new_flat(dim) if kind == "flat" else None
        self.kind = kind or _kind_of(index)
        self.index = index
        self.trained_on = trained_on
        # HNSW tombstones, sorted; always empty for flat and ivf, which remove in place.
        self._deleted = np.zeros(0, np.int64) if deleted is None else np.sort(np.asarray(deleted, np.int64))
        self._ids_cache: np.ndarray | None = None
        self._lock = threading.Lock()

    # --- writing ------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an auto store changes layout (flat → ivf, ivf re-trained) as its size grows."""
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the store holds {self.dim}")
        if len(vectors) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        self._ids_cache = None
        if self.index is None:  # a forced ann kind, first vectors: build it from them
            self.index = self._build(self.kind, ids, vectors)
            return
        if self.kind == "hnsw" and len(self._deleted):
            ids, vectors = self._revive(ids, vectors)
            if len(ids) == 0:
                return
        wanted = self._wanted_kind(len(self) + len(ids))
        if wanted != self.kind or (wanted == "ivf" and self._needs_retrain(len(self) + len(ids))):
            all_ids, all_vectors = self._live_vectors()
            self._rebuild(wanted, np.concatenate([all_ids, ids]), np.vstack([all_vectors, vectors]))
            return
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(ids) == 0 or self.index is None:
            return 0
        present = ids[self._contains(ids)]
        if len(present) == 0:
            return 0
        self._ids_cache = None
        if self.kind == "hnsw":
            self._deleted = np.union1d(self._deleted, present)
            if len(self._deleted) > TOMBSTONE_REBUILD * self.index.ntotal:
                self._rebuild(self._wanted_kind(len(self)), *self._live_vectors())
            return int(len(present))
        # A hashtable direct map (ivf) removes only through an IDSelectorArray; flat takes any selector.
        removed = int(self.index.remove_ids(faiss.IDSelectorArray(len(present), faiss.swig_ptr(present))))
        wanted = self._wanted_kind(len(self))
        if wanted != self.kind:
            self._rebuild(wanted, *self._live_vectors())
        return removed

    def _wanted_kind(self, n: int) -> str:
        if self.options.kind != "auto":
            return self.options.kind
        if self.kind == "flat":
            return "ivf" if n > self.options.exact_max else "flat"
        return "flat" if n < SHRINK_TO_FLAT * self.options.exact_max else self.kind

    def _needs_retrain(self, n: int) -> bool:
        return self.trained_on > 0 and n > RETRAIN_GROWTH * self.trained_on

    def _rebuild(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        log.info("vector index: rebuilding %d vectors as %s (was %s)", len(ids), kind, self.kind)
        self.index = self._build(kind, ids, vectors)
        self.kind = kind
        self._deleted = np.zeros(0, np.int64)
        self._ids_cache = None

    def _build(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> Any:
        """A new index of this kind holding these vectors (ivf cells trained on a sample of them)."""
        o = self.options
        n = len(ids)
        if kind == "flat":
            index = _new_flat(self.dim)
        elif kind == "ivf":
            nlist = o.nlist or default_nlist(n)
            nlist = max(1, min(nlist, n // 39 or 1))  # k-means wants ≥ 39 points a cell
            quantizer = faiss.IndexFlatIP(self.dim)
            if o.codec == "flat":
                index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                qtype = faiss.ScalarQuantizer.QT_8bit if o.codec == "sq8" else faiss.ScalarQuantizer.QT_fp16
                index = faiss.IndexIVFScalarQuantizer(
                    quantizer, self.dim, nlist, qtype, faiss.METRIC_INNER_PRODUCT, True
                )
            # 64 points a cell and 10 k-means rounds: the defaults (256, 25) cost ~10x more training time
            # on two cores for a recall difference within noise (measured at 1M, see docs).
            index.cp.max_points_per_centroid = 64
            index.cp.niter = 10
            rng = np.random.default_rng(0)
            sample = vectors
            if n > 64 * nlist:
                sample = vectors[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            index.train(sample)
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove and reconstruct by id, no scan
            index.nprobe = o.nprobe or default_nprobe(nlist)
            self.trained_on = n
        elif kind == "hnsw":
            if o.codec == "flat":
                inner = faiss.IndexHNSWFlat(self.dim, o.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            else:
                qtype = faiss.ScalarQuantizer.QT_8bit if o.codec == "sq8" else faiss.ScalarQuantizer.QT_fp16
                inner = faiss.IndexHNSWSQ(self.dim, qtype, o.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                inner.train(vectors[: min(n, 100_000)])
            inner.hnsw.efConstruction = o.ef_construction
            inner.hnsw.efSearch = o.ef_search
            index = faiss.IndexIDMap2(inner)
            self.trained_on = n
        else:
            raise ValueError(f"unknown faiss index kind {kind!r}")
        if n:
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        return index

    def _revive(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HNSW: ids coming back with their old vector lose their tombstone instead of being added twice.

        Ids coming back with another vector cannot be added next to their old entry (the id map would
        hold both), so the graph is rebuilt without the tombstones first.
        """
        back = np.isin(ids, self._deleted)
        if not back.any():
            return ids, vectors
        stored = self.index.reconstruct_batch(ids[back])
        same = np.einsum("ij,ij->i", stored, vectors[back]) >= SAME_VECTOR_COS
        revived = ids[back][same]
        self._deleted = np.setdiff1d(self._deleted, revived, assume_unique=True)
        if not same.all():
            self._rebuild(self.kind, *self._live_vectors())
        keep = ~back
        keep[np.flatnonzero(back)[~same]] = True
        return ids[keep], vectors[keep]

    # --- reading ------------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        nq = queries.shape[0]
        n = len(self)
        k = max(1, min(k, max(n, 1)))
        if self.index is None or n == 0:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        _single_threaded(nq)
        if allowed is not None:
            allowed = np.unique(np.asarray(allowed, dtype=np.int64).reshape(-1))
            if len(allowed) == 0:
                return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
            if self.kind != "flat" and len(allowed) <= EXACT_FILTER_MAX:
                return self._exact_over(queries, k, allowed)
        params = self._params(allowed, n)
        scores, ids = self.index.search(queries, k, params=params)
        if allowed is not None and self.kind != "flat":
            # A selective filter can starve the index walk; the exact path always finds what exists.
            expected = min(k, len(allowed))
            if (ids[:, expected - 1] < 0).any():
                return self._exact_over(queries, k, allowed)
        return scores, ids

    def _params(self, allowed: np.ndarray | None, n: int) -> Any:
        """Search parameters: the id selector (allowed minus tombstones) and, with a filter, a wider probe."""
        selector = None
        keep: list[Any] = []  # SWIG selectors keep no reference to their parts: hold them until the search
        if allowed is not None:
            selector = _selector(allowed, keep)
        if len(self._deleted):
            deleted = _selector(self._deleted, keep)
            inverted = faiss.IDSelectorNot(deleted)
            keep.append(inverted)
            selector = inverted if selector is None else faiss.IDSelectorAnd(selector, inverted)
        if selector is None:
            return None
        keep.append(selector)
        share = min(1.0, len(allowed) / max(n, 1)) if allowed is not None else 1.0
        if self.kind == "ivf":
            ivf = faiss.extract_index_ivf(self.index)
            nprobe = min(ivf.nlist, math.ceil(ivf.nprobe / share))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        elif self.kind == "hnsw":
            ef = self.options.ef_search
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=min(4096, math.ceil(ef / share)))
        else:
            params = faiss.SearchParameters(sel=selector)
        params.referenced_objects = keep  # ties the selectors' lifetime to the parameters
        return params

    def _exact_over(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the allowed ids' own vectors (those present in the store)."""
        present = allowed[self._contains(allowed)]
        nq = queries.shape[0]
        if len(present) == 0:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        scores = queries @ self.vectors(present).T
        k = min(k, len(present))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(present) else np.tile(
            np.arange(len(present)), (nq, 1)
        )
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return (
            np.take_along_axis(top_scores, order, axis=1).astype(np.float32),
            present[np.take_along_axis(top, order, axis=1)],
        )

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of these ids (decoded from fp16 / 8-bit codes: cosine to the original ≥ 0.999)."""
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        missing = ids[~self._contains(ids)]
        if len(missing):
            raise KeyError(f"no vector for id {int(missing[0])}")
        return self.index.reconstruct_batch(ids)

    def ids(self) -> np.ndarray:
        """Every live id, sorted (cached until the next change)."""
        cached = self._ids_cache
        if cached is not None:
            return cached
        with self._lock:
            if self._ids_cache is None:
                self._ids_cache = np.setdiff1d(_all_ids(self.index, self.kind), self._deleted)
            return self._ids_cache

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        live = self.ids()
        pos = np.minimum(np.searchsorted(live, ids), max(len(live) - 1, 0))
        return (live[pos] == ids) if len(live) else np.zeros(len(ids), bool)

    def _live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self.ids()
        if self.index is None or len(ids) == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return ids, self.index.reconstruct_batch(ids)

    def describe(self) -> dict[str, Any]:
        """The layout and its parameters, as recorded in the manifest and `vectors.json`."""
        info: dict[str, Any] = {"kind": self.kind, "vectors": len(self), "options": asdict(self.options)}
        if self.kind == "ivf" and self.index is not None:
            ivf = faiss.extract_index_ivf(self.index)
            info.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe), trained_on=self.trained_on)
            info["codec"] = self.options.codec
        elif self.kind == "hnsw" and self.index is not None:
            hnsw = faiss.downcast_index(self.index.index).hnsw
            info.update(
                m=self.options.hnsw_m, ef_construction=int(hnsw.efConstruction),
                ef_search=int(hnsw.efSearch), tombstones=len(self._deleted), trained_on=self.trained_on,
            )
            info["codec"] = self.options.codec
        return info

    # --- persistence --------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        index = self.index if self.index is not None else _new_flat(self.dim)
        # faiss.write_index only prints a failed write (disk full) to stderr and returns normally, which
        # would publish a truncated generation. Python's own file I/O raises OSError instead.
        data = faiss.serialize_index(index)
        with open(folder / FILE, "wb") as fh:
            fh.write(memoryview(data))
            fh.flush()
            os.fsync(fh.fileno())
        del data
        meta = self.describe() | {"kind": self.kind if self.index is not None else "flat"}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))
        if len(self._deleted):
            np.save(folder / DELETED_FILE, self._deleted)

    @classmethod
    def load(
        cls, folder: Path, mmap: bool = False, options: FaissSettings | dict[str, Any] | None = None
    ) -> FaissStore:
        """Open a saved store. `options` (the builder's current settings) replace the saved ones for
        future adds; searches use the parameters saved in the index itself."""
        folder = Path(folder)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(folder / FILE), flags)
        meta: dict[str, Any] = {}
        if (folder / META_FILE).exists():
            meta = json.loads((folder / META_FILE).read_text())
        if options is None:
            options = meta.get("options")
        deleted = np.load(folder / DELETED_FILE) if (folder / DELETED_FILE).exists() else None
        return cls(
            index.d, index, options, kind=meta.get("kind") or _kind_of(index),
            trained_on=int(meta.get("trained_on", 0)), deleted=deleted,
        )

    def __len__(self) -> int:
        if self.index is None:
            return 0
        return int(self.index.ntotal) - len(self._deleted)


def _new_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _kind_of(index: Any) -> str:
    if index is None:
        return "flat"
    if isinstance(faiss.downcast_index(index), faiss.IndexIVF):
        return "ivf"
    inner = getattr(faiss.downcast_index(index), "index", None)
    if inner is not None and "HNSW" in type(faiss.downcast_index(inner)).__name__:
        return "hnsw"
    return "flat"


def _all_ids(index: Any, kind: str) -> np.ndarray:
    """Every id the FAISS index holds (tombstones included), sorted."""
    if index is None or index.ntotal == 0:
        return np.zeros(0, np.int64)
    if kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        lists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if lists.list_size(i)
        ]
        return np.sort(np.concatenate(parts).astype(np.int64))
    return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))


def _selector(ids: np.ndarray, keep: list[Any]) -> Any:
    """An id selector for sorted unique ids: a bitmap (O(1) membership, built by numpy) when the ids are
    small enough, else FAISS's hash set."""
    if len(ids) and ids[0] >= 0 and ids[-1] < _BITMAP_MAX_ID:
        bits = np.zeros(int(ids[-1]) + 1, bool)
        bits[ids] = True
        packed = np.packbits(bits, bitorder="little")  # FAISS reads bit (id & 7) of byte id >> 3
        keep.append(packed)
        return faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))  # size in bytes
    batch = faiss.IDSelectorBatch(ids)
    keep.append(batch)
    return batch


_threads = threading.local()


def _single_threaded(nq: int) -> None:
    """One OpenMP thread for searches of a query or two, all threads for batches.

    A single query is too small to split: on a busy machine OpenMP's spin-waiting threads made a 100k flat
    search 4x slower with two threads than with one (measured: 162 ms vs 45 ms). omp_set_num_threads sets
    the calling thread's own value, so server threads do not affect the builder.
    """
    want = 1 if nq < 4 else settings.threads()
    if getattr(_threads, "n", None) != want:
        faiss.omp_set_num_threads(want)
        _threads.n = want
