"""The facade over an index on disk: search, similar passages, documents; the CLI and HTTP API call it.

    from search.engine import Engine
    engine = Engine.open(".index")
    for r in engine.search("长三角研发投入强度的目标", k=3).results:
        print(r.rank, r.score, r.title, r.text[:40])

An `Engine` follows the index's CURRENT generation: each call takes the snapshot published at that
moment, so a search is always answered from one complete generation, and a new one is picked up
without a restart. Generations are told apart by their identity, not their number: an index folder
removed and built again starts at 000001 once more.

A snapshot is checked when it is opened (every file of the size its manifest recorded, the passage counts
of the three stores agree); a damaged one raises `IndexDamaged` naming the file, which the server answers
with 503 and the CLI prints in one line. Checksums are not read here: hashing a million-passage generation
(gigabytes) on every publish would stall the first search after each write; `semsearch index` and
`semsearch info --verify` read them.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from index import settings
from index.analysis import highlight_spans, query_grams, query_terms, query_words
from index.backends import IndexLocation, as_location
from index.config import IndexSettings
from index.documents import Document, page_at
from index.embedders.base import Embedder
from index.embedders.factory import create_embedder
from index.generations import IndexFolderError
from index.stores.base import Generation
from index.stores.passages import FILE as PASSAGES_FILE
from index.stores.passages import Filters, PassageRow
from search.dedupe import FOLD_WINDOW, NearDuplicateFolder
from search.errors import (
    ModelMismatch,
    NotFound,
    QueryError,
    check_count,
    check_k,
    check_offset,
    check_passage_id,
    check_query,
)
from search.filters import folded_values, merge_folded, resolve_filters
from search.hybrid import (
    MIN_COVERAGE,
    Hit,
    Lexical,
    dense_evidence,
    dense_hits,
    fuse,
    keyword_hits,
    keyword_weight,
    number_shares,
    phrase_runs,
    term_shares,
)
from search.models import AskResponse, SearchResponse, SearchResult
from search.query_tower import query_tower

if TYPE_CHECKING:  # the builder (and the loaders it imports) only when the index is written, not per query
    from index.builder import BuildSummary, IndexBuilder

log = logging.getLogger(__name__)

MODES = ("dense", "keyword", "hybrid")
HYBRID_DEPTH = 100  # candidates taken from each list before fusion
# Candidates read beyond the page: folding near-duplicates still fills it, and a result's copies, which
# fold only from within FOLD_WINDOW candidates below it, are all read.
READ_MARGIN = FOLD_WINDOW
DEPTH_GROWTH = 4  # each tier of candidates reads this many times deeper than the one before
MAX_DEPTH = 1600  # deepest tier read to fill a page that near-duplicates emptied (deeper pages read deeper)
KEYWORD_COVERAGE_HITS = 3  # keyword hits whose words measure how well keyword search covers a query


P = ParamSpec("P")
R = TypeVar("R")


def _reports_damage(method: Callable[P, R]) -> Callable[P, R]:
    """An Engine method whose SQLite errors mean a damaged passage store: a file overwritten after its
    generation was opened, or damage past the pages the opening checks read. Raised as `IndexDamaged`."""

    @functools.wraps(method)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            engine: Engine = args[0]  # type: ignore[assignment]
            snap = engine._snapshot
            if snap is None:
                raise
            raise engine.dir.damaged(snap.name, PASSAGES_FILE, f"cannot be read ({exc})") from exc

    return checked


# One published generation, whatever holds it (an index folder or a Milvus collection; `index.backends`).
Snapshot = Generation


class Engine:
    """Search over one index: a folder, or any other `IndexLocation` (a Milvus collection)."""

    def __init__(self, index_dir: Path | str | IndexLocation, *, model: str | None = None) -> None:
        self.dir = as_location(index_dir)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        if not self.dir.published():
            raise IndexFolderError(
                f"no index at {self.dir.root}: build one with `semsearch index PATH --index {self.dir.root}`"
            )
        built = self.dir.readable_manifest()
        # No readable manifest at all: searches answer with the damage (503) until the index is repaired.
        self.settings = IndexSettings.from_dict(built.settings) if built else IndexSettings.from_env()
        if built and model and model != self.settings.embedder.model:
            raise ModelMismatch(
                f"index {self.dir.root} was built with model {self.settings.embedder.model!r}; it cannot be "
                f"searched with {model!r} (the vectors would not be comparable). Re-index with that model "
                f"into another folder, or drop the model setting."
            )
        self._embedder: Embedder | None = None
        # Answers by (generation identity, query, k, mode, filters, offset): a new generation has a new
        # identity, even where an index rebuilt from scratch reuses a number, so nothing cached can outlive
        # the index it came from. Query vectors by text: paging and other
        # modes or filters of one query embed it once.
        # Entries of the query caches (`$SEMSEARCH_QUERY_CACHE`, 0 turns them off): answers are a few kB.
        cache_size = settings.value("SEMSEARCH_QUERY_CACHE")
        self._answers: LRU = LRU(cache_size)
        self._query_vectors: LRU = LRU(cache_size)
        self._facet_values: tuple[str, dict[str, dict[str, list[str]]]] | None = None
        self.counters = Counters()

    @classmethod
    def open(cls, index_dir: Path | str | IndexLocation | None = None, *, model: str | None = None) -> Engine:
        """The index given, else the one the environment names (`$SEMSEARCH_STORE`, `$SEMSEARCH_INDEX` …)."""
        return cls(as_location(index_dir), model=model)

    # --- state ----------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = create_embedder(self.settings.embedder)
        return self._embedder

    def snapshot(self) -> Snapshot:
        """The current generation, reopened when CURRENT has moved on since the last call.

        CURRENT is compared by identity, so a folder removed and rebuilt (000001 again) is picked up too. A
        damaged generation raises `IndexDamaged` on every call until CURRENT names a repaired one.
        """
        pointer = self.dir.pointer()
        if pointer is None:
            raise IndexFolderError(f"the index at {self.dir.root} has no published generation")
        snap = self._snapshot
        if snap is not None and snap.key == pointer.key:
            return snap
        with self._lock:
            if self._snapshot is None or self._snapshot.key != pointer.key:
                self._snapshot = self.dir.open_generation(pointer)
            return self._snapshot

    def verify(self) -> dict[str, Any]:
        """Check every file of the current generation against the checksums written at publish time;
        `IndexDamaged` names the first that differs (`semsearch info --verify`)."""
        pointer = self.dir.pointer()
        if pointer is None:
            raise IndexFolderError(f"the index at {self.dir.root} has no published generation")
        manifest = self.dir.verify(pointer.name, checksums=True, pointer=pointer)
        return {"generation": pointer.name, "files": len(manifest.files or {}), "verified": True}

    @_reports_damage
    def info(self) -> dict[str, Any]:
        snap = self.snapshot()
        stats = snap.stats
        return {
            "index": str(self.dir),
            "generation": snap.name,
            "generation_id": snap.manifest.id,
            "created": snap.manifest.created,
            "documents": stats["documents"],
            "passages": stats["passages"],
            # sentences with a vector of their own (0: the dense side ranks by passage vectors alone)
            "sentences": snap.sentences.sentence_count if snap.sentences is not None else 0,
            "model": snap.manifest.model,
            "dim": snap.manifest.dim,
            "size_bytes": stats["size_bytes"],
            "modes": [m for m in MODES if m == "dense" or snap.keywords is not None],
            "settings": snap.manifest.settings,
        }

    # --- search ---------------------------------------------------------------------------------
    @_reports_damage
    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str | None = None,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> SearchResponse:
        """Rank passages for `query`; results carry their citation (doc, offsets) and scores."""
        query = check_query(query)
        check_k(k)
        check_offset(offset, k)
        snap = self.snapshot()
        mode = self._mode(snap, mode)
        key = (snap.key, query, k, mode, _filters_key(filters), offset)
        cached = self._answers.get(key)
        self.counters.add(("searches", mode))
        self.counters.add(("search_cache", "hit" if cached is not None else "miss"))
        if cached is not None:
            return cached.detached()  # callers may change what they get; the cache stays intact
        allowed = self._allowed(snap, filters)
        eligible = len(allowed) if allowed is not None else len(snap.vectors)
        folder = NearDuplicateFolder()
        hits, read, exhausted = self._fold_tiers(
            snap, lambda depth: self._retrieve(snap, query, mode, depth, allowed), offset + k, eligible,
            folder,
        )
        results = folder.results
        # Every passage a search could return, less the near-duplicates folded so far (the unread ones are
        # not compared): all eligible ones for a dense ranking, those holding a query word for keywords.
        if exhausted:
            candidates = len(hits)
        elif mode == "keyword":
            assert snap.keywords is not None
            candidates = snap.keywords.count(query, allowed)
        else:
            candidates = eligible
        total = len(results) + max(candidates - read, 0)
        page = results[offset : offset + k]
        # Only the page is highlighted: when highlighting segmented every candidate with jieba, it was 90 %
        # of a dense search at 10k passages. It now reads the word bounds the index stored.
        self._highlight(snap, query, page)
        for i, r in enumerate(page):
            r.rank = offset + i + 1
        response = SearchResponse(
            query=query, mode=mode, total=total, offset=offset, generation=snap.name, results=page
        )
        self._answers.put(key, response.detached())
        return response

    def _query_vector(self, query: str, *, across_languages: bool = False) -> np.ndarray:
        """The (1, dim) query embedding, from the cache when this text was embedded before. A query the
        keyword index hardly covers (`across_languages`: another language than the text's) is embedded
        by the query tower where it is available (`search.query_tower`), else by the index's embedder."""
        tower = query_tower(self.settings.embedder) if across_languages else None
        key = (query, tower is not None)
        vector = self._query_vectors.get(key)
        if vector is None:
            vector = (tower or self.embedder).encode_queries([query])
            self._query_vectors.put(key, vector)
        return vector

    @_reports_damage
    def similar(
        self,
        *,
        text: str | None = None,
        passage_id: int | None = None,
        k: int = 10,
        filters: Filters | None = None,
    ) -> list[SearchResult]:
        """Passages most like a text or a stored passage: never the given passage nor its copies in
        other documents, and a passage found in several documents is one result listing the others in
        `also_in` (as in a search)."""
        check_k(k)
        if (text is None) == (passage_id is None):
            raise QueryError("give exactly one of text or passage_id")
        snap = self.snapshot()
        given: SearchResult | None = None
        if passage_id is not None:
            check_passage_id(passage_id)
            found = self._results(snap, [Hit(passage_id, 1.0)])
            if not found:
                raise NotFound(f"no passage with id {passage_id}")
            given = found[0]
            vector = snap.vectors.vectors(np.asarray([passage_id], dtype=np.int64))
        else:
            # A text given for similarity is a passage, not a question: embed it as one.
            vector = self.embedder.encode_passages([check_query(text or "")])
        return self._most_like(snap, vector, k, self._allowed(snap, filters), [given])[0]

    def _fold_tiers(
        self,
        snap: Snapshot,
        retrieve: Callable[[int], list[Hit]],
        want: int,
        eligible: int,
        folder: NearDuplicateFolder,
        skip: int | None = None,
    ) -> tuple[list[Hit], int, bool]:
        """Candidates from `retrieve(depth)` into `folder` until it holds `want` results: the candidates
        (less `skip`), how many were read into the folder, and whether retrieval ran out.

        One ranking for every page of a query: candidates are retrieved in tiers of fixed depths
        (HYBRID_DEPTH, then DEPTH_GROWTH times deeper each), never of a depth taken from the page. Fusion's
        scaling and the sentence re-ranking depend on how many candidates there are, so a page read
        deeper would order the same passages otherwise, and pages would repeat and skip passages. A
        deeper tier only appends the passages the tiers before it lacked, in its own order.
        """
        hits: list[Hit] = []
        seen: set[int] = {skip} if skip is not None else set()
        read, depth = 0, HYBRID_DEPTH
        while True:
            tier = retrieve(min(depth, max(eligible, 1)))
            hits += [h for h in tier if h.passage_id not in seen]
            seen.update(h.passage_id for h in tier)
            # The page and a margin are read from SQLite, built into results and compared for
            # near-duplicates (a third of a search's time besides the embedding); further candidates only
            # when folding has left the page short.
            while not folder.settled(want) and read < len(hits):
                upto = min(len(hits), read + max(want - len(folder), 1) + READ_MARGIN)
                folder.add(self._results(snap, hits[read:upto]))
                read = upto
            # Every candidate there is has been retrieved (fewer came than were asked for).
            exhausted = depth >= eligible or len(tier) < depth
            # Short, and more to retrieve: a page far down, or many copies of one passage filled the tier
            # (those are searched for down to MAX_DEPTH, not further).
            if folder.settled(want) or exhausted or depth >= max(MAX_DEPTH, 2 * want):
                return hits, read, exhausted
            depth *= DEPTH_GROWTH

    def _most_like(
        self, snap: Snapshot, vectors: np.ndarray, k: int, allowed: Any, given: Sequence[SearchResult | None]
    ) -> list[list[SearchResult]]:
        """The k passages nearest each vector, near-duplicates folded as in a search (`_fold_tiers`);
        `given[i]` (a stored passage, or None) is left out of row i with its copies. The first tier is one
        batched search; a row that folding left short reads deeper alone."""
        eligible = len(allowed) if allowed is not None else len(snap.vectors)
        first = min(HYBRID_DEPTH, max(eligible, 1))
        scores, ids = snap.vectors.search(vectors, first, allowed)
        out = []
        for row, seed in enumerate(given):

            def nearest(depth: int, row: int = row) -> list[Hit]:
                if depth == first:
                    return dense_hits(scores[row], ids[row])
                deeper = snap.vectors.search(vectors[row : row + 1], depth, allowed)
                return dense_hits(deeper[0][0], deeper[1][0])

            folder = NearDuplicateFolder()
            if seed is not None:
                folder.add([seed.model_copy(update={"also_in": []})], anchor=True)  # its copies fold into it
            self._fold_tiers(snap, nearest, k + len(folder), eligible, folder,
                             skip=seed.passage_id if seed is not None else None)
            results = folder.results[1 if seed is not None else 0 :][:k]
            for i, r in enumerate(results):
                r.rank = i + 1
            out.append(results)
        return out

    def _allowed(self, snap: Snapshot, filters: Filters | None) -> Any:
        """The passages `filters` admit (the back end's `Selection`), or None for no filter. Sources and
        categories are matched as `search.filters.resolve_filters` folds them."""
        _check_filters(filters)
        if filters is None or not filters.active():
            return None
        if filters.sources or filters.categories:
            held = self._facet_values
            if held is None or held[0] != snap.key:
                facets = snap.passages.facets()
                held = (snap.key, {kind: folded_values(f["value"] for f in facets[kind])
                                   for kind in ("sources", "categories")})
                self._facet_values = held  # one generation's values; a race only computes them twice
            filters = resolve_filters(filters, held[1])
        return snap.passages.filter_ids(filters)

    def _mode(self, snap: Snapshot, mode: str | None) -> str:
        if mode is None:
            return "hybrid" if snap.keywords is not None else "dense"
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode != "dense" and snap.keywords is None:
            raise QueryError(f"mode {mode!r} needs a keyword index; this index was built without one")
        return mode

    def _retrieve(
        self, snap: Snapshot, query: str, mode: str, depth: int, allowed: np.ndarray | None
    ) -> list[Hit]:
        if mode == "keyword":
            assert snap.keywords is not None
            return keyword_hits(*snap.keywords.search(query, depth, allowed))
        # With sentence vectors the dense list is re-ranked, so it is read as deep as a hybrid one.
        deep = mode != "dense" or snap.sentences is not None
        n = max(depth, HYBRID_DEPTH) if deep else depth
        keyword: list[Hit] = []
        coverage = 1.0
        if snap.keywords is not None:
            # Read first: how much of the query the keyword list covers picks the query's encoder.
            reach = n if mode == "hybrid" else KEYWORD_COVERAGE_HITS
            keyword = keyword_hits(*snap.keywords.search(query, reach, allowed))
            coverage = self._coverage(snap, query, keyword)
        vector = self._query_vector(query, across_languages=coverage < MIN_COVERAGE)
        scores, ids = snap.vectors.search(vector, n, allowed)
        dense = dense_hits(scores[0], ids[0])
        if mode == "dense":
            return self._rescored(snap, vector[0], dense, [])[:depth]
        ranked = self._rescored(snap, vector[0], dense, keyword)
        dense = ranked[:n]
        lexical = self._word_shares(snap, query, dense, keyword)
        fused = fuse(dense, keyword, coverage=coverage, lexical=lexical)
        # Keyword-only candidates get their dense evidence too, so every hybrid result shows both parts
        # (reading ~100 stored vectors takes ~0.2 ms).
        beyond = {h.passage_id: h for h in ranked[n:]}
        missing = []
        for h in fused:
            if h.dense_score is None:
                scored = beyond.get(h.passage_id)
                if scored is None:
                    missing.append(h)
                else:
                    h.dense_score, h.sentence_score = scored.dense_score, scored.sentence_score
        if missing:
            vecs = snap.vectors.vectors(np.asarray([h.passage_id for h in missing], dtype=np.int64))
            for h, cosine in zip(missing, vecs @ vector[0], strict=True):
                h.dense_score = float(cosine)
        return fused

    @staticmethod
    def _rescored(snap: Snapshot, query: np.ndarray, dense: list[Hit], keyword: list[Hit]) -> list[Hit]:
        """The candidates of both lists ranked by their dense evidence, their passage cosine and their
        best sentence's (`dense_evidence`), best first: a passage whose one sentence answers the question
        rises even where its passage vector left it low. Without sentence vectors, the dense list as it is.
        """
        if snap.sentences is None:
            return dense
        cosine = {h.passage_id: h.dense_score for h in dense}
        ids = np.asarray(list(dict.fromkeys([h.passage_id for h in dense + keyword])), dtype=np.int64)
        known = np.asarray([pid in cosine for pid in ids.tolist()], dtype=bool)
        cosines = np.empty(len(ids), dtype=np.float64)
        cosines[known] = [cosine[pid] for pid in ids[known].tolist()]
        if not known.all():
            cosines[~known] = snap.vectors.vectors(ids[~known]) @ query
        best = snap.sentences.best(ids, query)
        evidence = dense_evidence(cosines, best)
        order = np.argsort(-evidence, kind="stable")
        # Python lists, not numpy scalars, in the loop: it builds ~200 hits a query.
        sentence_scores = np.where(np.isnan(best), None, best)[order].tolist()
        return [
            Hit(pid, score, dense_score=score, dense_rank=rank, sentence_score=sentence)
            for rank, (pid, score, sentence) in enumerate(
                zip(ids[order].tolist(), evidence[order].tolist(), sentence_scores, strict=True), 1
            )
        ]

    @staticmethod
    def _coverage(snap: Snapshot, query: str, keyword: list[Hit]) -> float:
        """How much of the query the keyword list covers (`keyword_weight`): the share of its words the
        best of its first hits holds. Under MIN_COVERAGE the query is in another language than the text
        (or about nothing the collection holds): the keyword side then weighs nothing, and the query
        tower embeds it."""
        assert snap.keywords is not None
        words = list(query_words(query, whole_identifiers=not snap.keywords.outdated))
        ids = [h.passage_id for h in keyword[:KEYWORD_COVERAGE_HITS]]
        if not words or not ids:
            return 0.0
        present = snap.keywords.contains(words, ids)
        return keyword_weight(words, [{words[j] for j in np.flatnonzero(r)} for r in present])

    def _word_shares(self, snap: Snapshot, query: str, dense: list[Hit], keyword: list[Hit]) -> Lexical:
        """Every candidate's lexical evidence (`Lexical`: its idf-weighted shares of the query's words and
        bigrams, `term_shares`, and its longest run of the query's bigrams, `phrase_runs`), all read from
        the keyword index's postings for the ~200 candidates: nothing is analysed again, no other passage
        is read."""
        assert snap.keywords is not None
        # An index analysed before identifiers were terms holds only their pieces: count those.
        words = list(query_words(query, whole_identifiers=not snap.keywords.outdated))
        grams = list(query_grams(query))  # positions, in reading order
        gram_terms = list(dict.fromkeys(t.term for t in grams))
        ids = list(dict.fromkeys(h.passage_id for h in keyword + dense))
        terms = words + gram_terms
        if not terms or not ids:
            return Lexical({}, {}, {})
        present = snap.keywords.contains(terms, ids)
        idf = snap.keywords.idf(terms)
        in_words, in_grams = present[:, : len(words)], present[:, len(words) :]
        column = {t: j for j, t in enumerate(gram_terms)}
        follows = np.asarray([i > 0 and t.start == grams[i - 1].start + 1 for i, t in enumerate(grams)])
        runs = phrase_runs(in_grams[:, [column[t.term] for t in grams]], follows)

        def by_id(values: np.ndarray) -> dict[int, float]:
            return dict(zip(ids, values.tolist(), strict=True))

        numbers = number_shares(words, in_words)
        return Lexical(
            word=by_id(term_shares(idf[: len(words)], in_words)) if words else {},
            grams=by_id(term_shares(idf[len(words) :], in_grams)) if grams else {},
            phrase=by_id(runs) if grams else {},
            numbers=by_id(numbers) if numbers is not None else {},
        )

    def _highlight(self, snap: Snapshot, query: str, results: list[SearchResult]) -> None:
        terms = query_terms(query)
        bounds = snap.passages.word_bounds([r.passage_id for r in results]) if terms else {}
        for r in results:
            r.highlights = highlight_spans(r.text, terms, bounds.get(r.passage_id))

    def _results(self, snap: Snapshot, hits: list[Hit]) -> list[SearchResult]:
        rows = snap.passages.passages([h.passage_id for h in hits])
        metas = snap.passages.documents_meta(r.doc_id for r in rows.values())
        results = []
        for h in hits:
            row = rows.get(h.passage_id)
            if row is None:
                continue
            meta = metas[row.doc_id]
            results.append(
                SearchResult(
                    rank=len(results) + 1,
                    score=h.score,
                    passage_id=row.passage_id,
                    doc_id=row.doc_id,
                    title=meta["title"],
                    source=meta["source"],
                    date=meta["date"],
                    categories=meta["categories"],
                    paragraph=row.paragraph,
                    page=page_at(meta.get("pages"), row.start),
                    start=row.start,
                    end=row.end,
                    text=row.text,
                    dense_score=h.dense_score,
                    keyword_score=h.keyword_score,
                    dense_rank=h.dense_rank,
                    keyword_rank=h.keyword_rank,
                    word_share=h.word_share,
                    sentence_score=h.sentence_score,
                )
            )
        return results

    @_reports_damage
    def similar_texts(
        self, texts: Sequence[str], k: int = 10, *, filters: Filters | None = None
    ) -> list[list[SearchResult]]:
        """`similar(text=...)` for several texts at once: one model call, one batched vector search."""
        check_k(k)
        if isinstance(texts, str):
            raise QueryError("texts is a list of texts; give one text as similar(text=...)")
        if not texts:
            raise QueryError("texts is empty; give at least one text")
        checked = [check_query(t) for t in texts]
        snap = self.snapshot()
        vectors = self.embedder.encode_passages(checked)
        return self._most_like(snap, vectors, k, self._allowed(snap, filters), [None] * len(checked))

    # --- questions (delegated to search.answer and search.generate) -----------------------------
    @_reports_damage
    def ask(
        self,
        question: str,
        k: int = 5,
        *,
        filters: Filters | None = None,
        mode: str = "extract",
        threshold: float | None = None,
    ) -> AskResponse:
        """Answer a question from the top-`k` passages, with citations (an `AskResponse`).

        `mode="extract"`: the best sentence of the passages (verbatim), null below the confidence
        threshold (`threshold`, else $SEMSEARCH_ANSWER_THRESHOLD, else the fitted default).
        `mode="generate"`: an OpenAI-compatible LLM writes the answer from the numbered passages
        ($SEMSEARCH_LLM_BASE_URL / _MODEL / _API_KEY); its [n] citations are checked.
        """
        if mode == "extract":
            from search.answer import ask

            response = ask(self, question, k, filters=filters, threshold=threshold)
        elif mode == "generate":
            from search.generate import generate

            response = generate(self, question, k, filters=filters)
        else:
            raise QueryError(f"unknown answer mode {mode!r}; choose extract or generate")
        self.counters.add(("answers", mode, "withheld" if response.answer is None else "given"))
        return response

    def ask_stream(
        self, question: str, k: int = 5, *, filters: Filters | None = None
    ) -> Iterator[dict[str, Any]]:
        """`ask(mode="generate")` as it is written: an iterator of events (token…, then done)."""
        from search.generate import generate_stream

        return generate_stream(self, question, k, filters=filters)

    @_reports_damage
    def passages_with_documents(
        self, passage_ids: Sequence[int]
    ) -> tuple[dict[int, PassageRow], dict[str, dict[str, Any]]]:
        """The passages of these ids that exist, and their documents' metadata, from one generation."""
        passages = self.snapshot().passages
        rows = passages.passages(passage_ids)
        return rows, passages.documents_meta({row.doc_id for row in rows.values()})

    @_reports_damage
    def facets(self) -> dict[str, Any]:
        """Sources and categories with document counts, and the date range (the page's filter choices);
        spellings a filter treats as one (`search.filters.fold_value`) are one choice."""
        found = self.snapshot().passages.facets()
        return found | {kind: merge_folded(found[kind]) for kind in ("sources", "categories")}

    # --- writing (delegated to the index builder; one writer per index, others get IndexLocked) ----
    def _builder(self) -> IndexBuilder:
        return self.dir.builder(self.settings, embedder=self.embedder)

    def add_documents(self, documents: Sequence[Document]) -> BuildSummary:
        """Add or replace documents; searches see them once the new generation is published."""
        return self._builder().upsert(documents)

    @_reports_damage
    def delete_documents(self, doc_ids: Sequence[str]) -> BuildSummary:
        snap = self.snapshot()
        missing = [d for d in doc_ids if snap.passages.document(d) is None]
        if missing:
            raise NotFound(f"no document with id {missing[0]!r}")
        return self._builder().delete(doc_ids)

    def index_paths(self, paths: Sequence[Path | str]) -> BuildSummary:
        """Sync files and folders into the index (a full re-index is cheap when little changed)."""
        return self._builder().index_paths(paths)

    # --- documents and passages ----------------------------------------------------------------
    @_reports_damage
    def document(self, doc_id: str) -> dict[str, Any]:
        snap = self.snapshot()
        doc = snap.passages.document(doc_id)
        if doc is None:
            raise NotFound(f"no document with id {doc_id!r}")
        doc["passages"] = [
            {"passage_id": p.passage_id, "paragraph": p.paragraph, "page": page_at(doc["pages"], p.start),
             "start": p.start, "end": p.end}
            for p in snap.passages.passages(snap.passages.passage_ids_of(doc_id)).values()
        ]
        doc["passages"].sort(key=lambda p: p["start"])
        return doc

    @_reports_damage
    def passage(self, passage_id: int, neighbours: int = 1) -> dict[str, Any]:
        """A passage with its document's metadata and the passages just before and after it."""
        check_passage_id(passage_id)
        check_count(neighbours, "neighbours")
        snap = self.snapshot()
        row = snap.passages.passages([passage_id]).get(passage_id)
        if row is None:
            raise NotFound(f"no passage with id {passage_id}")
        ids = snap.passages.passage_ids_of(row.doc_id)
        at = ids.index(passage_id)
        around = snap.passages.passages(ids[max(0, at - neighbours) : at + neighbours + 1])
        meta = snap.passages.documents_meta([row.doc_id])[row.doc_id]
        return {
            "passage": vars(row),
            "document": meta,
            "before": [vars(around[i]) for i in ids[max(0, at - neighbours) : at]],
            "after": [vars(around[i]) for i in ids[at + 1 : at + neighbours + 1]],
        }

    @_reports_damage
    def documents(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        check_count(offset, "offset")
        check_count(limit, "limit", least=1)
        snap = self.snapshot()
        return {
            "total": snap.passages.count_documents(),
            "offset": offset,
            "documents": snap.passages.list_documents(offset, limit),
        }


class Counters:
    """Monotonic counts of what an engine did (searches by mode, answer-cache hits, answers given and
    withheld), keyed by tuples; monitoring (`api.metrics`) reads them when it is scraped."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()  # server threads search concurrently

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self) -> dict[tuple[str, ...], int]:
        with self._lock:
            return dict(self._counts)


class LRU:
    """A small thread-safe least-recently-used map (server threads search concurrently)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        if self.size <= 0:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _check_filters(filters: Any) -> None:
    if filters is not None and not isinstance(filters, Filters):
        raise QueryError(f"filters must be a Filters (search.filters.parse_filters(doc_ids=[...], ...)), "
                         f"not {type(filters).__name__}")


def _filters_key(filters: Filters | None) -> tuple | None:
    """A hashable, order-insensitive form of the filters (None when no filter is active)."""
    _check_filters(filters)
    if filters is None or not filters.active():
        return None
    return (
        tuple(sorted(filters.doc_ids)), tuple(sorted(filters.sources)), tuple(sorted(filters.categories)),
        filters.date_from, filters.date_to,
    )

