"""An index kept entirely in Milvus: the collections, and the read views a search goes through.

Three collections per index (`NAME` is the configured collection):

- `NAME`: one row per passage — its vector (HNSW, inner product on unit vectors, i.e. cosine), its text,
  offsets and word bounds, its document's filterable metadata (doc_id, source, categories, date), the
  normalised text that Milvus' BM25 function (jieba analyzer) turns into the sparse keyword vector, and its
  distinct analysed terms (`index.analysis.tokenize`: words and bigrams, whitespace-analysed), for the
  hybrid ranking's word and bigram shares, phrase runs and idf; and its sentences' vectors
  (`index.stores.sentence_store`), float16 in base64, in the same row, so they are written, replaced and
  seen together with their passage.
- `NAME__docs`: one row per document (more for a long text, split into parts): metadata and text.
- `NAME__state`: one row, the published state — the generation number readers see, the rows a write
  has replaced but not yet removed, the next passage id, and the manifest.
- `NAME__terms`: one row per analysed term, keyed by it: how many passages hold it (its document
  frequency) at each of the last few generations that changed it, `born` the last of them. A reader at G
  takes each term's count of the newest generation `<= G`: the hybrid ranking's idf for all of a query's
  terms in one look-up by key, where counting each term's matches (`text_match`) costs a scan per term.

Every passage and document row carries `born`, the generation that wrote it. A reader at generation G sees
exactly the rows with `born <= G` that the state does not list as replaced: one expression, applied inside
every Milvus search and query, so filters and visibility are both evaluated by Milvus during retrieval
(see `index.milvus_index` for how a write moves G).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from index.manifest import Manifest
from index.stores.bm25_store import _idf
from index.stores.passages import Filters, PassageRow
from index.stores.sentence_store import best_cosines

log = logging.getLogger(__name__)

DOCS_SUFFIX = "__docs"
STATE_SUFFIX = "__state"
TERMS_SUFFIX = "__terms"
SUFFIXES = ("", DOCS_SUFFIX, STATE_SUFFIX, TERMS_SUFFIX)  # every collection of an index
STATE_KEY = "state"
TEXT_MAX = 65_535  # bytes of a VARCHAR in Milvus
DOC_PART_CHARS = 16_000  # a document's text is stored in parts of this many characters (≤ 64 KB UTF-8)
ID_CHUNK = 1000  # ids per `in [...]` expression
SEARCH_LIMIT = 16_384  # the most rows one Milvus search or query returns
DF_CACHE_TERMS = 200_000  # document frequencies a generation's reader keeps before it starts afresh
TERM_HISTORY = 4  # the counts of a term's last generations its row keeps, for searches still reading them
BM25_ANALYZER = {"tokenizer": "jieba"}  # accepted by milvus-lite 3.2 and Milvus 2.5+ servers
HNSW = {"M": 16, "efConstruction": 200}
SENTENCES_FIELD = "sentences"  # absent from collections created before sentence vectors


def quote(value: str) -> str:
    """A string literal of Milvus' expression language (its escapes are JSON's)."""
    return json.dumps(value, ensure_ascii=False)


def id_list(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


def connect(uri: str, token: str | None) -> Any:
    from pymilvus import MilvusClient

    # Every paged query against milvus-lite warns that it fell back to a client-side timestamp.
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    return MilvusClient(uri=uri, token=token or "")


def load_collections(client: Any, name: str) -> None:
    """Load the index's collections that exist: a restarted Milvus (milvus-lite always) holds them
    released, and every search, query or get of a released collection fails."""
    for collection in (name + suffix for suffix in SUFFIXES):
        if client.has_collection(collection):
            client.load_collection(collection)


def create_collections(client: Any, name: str, dim: int) -> None:
    """The collections of a new index (an existing one is left alone)."""
    from pymilvus import DataType, Function, FunctionType

    if not client.has_collection(name):
        s = client.create_schema(auto_id=False)
        s.add_field("passage_id", DataType.INT64, is_primary=True)
        s.add_field("doc_id", DataType.VARCHAR, max_length=4096)
        s.add_field("ordinal", DataType.INT64)
        s.add_field("paragraph", DataType.INT64)
        s.add_field("start", DataType.INT64)
        s.add_field("stop", DataType.INT64)
        s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
        s.add_field("hash", DataType.VARCHAR, max_length=64)
        s.add_field("bounds", DataType.VARCHAR, max_length=TEXT_MAX)
        # Simplified script, half-width, lower case (`index.analysis.normalize`): traditional-script queries
        # match as they do in the folder index.
        s.add_field("norm", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True,
                    analyzer_params=BM25_ANALYZER)
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("words", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True, enable_match=True,
                    analyzer_params={"tokenizer": "whitespace"})
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field(SENTENCES_FIELD, DataType.VARCHAR, max_length=TEXT_MAX)  # "" without sentence vectors
        s.add_field("source", DataType.VARCHAR, max_length=1024)
        s.add_field("categories", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=256,
                    max_length=512)
        s.add_field("date", DataType.VARCHAR, max_length=32)
        s.add_field("born", DataType.INT64)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["norm"],
                                output_field_names=["sparse"]))
        ip = client.prepare_index_params()
        ip.add_index("vector", index_type="HNSW", metric_type="IP", params=HNSW)
        ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")
    _small_collection(client, name + DOCS_SUFFIX, [
        ("row", "INT64", {"is_primary": True}), ("doc_id", "VARCHAR", {"max_length": 4096}),
        ("part", "INT64", {}), ("text", "VARCHAR", {"max_length": TEXT_MAX}),
        ("meta", "VARCHAR", {"max_length": TEXT_MAX}), ("born", "INT64", {}),
    ])
    _small_collection(client, name + STATE_SUFFIX, [
        ("key", "VARCHAR", {"is_primary": True, "max_length": 64}),
        ("state", "VARCHAR", {"max_length": TEXT_MAX}),
    ])
    create_terms_collection(client, name)


def create_terms_collection(client: Any, name: str) -> None:
    """The document frequencies of an index's terms (module doc); an index made before it gets it on its
    next write."""
    _small_collection(client, name + TERMS_SUFFIX, [
        ("term", "VARCHAR", {"is_primary": True, "max_length": TEXT_MAX}), ("born", "INT64", {}),
        ("counts", "VARCHAR", {"max_length": 1024}),
    ])


def read_term_counts(client: Any, name: str, terms: Sequence[str]) -> dict[str, list[list[int]]]:
    """Each listed term's `[[generation, passages holding it], …]` (oldest first), by key; a term the table
    has no row for is left out."""
    out: dict[str, list[list[int]]] = {}
    for lo in range(0, len(terms), ID_CHUNK):
        for row in client.get(name + TERMS_SUFFIX, ids=list(terms[lo : lo + ID_CHUNK]),
                              output_fields=["counts"]):
            out[row["term"]] = json.loads(row["counts"])
    return out


def count_at(counts: list[list[int]] | None, generation: int) -> int | None:
    """A term's passages at `generation` from its counts (`read_term_counts`): 0 where it has no row or
    only newer ones and none were dropped (it came later), None where older ones were dropped
    (`TERM_HISTORY`) and this generation's is not among those kept."""
    if not counts:
        return 0
    known = [n for g, n in counts if g <= generation]
    if known:
        return known[-1]
    return 0 if len(counts) < TERM_HISTORY else None


def term_rows(
    previous: dict[str, list[list[int]]], changes: Counter[str], born: int
) -> list[dict[str, Any]]:
    """The rows of the terms whose count a write changes (`changes`, by term), each with its counts so far
    (`previous`) and the new one, the oldest beyond `TERM_HISTORY` dropped."""
    rows = []
    for term, change in changes.items():
        counts = [c for c in previous.get(term, []) if c[0] < born]
        now = (counts[-1][1] if counts else 0) + change
        rows.append(term_row(term, (counts + [[born, now]])[-TERM_HISTORY:]))
    return rows


def term_row(term: str, counts: list[list[int]]) -> dict[str, Any]:
    """A `NAME__terms` row: the term's counts, oldest first, `born` the generation of the last."""
    return {"term": term, "born": counts[-1][0], "counts": json.dumps(counts), "pad": PAD}


def has_sentences_field(client: Any, name: str) -> bool:
    """Whether the passage collection can hold sentence vectors (one created before them cannot)."""
    return any(f["name"] == SENTENCES_FIELD for f in client.describe_collection(name)["fields"])


def pack_sentences(vectors: np.ndarray, dim: int) -> tuple[str, int]:
    """A passage's sentence vectors as the row holds them (float16, base64), and how many it holds. A VARCHAR
    holds 63 of e5-small's (384 dimensions): a passage with more (the most in the development sets' 9,742
    passages is 21) keeps the first 63."""
    fit = (TEXT_MAX // 4 * 3) // (2 * dim)
    rows = np.asarray(vectors, dtype=np.float16).reshape(-1, dim)[:fit]
    return base64.b64encode(rows.tobytes()).decode("ascii"), len(rows)


def unpack_sentences(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).reshape(-1, dim)


def _small_collection(client: Any, name: str, fields: list[tuple[str, str, dict[str, Any]]]) -> None:
    """A collection of scalar rows. Milvus wants a vector field in every collection: a 2-d constant."""
    from pymilvus import DataType

    if client.has_collection(name):
        return
    s = client.create_schema(auto_id=False)
    for fname, kind, options in fields:
        s.add_field(fname, getattr(DataType, kind), **options)
    s.add_field("pad", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index("pad", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


PAD = [1.0, 0.0]


@dataclass
class State:
    """The published state (the `__state` row)."""

    uid: str  # the index's identity: a collection dropped and made again is another index
    generation: int = 0
    next_id: int = 1
    replaced_passages: list[int] = field(default_factory=list)
    replaced_docs: list[int] = field(default_factory=list)
    manifest: Manifest | None = None  # None until the first generation is published

    @property
    def terms_from(self) -> int:
        """The first generation whose term counts `NAME__terms` holds whole (0: none yet, an index made
        before the table). In the manifest's store entry, which a semsearch that does not know it keeps
        as it is, where a new key of the state row would stop it reading the state."""
        store = self.manifest.extra.get("store") if self.manifest is not None else None
        return int(store.get("terms_from", 0)) if isinstance(store, dict) else 0

    def to_row(self) -> dict[str, Any]:
        state = vars(self) | {"manifest": self.manifest.to_dict() if self.manifest is not None else {}}
        return {"key": STATE_KEY, "state": json.dumps(state, ensure_ascii=False), "pad": PAD}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> State:
        state = json.loads(row["state"])
        manifest = state.pop("manifest", None)
        return cls(**state, manifest=Manifest.from_dict(manifest) if manifest else None)


def read_state(client: Any, name: str) -> State | None:
    if not client.has_collection(name + STATE_SUFFIX):
        return None
    rows = client.query(name + STATE_SUFFIX, filter=f"key == {quote(STATE_KEY)}", output_fields=["state"])
    return State.from_row(rows[0]) if rows else None


def query_all(
    client: Any, collection: str, expr: str, fields: list[str], batch: int = 1000
) -> Iterator[dict]:
    """Every row matching `expr` (Milvus caps one query's rows; the iterator pages through them)."""
    it = client.query_iterator(collection, batch_size=batch, filter=expr, output_fields=fields)
    try:
        while rows := it.next():
            yield from rows
    finally:
        it.close()


def query_in(client: Any, collection: str, column: str, values: Sequence[Any], expr: str,
             fields: list[str]) -> list[dict]:
    """Rows whose `column` is one of `values` (in chunks: an expression has a length limit)."""
    out: list[dict] = []
    for lo in range(0, len(values), ID_CHUNK):
        part = values[lo : lo + ID_CHUNK]
        listed = id_list(part) if part and isinstance(part[0], int | np.integer) else \
            "[" + ",".join(quote(v) for v in part) + "]"
        out += client.query(collection, filter=f"({expr}) and {column} in {listed}", output_fields=fields,
                            limit=SEARCH_LIMIT)
    return out


def count(client: Any, collection: str, expr: str) -> int:
    return int(client.query(collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])


@dataclass
class MilvusSelection:
    """The passages a filter admits: an expression evaluated by Milvus inside each search."""

    expr: str
    size: int

    def __len__(self) -> int:
        return self.size


class MilvusView:
    """One collection as it is at one published generation (see the module doc)."""

    def __init__(self, client: Any, name: str, state: State) -> None:
        self.client, self.name, self.state = client, name, state
        self.docs = name + DOCS_SUFFIX
        g = state.generation
        self.passage_expr = f"born <= {g}"
        if state.replaced_passages:
            self.passage_expr += f" and passage_id not in {id_list(state.replaced_passages)}"
        self._replaced = set(state.replaced_passages)
        self.doc_expr = f"born <= {g}"
        if state.replaced_docs:
            self.doc_expr += f" and row not in {id_list(state.replaced_docs)}"
        self._passages: int | None = None
        self._df: dict[str, int] = {}  # a generation never changes: a term's df is read once
        self._warned = False

    @property
    def passage_count(self) -> int:
        if self._passages is None:
            self._passages = count(self.client, self.name, self.passage_expr)
        return self._passages

    def passage_rows(self, ids: Iterable[int], fields: list[str]) -> list[dict]:
        """The rows of these passage ids this generation sees (`passage_expr`), looked up by key: Milvus
        (milvus-lite at least) finds keys at once, but scans for any other clause beside them."""
        wanted, g = [int(i) for i in ids], self.state.generation
        out: list[dict] = []
        for lo in range(0, len(wanted), ID_CHUNK):
            rows = self.client.get(self.name, ids=wanted[lo : lo + ID_CHUNK], output_fields=[*fields, "born"])
            out += [r for r in rows if r["born"] <= g and r["passage_id"] not in self._replaced]
        return out

    def document_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """How many of this generation's passages hold each stored term (`stored_term`): read by key from
        `NAME__terms`, one look-up for all of them; counted by `text_match`, a scan per term, where the
        table lacks this generation (an index made before it and not written since, or a search that
        outlived several writes)."""
        known = self._df  # searches run in threads: each works on the dict it started with
        missing = list(dict.fromkeys(t for t in terms if t not in known))
        if missing:
            read = self._read(missing)
            if len(known) > DF_CACHE_TERMS:
                known = self._df = {}
            known.update(read)
        return np.asarray([known[t] for t in terms], dtype=np.float64)

    def _read(self, terms: list[str]) -> dict[str, int]:
        if not 0 < self.state.terms_from <= self.state.generation:
            if not self._warned:
                self._warned = True
                log.warning("collection %s has no table of word counts (made by an older semsearch), so "
                            "word rarity is counted term by term: slower, and milvus-lite's `text_match` "
                            "counts bigrams loosely. Run `semsearch index` once to build it.", self.name)
            return self._counted(terms)
        held = read_term_counts(self.client, self.name, [t for t in terms if t])
        df = {t: count_at(held.get(t), self.state.generation) for t in terms}
        lost = [t for t, n in df.items() if n is None]
        return {t: n for t, n in df.items() if n is not None} | (self._counted(lost) if lost else {})

    def _counted(self, terms: list[str]) -> dict[str, int]:
        return {
            t: count(self.client, self.name, f"{self.passage_expr} and text_match(words, {quote(t)})")
            if t and not any(c.isspace() for c in t) else 0
            for t in terms
        }


PASSAGE_FIELDS = ["passage_id", "doc_id", "ordinal", "paragraph", "start", "stop", "text", "hash"]
META_KEYS = ("title", "date", "author", "source", "url", "categories", "path", "pages")


def _meta_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata fields of a document's stored meta; `pages` is [] in rows written before it."""
    return {k: meta.get(k) for k in META_KEYS} | {"pages": meta.get("pages") or []}


def _row(r: dict[str, Any]) -> PassageRow:
    return PassageRow(r["passage_id"], r["doc_id"], r["ordinal"], r["paragraph"], r["start"], r["stop"],
                      r["text"], r["hash"])


class MilvusPassages:
    """`PassageReader` over the passage and document collections."""

    def __init__(self, view: MilvusView) -> None:
        self.view = view
        self.client = view.client

    def count_documents(self) -> int:
        return count(self.client, self.view.docs, f"{self.view.doc_expr} and part == 0")

    def count_passages(self) -> int:
        return self.view.passage_count

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        rows = self.view.passage_rows(ids, PASSAGE_FIELDS)
        return {r["passage_id"]: _row(r) for r in rows}

    def word_bounds(self, ids: Sequence[int]) -> dict[int, frozenset[int]]:
        rows = self.view.passage_rows(ids, ["passage_id", "bounds"])
        return {r["passage_id"]: frozenset(json.loads(r["bounds"])) for r in rows if r["bounds"]}

    def passage_ids_of(self, doc_id: str) -> list[int]:
        expr = f"{self.view.passage_expr} and doc_id == {quote(doc_id)}"
        rows = self.client.query(self.view.name, filter=expr, output_fields=["passage_id", "ordinal"],
                                 limit=SEARCH_LIMIT)
        return [r["passage_id"] for r in sorted(rows, key=lambda r: r["ordinal"])]

    def document(self, doc_id: str) -> dict[str, Any] | None:
        rows = self.client.query(self.view.docs, filter=f"{self.view.doc_expr} and doc_id == {quote(doc_id)}",
                                 output_fields=["part", "text", "meta"], limit=SEARCH_LIMIT)
        if not rows:
            return None
        rows.sort(key=lambda r: r["part"])
        meta = json.loads(rows[0]["meta"])
        doc = {"doc_id": doc_id, **_meta_fields(meta)}
        doc["text"] = "".join(r["text"] for r in rows)
        doc["paragraphs"] = [tuple(p) for p in meta["paragraphs"]]
        doc["content_hash"] = meta["content_hash"]
        return doc

    def _metas(self) -> Iterator[dict[str, Any]]:
        for r in query_all(self.client, self.view.docs, f"{self.view.doc_expr} and part == 0",
                           ["doc_id", "meta"]):
            meta = json.loads(r["meta"])
            yield {"doc_id": r["doc_id"], **_meta_fields(meta),
                   "content_hash": meta["content_hash"], "passages": meta.get("passages", 0)}

    def documents_meta(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(doc_ids))
        rows = query_in(self.client, self.view.docs, "doc_id", wanted, f"{self.view.doc_expr} and part == 0",
                        ["doc_id", "meta"])
        out = {}
        for r in rows:
            meta = json.loads(r["meta"])
            out[r["doc_id"]] = {"doc_id": r["doc_id"], **_meta_fields(meta)}
        return out

    def document_hashes(self) -> dict[str, tuple[str, str | None]]:
        """doc_id -> (content hash, path), what a write compares with (as `PassageStore.document_hashes`)."""
        return {m["doc_id"]: (m["content_hash"], m["path"]) for m in self._metas()}

    def list_documents(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        # Milvus cannot sort a query: the ids are read and sorted here (a few MB for a million documents).
        metas = sorted(self._metas(), key=lambda m: m["doc_id"])[offset : offset + limit]
        for m in metas:
            m.pop("content_hash")
            m.pop("pages")  # as the SQLite store's listing: metadata to show, not to cite by
        return metas

    def filter_ids(self, filters: Filters) -> MilvusSelection:
        clauses = [self.view.passage_expr]
        if filters.doc_ids:
            clauses.append(f"doc_id in [{','.join(quote(d) for d in filters.doc_ids)}]")
        if filters.sources:
            clauses.append(f"source in [{','.join(quote(s) for s in filters.sources)}]")
        if filters.categories:
            listed = ",".join(quote(c) for c in filters.categories)
            clauses.append(f"array_contains_any(categories, [{listed}])")
        if filters.date_from or filters.date_to:
            clauses.append('date != ""')  # a document without a date matches no date range
        if filters.date_from:
            clauses.append(f"date >= {quote(filters.date_from)}")
        if filters.date_to:
            clauses.append(f"date <= {quote(filters.date_to)}")
        expr = " and ".join(f"({c})" for c in clauses)
        return MilvusSelection(expr, count(self.client, self.view.name, expr))

    def facets(self) -> dict[str, list[dict[str, Any]]]:
        sources: Counter[str] = Counter()
        cats: Counter[str] = Counter()
        dates = []
        for m in self._metas():
            if m["source"] is not None:
                sources[m["source"]] += 1
            cats.update(set(m["categories"] or []))
            if m["date"]:
                dates.append(m["date"])
        return {
            "sources": [{"value": s, "documents": n} for s, n in sources.most_common()],
            "categories": [{"value": c, "documents": n} for c, n in cats.most_common()],
            "dates": [{"from": min(dates), "to": max(dates)}] if dates else [],
        }

    def close(self) -> None:
        """Nothing to release: the client belongs to the location."""


def _expr(view: MilvusView, allowed: Any) -> str:
    return allowed.expr if isinstance(allowed, MilvusSelection) else view.passage_expr


class MilvusVectors:
    """`VectorStore` (read side) over the passage collection's HNSW index."""

    def __init__(self, view: MilvusView, dim: int) -> None:
        self.view, self.dim = view, dim

    def search(self, queries: np.ndarray, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        if allowed is not None and len(allowed) == 0:
            return scores, ids
        found = self.view.client.search(
            self.view.name, data=np.asarray(queries, dtype=np.float32).tolist(), anns_field="vector",
            limit=min(k, SEARCH_LIMIT), filter=_expr(self.view, allowed), output_fields=["passage_id"],
            search_params={"metric_type": "IP", "params": {"ef": min(max(k, 64), SEARCH_LIMIT)}},
        )
        for q, hits in enumerate(found):
            for j, hit in enumerate(hits[:k]):
                scores[q, j], ids[q, j] = hit["distance"], hit["passage_id"]
        return scores, ids

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in np.asarray(ids).reshape(-1)]
        rows = self.view.passage_rows(wanted, ["passage_id", "vector"])
        by_id = {r["passage_id"]: r["vector"] for r in rows}
        out = np.zeros((len(wanted), self.dim), dtype=np.float32)
        for i, pid in enumerate(wanted):
            if pid in by_id:
                out[i] = by_id[pid]
        return out

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        raise TypeError("a Milvus generation is read-only; write through `MilvusIndex.builder()`")

    def remove(self, ids: np.ndarray) -> int:
        raise TypeError("a Milvus generation is read-only; write through `MilvusIndex.builder()`")

    def describe(self) -> dict[str, Any]:
        return {"kind": "milvus-hnsw", "metric": "IP", "vectors": len(self), **HNSW}

    def save(self, folder: Any) -> None:
        raise TypeError("a Milvus generation is stored by the server, not saved to a folder")

    def __len__(self) -> int:
        return self.view.passage_count


class MilvusSentences:
    """The sentence vectors of a generation's passages (`SentenceReader`), read from the passage rows for
    the candidates of each query."""

    def __init__(self, view: MilvusView, dim: int, sentence_count: int) -> None:
        self.view, self.dim, self.sentence_count = view, dim, sentence_count

    def __len__(self) -> int:
        return self.view.passage_count

    def of(self, ids: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        wanted = [int(i) for i in np.asarray(ids).reshape(-1)]
        rows = self.view.passage_rows(wanted, ["passage_id", SENTENCES_FIELD])
        return {r["passage_id"]: unpack_sentences(r[SENTENCES_FIELD], self.dim) for r in rows}

    def best(self, ids: Sequence[int] | np.ndarray, query: np.ndarray) -> np.ndarray:
        wanted = np.asarray(ids, dtype=np.int64)
        held = self.of(wanted)
        blocks = [held.get(int(pid)) for pid in wanted]
        return best_cosines(blocks, query)


class MilvusKeywords:
    """`KeywordStore` (read side): Milvus' BM25 function for ranking; each passage's distinct analysed words
    (stored at write time) for `matched_terms`, and their document frequencies (`text_match` counts) for
    `idf`, so word shares weigh words as the folder index does without analysing a passage at query time."""

    # Its analysis is Milvus' own (jieba on the normalised text); the words are re-analysed on rewrite only.
    outdated = False

    def __init__(self, view: MilvusView) -> None:
        self.view = view

    def search(self, query: str, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        from index.analysis import normalize

        if (allowed is not None and len(allowed) == 0) or not query.strip():
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        found = self.view.client.search(
            self.view.name, data=[normalize(query)], anns_field="sparse", limit=min(k, SEARCH_LIMIT),
            filter=_expr(self.view, allowed), output_fields=["passage_id"],
            search_params={"metric_type": "BM25"},
        )[0]
        # milvus-lite reports BM25 scores negated (a distance); servers report them as they are.
        pairs = [(abs(float(h["distance"])), int(h["passage_id"])) for h in found]
        pairs = [p for p in pairs if p[0] > 0]
        pairs.sort(key=lambda p: -p[0])
        return (np.asarray([p[0] for p in pairs], np.float32), np.asarray([p[1] for p in pairs], np.int64))

    def count(self, query: str, allowed: Any = None) -> int:
        """The passages Milvus' BM25 matches (its own analysis of the query, as `search` ranks), up to the
        most one search returns (SEARCH_LIMIT)."""
        return len(self.search(query, SEARCH_LIMIT, allowed)[1])

    def _words(self, passage_ids: Sequence[int]) -> list[set[str]]:
        wanted = [int(i) for i in passage_ids]
        rows = self.view.passage_rows(wanted, ["passage_id", "words"])
        words = {r["passage_id"]: set(r["words"].split()) for r in rows}
        return [words.get(pid, set()) for pid in wanted]

    def matched_terms(self, terms: Sequence[str], passage_ids: Sequence[int]) -> list[set[str]]:
        asked = {stored_term(t): t for t in terms}
        return [{asked[w] for w in held if w in asked} for held in self._words(passage_ids)]

    def contains(self, terms: Sequence[str], passage_ids: Sequence[int]) -> np.ndarray:
        stored = [stored_term(t) for t in terms]
        held = self._words(passage_ids)
        return np.asarray([[w in h for w in stored] for h in held], dtype=bool).reshape(len(held), len(terms))

    def idf(self, terms: Sequence[str]) -> np.ndarray:
        return _idf(self.view.document_frequencies([stored_term(t) for t in terms]), len(self))

    def build(self, ids: np.ndarray, texts: Sequence[str], previous: Any = None) -> None:
        raise TypeError("a Milvus generation is read-only; write through `MilvusIndex.builder()`")

    def save(self, folder: Any) -> None:
        raise TypeError("a Milvus generation is stored by the server, not saved to a folder")

    def __len__(self) -> int:
        return self.view.passage_count


def stored_term(term: str) -> str:
    """An analysed term as the `words` field holds it: a bigram's control-character prefix
    (`index.analysis.GRAM_PREFIX`) as `g:` (no word or number of the analysis holds a colon)."""
    from index.analysis import GRAM_PREFIX

    return "g:" + term[len(GRAM_PREFIX):] if term.startswith(GRAM_PREFIX) else term


def passage_row(
    pid: int, doc: Any, chunk: Any, vector: np.ndarray, born: int, sentences: str | None = None
) -> dict[str, Any]:
    """The passage collection's row of one chunk of `doc`; `sentences` packed (`pack_sentences`), or None
    for a collection without the field."""
    from index.analysis import normalize, tokenize, word_bounds

    words = " ".join(dict.fromkeys(stored_term(t) for t in tokenize(chunk.text)))
    extra = {SENTENCES_FIELD: sentences} if sentences is not None else {}
    return extra | {
        "passage_id": pid, "doc_id": doc.doc_id, "ordinal": chunk.ordinal, "paragraph": chunk.paragraph,
        "start": chunk.start, "stop": chunk.end, "text": chunk.text, "hash": chunk.content_hash(),
        "bounds": json.dumps(word_bounds(chunk.text)), "norm": normalize(chunk.text), "words": words,
        "vector": np.asarray(vector, dtype=np.float32).tolist(), "source": doc.source or "",
        "categories": list(doc.categories), "date": doc.date or "", "born": born,
    }


def document_rows(first_row: int, doc: Any, passages: int, born: int) -> list[dict[str, Any]]:
    """The document collection's rows of `doc` (one per part of its text), numbered from `first_row`."""
    meta = {k: getattr(doc, k) for k in META_KEYS}
    meta |= {"paragraphs": [list(p) for p in doc.paragraphs], "content_hash": doc.content_hash(),
             "passages": passages}
    parts = max(1, math.ceil(len(doc.text) / DOC_PART_CHARS))
    return [
        {"row": first_row + i, "doc_id": doc.doc_id, "part": i,
         "text": doc.text[i * DOC_PART_CHARS : (i + 1) * DOC_PART_CHARS],
         "meta": json.dumps(meta, ensure_ascii=False) if i == 0 else "", "born": born, "pad": PAD}
        for i in range(parts)
    ]
