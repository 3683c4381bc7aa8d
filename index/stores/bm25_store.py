"""BM25 keyword store over passage ids, on bm25s's sparse score matrix.

Scores are precomputed per (term, passage), as bm25s does: a query only sums the columns of its terms, so
it costs the length of those posting lists, not the size of the corpus. The analysis
(`index.analysis.tokenize`) gives two kinds of terms, which are scored as two BM25 fields with their own
length normalisation and summed, the bigram field at `GRAM_WEIGHT`:

    score(q, d) = sum over word terms t of q: BM25(t, d)  +  GRAM_WEIGHT * sum over bigram terms: BM25(t, d)

with Lucene's BM25 (bm25s method "lucene": idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term part
tf / (tf + k1 (1 - b + b dl / avgdl))), k1 = 0.9, b = 0.4. Every term of a field lands in its own column,
so the two fields still make one bm25s matrix. These settings were chosen on the dev eval sets (CMRC 2018,
XQuAD zh/en, keyword-only recall@1): bigrams as a field of their own at half weight were best or within
noise of the best on every set, and the only variant that was (words only lost about a point on Chinese,
bigrams merged into the words lost one on CMRC with short passages); k1 = 0.9, b = 0.4 (Anserini's
passage defaults) beat bm25s's 1.5 / 0.75 by 0.3 to 1 point on all three sets.

On disk (`folder / "keywords"`, written once per generation, then only read):
- bm25s's own files: `data.csc.index.npy`, `indices.csc.index.npy`, `indptr.csc.index.npy` (the score
  matrix), `params.index.json`, `vocab.index.json`; `bm25s.BM25.load` opens them. A query reads only
  the three arrays, memory-mapped, so searching never imports bm25s (and scipy with it);
- `terms.bin` + `terms.offsets.npy`: the vocabulary, sorted, so a query term is found by binary search in
  a memory map instead of parsing the JSON vocabulary on every load;
- `tf.npy`: the term frequency of every matrix entry; `ids.npy`: row → passage id; `sorted_ids.npy` and
  `order.npy`: the ids sorted and their rows; `meta.json`: settings and the analyser version.
The term frequencies make the index rebuildable without the text: the next generation takes the counts of
every passage it keeps from here and only tokenises new passages. Index construction is vectorised numpy
rather than `bm25s.BM25.index`, whose per-document Python loops took 94 s at 100k passages.
"""

from __future__ import annotations

import bisect
import json
import logging
import mmap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index import analysis
from index.stores.base import KeywordStore

log = logging.getLogger(__name__)

FOLDER = "keywords"
FORMAT = 1
METHOD = "lucene"
K1 = 0.9
B = 0.4
GRAM_WEIGHT = 0.5
FOUND_TERMS_KEPT = 50_000  # term → column lookups remembered per store (a few MB)
_TF_MAX = np.iinfo(np.uint16).max  # counts are stored as uint16; no passage repeats a term that often

_EMPTY = (np.zeros(0, np.float32), np.zeros(0, np.int64))


class _Vocabulary:
    """The sorted terms as one UTF-8 blob, each term followed by a newline, plus the offset of each term;
    a term is looked up by binary search on the bytes.

    Python orders strings by code point, which is also the byte order of their UTF-8 encoding, so the
    blob sorted as strings is sorted as bytes too and is searched without decoding. No term contains a
    newline (the analyser never keeps white space), so the whole blob also decodes in one split.
    """

    def __init__(self, blob: bytes | mmap.mmap, offsets: np.ndarray) -> None:
        self._blob = blob
        self._offsets = offsets  # start of each term, then the blob's length
        # Columns of recently looked-up terms: queries share most of their terms (question words,
        # common bigrams), and a binary search costs some 30 µs in Python. Dict operations are atomic,
        # so concurrent searches may share it; it is emptied when full rather than kept in LRU order.
        self._found: dict[str, int] = {}

    @classmethod
    def from_terms(cls, terms: list[str]) -> _Vocabulary:
        blob = "".join(t + "\n" for t in terms).encode("utf-8")
        ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == ord("\n")) + 1
        if len(ends) != len(terms):
            raise ValueError("a term contains a newline")
        return cls(blob, np.concatenate([[0], ends]).astype(np.int64))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        """The UTF-8 bytes of term `i` (what `bisect` compares)."""
        return self._blob[int(self._offsets[i]) : int(self._offsets[i + 1]) - 1]

    def terms(self) -> list[str]:
        """All terms, decoded at once."""
        return bytes(self._blob).decode("utf-8").split("\n")[:-1] if len(self) else []

    def find(self, term: str) -> int:
        """The column of `term`, or -1."""
        col = self._found.get(term)
        if col is None:
            key = term.encode("utf-8", "surrogatepass")
            i = bisect.bisect_left(self, key)  # type: ignore[call-overload]
            col = i if i < len(self) and self[i] == key else -1
            if len(self._found) >= FOUND_TERMS_KEPT:
                self._found.clear()
            self._found[term] = col
        return col

    def save(self, folder: Path) -> None:
        (folder / "terms.bin").write_bytes(bytes(self._blob))
        np.save(folder / "terms.offsets.npy", self._offsets)

    @classmethod
    def load(cls, folder: Path) -> _Vocabulary:
        offsets = _mapped(folder / "terms.offsets.npy")
        with open(folder / "terms.bin", "rb") as f:
            # mmap cannot map an empty file; an empty vocabulary needs no blob.
            blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if offsets[-1] > 0 else b""
        return cls(blob, offsets)


class BM25Store:
    """Lexical top-k over passage ids (the `KeywordStore` of `index.stores.base`).

    Immutable once built or loaded, so any number of threads may search one instance.
    """

    def __init__(self) -> None:
        self._ids = np.zeros(0, np.int64)  # row → passage id
        # Passage ids sorted, and the row of each: finds the rows of `allowed` ids by binary search.
        self._sorted_ids = np.zeros(0, np.int64)
        self._order = np.zeros(0, np.int64)
        self._vocab = _Vocabulary(b"", np.zeros(1, np.int64))
        # The CSC score matrix: "data" (float32), "indices" (int32 rows), "indptr" (int64 column starts).
        self._matrix = {"data": np.zeros(0, np.float32), "indices": np.zeros(0, np.int32),
                        "indptr": np.zeros(1, np.int64)}
        self._columns: dict[str, int] | None = None  # term -> column, for bm25s's JSON vocabulary
        self._tf = np.zeros(0, np.uint16)  # aligned with the score matrix's entries
        self._analyzer = analysis.ANALYZER_VERSION
        self.avg_lengths = (0.0, 0.0)  # mean words / bigrams per passage

    # --- building -------------------------------------------------------------------------------------
    def build(self, ids: np.ndarray, texts: Sequence[str], previous: KeywordStore | None = None) -> None:
        """Index these passages, reusing the term counts of `previous` (a `BM25Store` built with the same
        analyser) for every id it holds: passage ids are stable for unchanged text."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("passage ids must be unique")
        n = len(ids)

        prev_rows = np.full(n, -1, np.int64)  # row of each passage in `previous`, -1 if new there
        if isinstance(previous, BM25Store) and len(previous) and previous._analyzer == self._analyzer:
            prev_rows = previous._rows_of(ids)
        elif previous is not None and len(previous):
            log.info("previous keyword index is not reusable (other analyser or store); tokenising all")

        # Terms of the passages `previous` lacks: the only analysis this build does.
        new_rows = np.flatnonzero(prev_rows < 0)
        counts = [Counter(analysis.tokenize(texts[i])) for i in new_rows]
        new_terms = set().union(*counts) if counts else set()

        # (row, prev column, tf) of the kept passages, straight from the previous matrix.
        kept = prev_rows >= 0
        old_terms: list[str] = []
        if kept.any():
            assert isinstance(previous, BM25Store)
            to_new = np.full(len(previous), -1, np.int64)
            to_new[prev_rows[kept]] = np.flatnonzero(kept)
            indptr = previous._matrix["indptr"]
            old_cols = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
            old_rows = to_new[previous._matrix["indices"]]
            take = old_rows >= 0
            old_rows, old_cols, old_tf = old_rows[take], old_cols[take], np.asarray(previous._tf)[take]
            used_cols = np.flatnonzero(np.bincount(old_cols, minlength=len(indptr) - 1))
            all_old = previous._vocab.terms()
            old_terms = all_old if len(used_cols) == len(all_old) else [all_old[c] for c in used_cols]
        else:
            old_rows = old_cols = used_cols = np.zeros(0, np.int64)
            old_tf = np.zeros(0, np.uint16)

        # The new vocabulary: the terms still used, sorted (the order `_Vocabulary` searches in). Both
        # parts are sorted already, so the sort only merges them.
        terms = old_terms + sorted(new_terms.difference(old_terms))
        terms.sort()
        column = {t: i for i, t in enumerate(terms)}
        remap = np.zeros(int(used_cols[-1]) + 1 if len(used_cols) else 0, np.int64)
        remap[used_cols] = [column[t] for t in old_terms]
        sizes = [len(c) for c in counts]
        new_cols = np.fromiter((column[t] for c in counts for t in c), np.int64, count=sum(sizes))
        new_tf = np.fromiter((f for c in counts for f in c.values()), np.int64, count=sum(sizes))
        rows = np.concatenate([old_rows, np.repeat(new_rows, sizes)])
        cols = np.concatenate([remap[old_cols], new_cols])
        tf = np.concatenate([old_tf, np.minimum(new_tf, _TF_MAX).astype(np.uint16)])

        # Column-major, rows ascending within a column: the CSC layout bm25s stores and queries.
        # The kept entries come in that order already when rows keep their relative order (the builder
        # passes ids ascending), and a stable sort (timsort) then only merges the new entries in.
        order = np.argsort(cols * max(n, 1) + rows, kind="stable")
        rows, cols, tf = rows[order], cols[order], tf[order]
        is_gram = np.fromiter((t.startswith(analysis.GRAM_PREFIX) for t in terms), bool, count=len(terms))
        data, self.avg_lengths = _bm25_scores(rows, cols, tf, is_gram, n)
        indptr = np.zeros(len(terms) + 1, np.int64)
        np.cumsum(np.bincount(cols, minlength=len(terms)), out=indptr[1:])

        self._ids = ids
        self._order = np.argsort(ids)
        self._sorted_ids = ids[self._order]
        self._vocab = _Vocabulary.from_terms(terms)
        self._matrix = {"data": data, "indices": rows.astype(np.int32), "indptr": indptr}
        self._columns = column
        self._tf = tf
        log.debug("keyword index: %d passages (%d tokenised), %d terms", n, len(new_rows), len(terms))

    @property
    def outdated(self) -> bool:
        return self._analyzer != analysis.ANALYZER_VERSION

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each passage id in this store, -1 where absent."""
        if len(self) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self) - 1)
        return np.where(self._sorted_ids[pos] == ids, self._order[pos], -1)

    # --- searching ------------------------------------------------------------------------------------
    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, ids int64), best first, of at most k passages matching at least one query term.

        `allowed` (passage ids) restricts the ranking itself: every passage is scored, the others are
        masked out, then the top k are taken, so a filtered search finds k results whenever k allowed
        passages match.
        """
        n = len(self)
        if k <= 0 or n == 0 or (allowed is not None and len(allowed) == 0):
            return _EMPTY
        qtf = Counter(self._vocab.find(t) for t in analysis.query_tokens(query))
        qtf.pop(-1, None)
        if not qtf:
            return _EMPTY
        scores = self._scores(qtf)
        if allowed is None:
            rows = np.flatnonzero(scores > 0)
        else:
            rows = self._allowed_rows(np.asarray(allowed, dtype=np.int64).reshape(-1))
            rows = rows[scores[rows] > 0]
        if len(rows) > k:
            # Everything scoring at least the k-th best, so ties at the cut are broken by id below.
            kth = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
            rows = rows[scores[rows] >= kth]
        # Best first; equal scores by passage id, so results do not depend on the row order.
        rows = rows[np.lexsort((self._ids[rows], -scores[rows]))][:k]
        return scores[rows].astype(np.float32), self._ids[rows]

    def count(self, query: str, allowed: np.ndarray | None = None) -> int:
        """How many passages (of `allowed`) match at least one query term: the length `search` would
        have with no k. The union of the terms' posting lists, not a scoring (every posting scores > 0)."""
        n = len(self)
        if n == 0 or (allowed is not None and len(allowed) == 0):
            return 0
        cols = {self._vocab.find(t) for t in analysis.query_tokens(query)} - {-1}
        if not cols:
            return 0
        indptr, indices = self._matrix["indptr"], self._matrix["indices"]
        matching = np.zeros(n, dtype=bool)
        for col in cols:
            matching[indices[indptr[col] : indptr[col + 1]]] = True
        if allowed is None:
            return int(matching.sum())
        return int(matching[self._allowed_rows(np.asarray(allowed, dtype=np.int64).reshape(-1))].sum())

    def matched_terms(self, terms: Sequence[str], passage_ids: Sequence[int]) -> list[set[str]]:
        """For each passage id, which of `terms` it contains (read from `contains`)."""
        unique = list(dict.fromkeys(terms))
        present = self.contains(unique, passage_ids)
        return [{unique[j] for j in np.flatnonzero(row)} for row in present]

    def contains(self, terms: Sequence[str], passage_ids: Sequence[int]) -> np.ndarray:
        """(passages, terms) bool: whether each passage holds each term. A binary search of the passages'
        rows in each term's posting list (rows ascend within a column), instead of analysing their text
        again; an unknown id holds no term."""
        rows = self._rows_of(np.asarray(passage_ids, dtype=np.int64).reshape(-1))
        present = np.zeros((len(rows), len(terms)), dtype=bool)
        if not len(rows) or not (rows >= 0).any():
            return present
        indptr, indices = self._matrix["indptr"], self._matrix["indices"]
        for j, term in enumerate(terms):
            col = self._vocab.find(term)
            if col < 0 or indptr[col] == indptr[col + 1]:
                continue
            postings = indices[indptr[col] : indptr[col + 1]]
            at = np.minimum(np.searchsorted(postings, rows), len(postings) - 1)
            present[:, j] = (postings[at] == rows) & (rows >= 0)
        return present

    def idf(self, terms: Sequence[str]) -> np.ndarray:
        """Lucene's idf of each term from its posting list's length (the ranking's own weight)."""
        indptr = self._matrix["indptr"]
        df = np.zeros(len(terms), dtype=np.float64)
        for i, term in enumerate(terms):
            if (col := self._vocab.find(term)) >= 0:
                df[i] = indptr[col + 1] - indptr[col]
        return _idf(df, len(self))

    def _allowed_rows(self, allowed: np.ndarray) -> np.ndarray:
        """The rows of these passage ids (unknown ids ignored), ascending."""
        if len(allowed) * 16 < len(self):
            # Few ids: binary search (sorted needles are several times faster to search).
            rows = self._rows_of(np.sort(allowed))
            return np.unique(rows[rows >= 0])  # also drops repeated ids
        # Many: one membership pass over all ids (numpy uses a lookup table for dense int ranges),
        # cheaper than searching tens of thousands of ids.
        return np.flatnonzero(np.isin(self._ids, allowed))

    def _scores(self, qtf: Counter[int]) -> np.ndarray:
        """The BM25 score of every row: the sum of the query terms' columns (times their query counts)."""
        indptr, indices, data = self._matrix["indptr"], self._matrix["indices"], self._matrix["data"]
        cols = np.fromiter(qtf, np.int64, count=len(qtf))
        starts, ends = indptr[cols], indptr[cols + 1]
        rows = np.concatenate([indices[s:e] for s, e in zip(starts, ends, strict=True)])
        weights = np.concatenate(
            [data[s:e] * np.float32(qtf[c]) for c, s, e in zip(cols, starts, ends, strict=True)]
        )
        # bincount adds in float64 in one pass, several times faster than bm25s's np.add.at.
        return np.bincount(rows, weights=weights, minlength=len(self))

    # --- persistence ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write into `folder / "keywords"`."""
        out = Path(folder) / FOLDER
        out.mkdir(parents=True, exist_ok=True)
        model = _bm25s_model(self._matrix, len(self))
        # a loaded store: bm25s's JSON vocabulary made again from the sorted terms (their columns)
        model.vocab_dict = self._columns or {t: i for i, t in enumerate(self._vocab.terms())}
        model.save(out, show_progress=False)
        self._vocab.save(out)
        np.save(out / "tf.npy", np.asarray(self._tf))
        np.save(out / "ids.npy", np.asarray(self._ids))
        np.save(out / "sorted_ids.npy", np.asarray(self._sorted_ids))
        np.save(out / "order.npy", np.asarray(self._order))
        meta = {
            "format": FORMAT,
            "analyzer": self._analyzer,
            "method": METHOD,
            "k1": K1,
            "b": B,
            "gram_weight": GRAM_WEIGHT,
            "passages": len(self),
            "terms": len(self._vocab),
            "avg_lengths": list(self.avg_lengths),
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Store:
        """Open a saved store, memory-mapped (loading reads only small files, whatever the corpus size)."""
        src = Path(folder) / FOLDER
        meta = json.loads((src / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"keyword index {src} has format {meta.get('format')}, expected {FORMAT}")
        store = cls()
        store._analyzer = meta["analyzer"]
        store.avg_lengths = tuple(meta.get("avg_lengths", (0.0, 0.0)))
        # The matrix as `bm25s.BM25.load(src, mmap=True)` reads it, without importing bm25s; the JSON
        # vocabulary is for bm25s users: queries look terms up in `terms.bin`.
        store._matrix = {key: _mapped(src / f"{key}.csc.index.npy") for key in ("data", "indices", "indptr")}
        store._vocab = _Vocabulary.load(src)
        store._tf = _mapped(src / "tf.npy")
        store._ids = _mapped(src / "ids.npy")
        store._sorted_ids = _mapped(src / "sorted_ids.npy")
        store._order = _mapped(src / "order.npy")
        return store

    def __len__(self) -> int:
        return len(self._ids)


def _idf(df: np.ndarray, n: int) -> np.ndarray:
    """Lucene's idf: ln(1 + (N - df + 0.5) / (df + 0.5)), never negative."""
    return np.log1p((n - df + 0.5) / (df + 0.5))


def _bm25_scores(
    rows: np.ndarray, cols: np.ndarray, tf: np.ndarray, is_gram: np.ndarray, n: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """Lucene BM25 of every (row, column) entry, each field normalised by its own lengths; the bigram
    field weighted by GRAM_WEIGHT. Returns the scores and the mean field lengths."""
    tf = tf.astype(np.float32)
    field = is_gram[cols].astype(np.intp)  # 0 words, 1 bigrams
    df = np.bincount(cols, minlength=len(is_gram))  # entries are unique (row, column) pairs
    idf = _idf(df, n)
    column_weight = (idf * np.where(is_gram, GRAM_WEIGHT, 1.0)).astype(np.float32)
    # lengths[f, row]: tokens of field f in the passage; norm[f, row] = k1 (1 - b + b len / avglen)
    lengths = np.bincount(field * n + rows, weights=tf, minlength=2 * n).reshape(2, n)
    averages = lengths.mean(axis=1) if n else np.zeros(2)
    norm = (K1 * (1 - B + B * lengths / np.maximum(averages, 1e-9)[:, None])).astype(np.float32)
    data = column_weight[cols] * tf / (tf + norm[field, rows])
    return data.astype(np.float32), (float(averages[0]), float(averages[1]))


def _mapped(path: Path) -> np.ndarray:
    """A memory-mapped array as a plain ndarray view (np.memmap adds Python-level overhead to indexing)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _bm25s_model(matrix: dict[str, np.ndarray], n: int) -> Any:
    """A bm25s model around the CSC score matrix built here, to save it in bm25s's format."""
    import bm25s

    model = bm25s.BM25(method=METHOD, k1=K1, b=B)
    model.scores = {**matrix, "num_docs": n}
    model.vocab_dict = {}
    model.nonoccurrence_array = None  # only bm25l / bm25+ need one
    return model
