"""An index in Milvus: the location the engine reads through, and the writer that publishes generations.

How a write becomes visible (Milvus has no multi-row transaction; one row's upsert is atomic):

1. Recover: rows a killed write replaced are deleted, and rows it wrote but never published (`born` > the
   published generation G) are deleted too, as are the term counts it wrote for them.
2. The new rows — every passage and document row of the added and changed documents — are inserted with
   `born = G + 1`. Readers filter on `born <= G`: they do not see them. The terms whose passage counts
   change get G + 1's count added to their `__terms` row, beside the counts of their last generations,
   which readers at G go on reading.
3. The state row is upserted, naming generation G + 1 and listing the rows of the old versions (of the
   changed and deleted documents) as replaced. This one write is the switch: from now on readers see
   `born <= G + 1` minus the replaced rows — every new version, no old one.
4. After a grace period (`$SEMSEARCH_MILVUS_GRACE`, default 1 s: searches that read the state before the
   switch finish against G), the replaced rows are deleted and the state row's list is emptied.

A reader therefore always sees exactly one published generation: each document whole, in one version, once.
A crash before 3 leaves G as it was (plus invisible rows the next write removes); a crash after 3 leaves
G + 1 (plus invisible replaced rows the next write removes). Re-running the same `semsearch index` then
converges to exactly the documents given. Large writes are published in groups of `GROUP_DOCS`
documents, each group one generation, so the replaced list stays short.

Writers: one at a time per index. A lock on this machine keyed by the server and collection
(`MilvusIndex.lock_dir`, beside the `--index` folder's `write.lock`) serialises the writers of one machine
whatever their folders; Milvus offers no compare-and-set to lock across machines, so writes from several
machines at once must be serialised by the deployment (see docs/scale-out.md).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np

from index import settings
from index.backends import StoreConfig
from index.builder import BuildSummary, IndexBuilder, Roots
from index.config import FORMAT_VERSION, IndexSettings, default_index_dir
from index.documents import Chunk, Document
from index.embedders.base import Embedder
from index.generations import Damage, IndexDamaged, IndexFolderError, Pointer, WriteLock, now_iso
from index.manifest import Manifest
from index.stores.base import Generation
from index.stores.milvus_store import (
    DOCS_SUFFIX,
    SENTENCES_FIELD,
    STATE_SUFFIX,
    SUFFIXES,
    TERMS_SUFFIX,
    MilvusKeywords,
    MilvusPassages,
    MilvusSentences,
    MilvusVectors,
    MilvusView,
    State,
    connect,
    create_collections,
    create_terms_collection,
    document_rows,
    has_sentences_field,
    load_collections,
    pack_sentences,
    passage_row,
    query_all,
    query_in,
    read_state,
    read_term_counts,
    term_row,
    term_rows,
    unpack_sentences,
)

GROUP_DOCS = 200  # documents per published generation in a large write
INSERT_ROWS = 256  # rows per insert call
# A document to write: chunks, their vectors, their sentence vectors (one block per chunk) or None.
Item = tuple[Document, list[Chunk], np.ndarray, list[np.ndarray] | None]
# A copied document (`copy_from`): chunks, vectors, and its source's sentence vectors or None.
Prepared = tuple[list[Chunk], np.ndarray, list[np.ndarray | None] | None]


class MilvusIndex:
    """An index kept in one Milvus collection (and its `__docs` and `__state` companions)."""

    def __init__(
        self, uri: str, collection: str, *, token: str | None = None, root: Path | None = None
    ) -> None:
        self.uri, self.collection, self.token = uri, collection, token
        # Local to this machine: the embedding cache of writes made here and the server's job journal.
        self.root = Path(root or default_index_dir())
        self._client: Any = None

    @classmethod
    def from_config(cls, config: StoreConfig) -> MilvusIndex:
        if not config.milvus_uri:
            raise IndexFolderError(
                "the milvus store needs a server: give --milvus-uri or $SEMSEARCH_MILVUS_URI "
                "(e.g. http://127.0.0.1:19530)"
            )
        return cls(config.milvus_uri, config.collection, token=config.milvus_token, root=config.index)

    def __str__(self) -> str:
        return f"milvus {self.uri} collection {self.collection}"

    @property
    def lock_dir(self) -> Path:
        """Where this machine's writers of the collection take their lock, whatever their --index folder
        (two writers with different folders would share generation numbers and passage ids, and each
        one's recovery would delete the other's unpublished rows)."""
        server = re.sub(r"^[a-z]+://", "", self.uri.strip().lower()).rstrip("/")
        server = server.replace("localhost", "127.0.0.1")
        key = re.sub(r"[^a-z0-9.]+", "_", server)
        return Path(tempfile.gettempdir()) / "semsearch-locks" / f"milvus-{key}-{self.collection}"

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                client = connect(self.uri, self.token)
                load_collections(client, self.collection)
                self._client = client
            except Exception as exc:  # pymilvus raises MilvusException for a server it cannot reach
                raise IndexFolderError(f"cannot reach Milvus at {self.uri}: {exc}") from exc
        return self._client

    # --- reading ---------------------------------------------------------------------------------
    def state(self) -> State | None:
        return read_state(self.client, self.collection)

    def published(self) -> list[str]:
        state = self.state()
        return [_name(state.generation)] if state is not None and state.generation > 0 else []

    def pointer(self) -> Pointer | None:
        state = self.state()
        if state is None or state.generation == 0:
            return None
        return Pointer(_name(state.generation), state.uid)

    def readable_manifest(self) -> Manifest | None:
        state = self.state()
        return state.manifest if state is not None and state.generation > 0 else None

    def open_generation(self, pointer: Pointer) -> Generation:
        state = self.state()
        if state is None or state.generation == 0:
            raise IndexFolderError(f"{self} has no published generation")
        view = MilvusView(self.client, self.collection, state)
        name = _name(state.generation)
        manifest = state.manifest
        assert manifest is not None  # every published generation has one
        if view.passage_count != manifest.passages:
            raise self.damaged(name, self.collection, f"holds {view.passage_count} passages, its manifest "
                                                      f"{manifest.passages}")
        keywords = MilvusKeywords(view) if manifest.settings.get("keyword_store") != "none" else None
        sentences = None
        if manifest.settings.get("sentence_vectors"):
            counted = int((manifest.vector_index or {}).get("sentences", 0))
            sentences = MilvusSentences(view, manifest.dim, counted)
        return Generation(
            name, Pointer(name, state.uid).key, manifest, MilvusPassages(view),
            MilvusVectors(view, manifest.dim), keywords, size_bytes=lambda: 0, sentences=sentences,
        )

    def verify(self, name: str, *, checksums: bool, pointer: Pointer | None = None) -> Manifest:
        """Counts of passages and documents against the manifest (Milvus checks its own segments)."""
        generation = self.open_generation(pointer or Pointer(name, None))
        documents = generation.passages.count_documents()
        if documents != generation.manifest.documents:
            expected = generation.manifest.documents
            raise self.damaged(name, self.collection + DOCS_SUFFIX,
                               f"holds {documents} documents, its manifest {expected}")
        return generation.manifest

    def damaged(self, name: str, file: str, problem: str) -> IndexDamaged:
        return IndexDamaged(Path(str(self)), Damage(f"{file} at generation {name}", problem))

    def builder(
        self, settings: IndexSettings | None = None, *, embedder: Embedder | None = None, **options: Any
    ) -> MilvusWriter:
        return MilvusWriter(self, settings, embedder=embedder, **options)

    # --- writing (the writer's steps; see the module doc) ----------------------------------------
    def recover(self) -> State | None:
        """Finish or undo what a killed write left: step 4's deletions, step 2's unpublished rows."""
        client, name = self.client, self.collection
        state = self.state()
        if state is None:
            return None
        if state.replaced_passages or state.replaced_docs:
            self._delete(state)
            state.replaced_passages, state.replaced_docs = [], []
            client.upsert(name + STATE_SUFFIX, [state.to_row()])
        client.delete(name, filter=f"born > {state.generation}")
        client.delete(name + DOCS_SUFFIX, filter=f"born > {state.generation}")
        if client.has_collection(name + TERMS_SUFFIX):  # an index made before it has none
            self._undo_term_counts(state.generation)
        return state

    def _undo_term_counts(self, generation: int) -> None:
        """Drop the counts an unpublished write gave its terms (a row left with none is removed)."""
        client, terms = self.client, self.collection + TERMS_SUFFIX
        rows = list(query_all(client, terms, f"born > {generation}", ["term", "counts"]))
        kept = [(r["term"], [c for c in json.loads(r["counts"]) if c[0] <= generation]) for r in rows]
        if gone := [term for term, counts in kept if not counts]:
            client.delete(terms, ids=gone)
        if back := [term_row(term, counts) for term, counts in kept if counts]:
            client.upsert(terms, back)

    def _delete(self, state: State) -> None:
        if state.replaced_passages:
            self.client.delete(self.collection, ids=state.replaced_passages)
        if state.replaced_docs:
            self.client.delete(self.collection + DOCS_SUFFIX, ids=state.replaced_docs)

    def drop(self) -> None:
        """Remove the index's collections (tests, `--rebuild` of a test index)."""
        for suffix in SUFFIXES:
            if self.client.has_collection(self.collection + suffix):
                self.client.drop_collection(self.collection + suffix)


def _name(generation: int) -> str:
    return f"{generation:06d}"


def grace_seconds() -> float:
    return float(settings.value("SEMSEARCH_MILVUS_GRACE"))


class MilvusWriter(IndexBuilder):
    """`IndexBuilder`'s entry points (`index_paths`, `upsert`, `delete`) writing to Milvus: the same loading,
    change detection, chunking and embedding cache; generations published as the module doc says."""

    def __init__(
        self,
        index: MilvusIndex,
        settings: IndexSettings | None = None,
        *,
        embedder: Embedder | None = None,
        progress: bool = False,
        rebuild: bool = False,
        ray: str | None = None,
    ) -> None:
        self.dir = index  # type: ignore[assignment]  # the parts of IndexDir the shared steps use: root, manifest
        self._setup(settings, embedder=embedder, progress=progress, rebuild=rebuild, ray=ray)

    @contextmanager
    def _write_lock(self, read_at: str | None | EllipsisType = ...) -> Iterator[None]:
        """The collection's lock on this machine, then the --index folder's (and its check of `read_at`)."""
        with WriteLock(self.index.lock_dir, what=str(self.index)), super()._write_lock(read_at):
            yield

    _source: Manifest | None = None  # the manifest of the generation `copy_from` copies
    _source_has_sentences = False  # whether that generation has sentence vectors
    _roots_now: list[dict[str, Any]] | None = None  # the folders this write records

    def _model(self) -> tuple[str, int]:
        """The model's name and dimension: the copied generation's, else the embedder's (loaded for it)."""
        if self._source is not None:
            return self._source.model, int(self._source.dim)
        return self.embedder.name, self.embedder.dim

    @property
    def index(self) -> MilvusIndex:
        return self.dir  # type: ignore[return-value]

    def _commit(
        self,
        upserts: dict[str, Document],
        *,
        delete: set[str] | None = None,
        deleted_under: Sequence[Path] = (),
        kept_under: Sequence[Path] = (),
        roots: Roots | None = None,
        started: float,
        from_files: bool = False,
        read_at: str | None | EllipsisType = ...,
    ) -> BuildSummary:
        with self._write_lock(read_at):
            return self._write(upserts, delete or set(), deleted_under, started, kept_under=kept_under,
                               roots=roots)

    def _roots(self) -> tuple[Roots, dict[str, tuple[str, str | None]]]:
        """The folders recorded in the published state, and the documents indexed (see `IndexBuilder`)."""
        state = None if self.rebuild else self.index.state()
        if state is None or state.generation == 0:
            return Roots(), {}
        docs = MilvusPassages(MilvusView(self.index.client, self.index.collection, state)).document_hashes()
        return Roots.of_index(state.manifest, docs), docs

    def copy_from(self, source: Generation) -> BuildSummary:
        """Write the documents of another back end's generation with its passages and vectors as they are:
        nothing is chunked or embedded again (`semsearch migrate`). Documents already here unchanged are
        skipped, so a re-run after an interruption finishes the copy."""
        started = time.perf_counter()
        docs: dict[str, Document] = {}
        prepared: dict[str, Prepared] = {}
        total = source.passages.count_documents()
        for offset in range(0, total, 500):
            for listed in source.passages.list_documents(offset, 500):
                doc_id = listed["doc_id"]
                row = source.passages.document(doc_id)
                assert row is not None
                docs[doc_id] = Document(
                    doc_id=doc_id, text=row["text"], paragraphs=[tuple(p) for p in row["paragraphs"]],
                    title=row["title"], date=row["date"], author=row["author"], source=row["source"],
                    url=row["url"], categories=list(row["categories"]), path=row["path"],
                    pages=list(row.get("pages") or []),
                )
                ids = source.passages.passage_ids_of(doc_id)
                rows = source.passages.passages(ids)
                chunks = [Chunk(doc_id, r.ordinal, r.paragraph, r.start, r.end, r.text)
                          for r in (rows[i] for i in ids)]
                held = source.sentences.of(ids) if source.sentences is not None else None
                prepared[doc_id] = (
                    chunks, source.vectors.vectors(np.asarray(ids, dtype=np.int64)),
                    [held.get(i) for i in ids] if held is not None else None,
                )
        self._source = source.manifest
        self._source_has_sentences = source.sentences is not None
        with WriteLock(self.index.lock_dir, what=str(self.index)), WriteLock(self.index.root):
            summary = self._write(docs, set(), (), started, prepared=prepared)
        summary.reused = sum(len(p[0]) for p in prepared.values())
        if source.sentences is not None and not self.settings.sentence_vectors:
            summary.warnings.append(
                "the source's sentence vectors were not copied: this collection was created without them, "
                "so its dense side ranks by passage vectors alone (a new collection would hold them)"
            )
        return summary

    def _write(
        self,
        upserts: dict[str, Document],
        delete: set[str],
        deleted_under: Sequence[Path],
        started: float,
        *,
        kept_under: Sequence[Path] = (),
        roots: Roots | None = None,
        prepared: dict[str, Prepared] | None = None,
    ) -> BuildSummary:
        index, summary = self.index, BuildSummary()
        state = index.recover()
        self._choose_sentences(state)
        view = MilvusView(index.client, index.collection, state) if state is not None else None
        prev_docs = MilvusPassages(view).document_hashes() if view is not None else {}
        before = state.manifest if state is not None else None
        same_chunking = state is None or (
            before is not None and before.settings.get("chunks") == self.settings.to_dict()["chunks"]
        )
        if self.rebuild:
            delete = delete | (set(prev_docs) - set(upserts))
            same_chunking = False
        changed, gone, _keep, repath = self._plan(
            upserts, prev_docs, delete, deleted_under, kept_under, roots, same_chunking, summary
        )
        # A document whose file moved is written again with its new path (rows are never changed in place);
        # one kept because its file failed to load has no new rows to write, and keeps its old path.
        changed |= {doc_id: upserts[doc_id] for doc_id in repath if doc_id in upserts}
        summary.moved -= sum(1 for doc_id in repath if doc_id not in upserts)
        if roots is not None:
            self._roots_now = roots.to_manifest()
        elif self._source is not None:  # a copy records the folders its source had
            self._roots_now = self._source.roots
        else:
            self._roots_now = before.roots if before is not None else None
        roots_moved = roots is not None and before is not None and self._roots_now != (before.roots or [])
        # A collection made before `__terms` gets it from the next run, even one that changes nothing else.
        unchanged = not changed and not gone and not roots_moved
        if state is not None and state.generation > 0 and unchanged and state.terms_from:
            summary.generation = _name(state.generation)
            summary.passages = view.passage_count if view is not None else 0
            summary.seconds = time.perf_counter() - started
            return summary

        given: list[np.ndarray | None] = []  # the copied sentence vectors, one block per chunk
        if prepared is None:
            chunks = {doc_id: self._chunk(doc) for doc_id, doc in changed.items()}
            flat = [c for cs in chunks.values() for c in cs]
            vectors = self._vectors([c.content_hash() for c in flat], [c.text for c in flat], summary)
        else:
            chunks = {doc_id: prepared[doc_id][0] for doc_id in changed}
            parts = [prepared[doc_id][1] for doc_id in changed]
            vectors = np.vstack(parts) if parts else np.zeros((0, self._model()[1]), np.float32)
            for doc_id in changed:
                blocks = prepared[doc_id][2]
                given += blocks if blocks is not None else [None] * len(chunks[doc_id])
        flat_chunks = [c for cs in chunks.values() for c in cs]
        sentences = self._sentences(flat_chunks, given, summary) if self.settings.sentence_vectors else None
        if state is None:
            create_collections(index.client, index.collection, self._model()[1])
            state = State(uid=uuid.uuid4().hex)
            index.client.upsert(index.collection + STATE_SUFFIX, [state.to_row()])
        self._packs = has_sentences_field(index.client, index.collection)
        passages = view.passage_count if view is not None else 0
        documents = len(prev_docs)
        at = 0
        items: list[Item] = []
        for doc_id, doc in changed.items():
            n = len(chunks[doc_id])
            items.append((doc, chunks[doc_id], vectors[at : at + n],
                          sentences[at : at + n] if sentences is not None else None))
            at += n
        gone_list = sorted(gone)
        groups = max(1, -(-len(items) // GROUP_DOCS), -(-len(gone_list) // GROUP_DOCS))
        for g in range(groups):
            part = items[g * GROUP_DOCS : (g + 1) * GROUP_DOCS]
            removed = gone_list[g * GROUP_DOCS : (g + 1) * GROUP_DOCS]
            state, passages, documents = self._publish(state, part, removed, passages, documents, prev_docs)
        summary.generation = _name(state.generation)
        summary.passages = passages
        if self._terms_built:
            summary.repaired.append(
                "this collection, made by an older semsearch, had no table of word counts (`__terms`): built "
                "it from its passages, so searches read word rarity from it in one look-up"
            )
        summary.seconds = time.perf_counter() - started
        return summary

    def _write_terms(self, state: State, added: list[str], removed: list[str]) -> None:
        """This generation's rows of `NAME__terms`: the new counts of the terms of the passages it adds and
        replaces (given as their `words` fields), written before the switch; a reader of an older
        generation reads the count it had from the same row. An index without the table (made before it)
        first counts every term of the passages it has, so the table is whole from this generation on
        (`State.terms_from`)."""
        client, name, born = self.index.client, self.index.collection, state.generation + 1
        changes: Counter[str] = Counter()
        for words in added:
            changes.update(set(words.split()))
        for words in removed:
            changes.subtract(set(words.split()))
        if not state.terms_from:
            # Made before the table, or last written by a semsearch that does not keep it: counted afresh.
            if client.has_collection(name + TERMS_SUFFIX):
                client.drop_collection(name + TERMS_SUFFIX)
            create_terms_collection(client, name)
            self._terms_built = state.generation > 0
            if state.generation:  # the counts of G, as the changes of a table that had none
                expr = MilvusView(client, name, state).passage_expr
                for row in query_all(client, name, expr, ["words"]):
                    changes.update(set(row["words"].split()))
            previous = {}
        else:
            changes = Counter({t: n for t, n in changes.items() if n})
            previous = read_term_counts(client, name, list(changes))
        rows = term_rows(previous, changes, born)
        for lo in range(0, len(rows), INSERT_ROWS * 8):
            client.upsert(name + TERMS_SUFFIX, rows[lo : lo + INSERT_ROWS * 8])

    def _choose_sentences(self, state: State | None) -> None:
        """Whether this write stores sentence vectors: as the published collection has them (a write keeps
        every row alike; one created before them has no field for them), else as configured (a new
        collection, or `--rebuild` of one that has the field), and for a copy into a new collection only
        when its source has them (a copy embeds nothing)."""
        if state is not None and state.manifest is not None and not (
            self.rebuild and has_sentences_field(self.index.client, self.index.collection)
        ):
            chosen = bool(state.manifest.settings.get("sentence_vectors"))
        else:
            chosen = self.settings.sentence_vectors and (self._source is None or self._source_has_sentences)
        self.settings = replace(self.settings, sentence_vectors=chosen)

    def _sentences(
        self, chunks: list[Chunk], given: list[np.ndarray | None], summary: BuildSummary
    ) -> list[np.ndarray]:
        """Each chunk's sentence vectors: those given (a copy), else embedded as the folder builder embeds
        them (`IndexBuilder._embed_sentences`)."""
        blocks = list(given) + [None] * (len(chunks) - len(given))
        missing = [c.text for c, b in zip(chunks, blocks, strict=True) if b is None]
        embedded = iter(self._embed_sentences(missing, summary))
        return [block if block is not None else next(embedded) for block in blocks]

    _packs = False  # whether the passage collection has the sentences field (one created before it has not)
    _terms_built = False  # whether this write built the `__terms` table of an index made before it

    def _publish(
        self,
        state: State,
        items: list[Item],
        gone: list[str],
        passages: int,
        documents: int,
        prev_docs: dict[str, Any],
    ) -> tuple[State, int, int]:
        """One generation: steps 2–4 of the module doc. Returns the new state and counts."""
        index = self.index
        client, name, g = index.client, index.collection, state.generation
        born, next_id = g + 1, state.next_id
        rows_p: list[dict[str, Any]] = []
        rows_d: list[dict[str, Any]] = []
        dim = self._model()[1] if items or state.manifest is None else state.manifest.dim
        added_sentences = 0
        for doc, chunks, vecs, blocks in items:
            for k, (chunk, vec) in enumerate(zip(chunks, vecs, strict=True)):
                packed = None
                if self._packs:
                    packed, n = pack_sentences(blocks[k], dim) if blocks is not None else ("", 0)
                    added_sentences += n
                rows_p.append(passage_row(next_id, doc, chunk, vec, born, packed))
                next_id += 1
            doc_rows = document_rows(next_id, doc, len(chunks), born)
            rows_d += doc_rows
            next_id += len(doc_rows)
        for lo in range(0, len(rows_d), INSERT_ROWS):
            client.insert(name + DOCS_SUFFIX, rows_d[lo : lo + INSERT_ROWS])
        for lo in range(0, len(rows_p), INSERT_ROWS):
            client.insert(name, rows_p[lo : lo + INSERT_ROWS])
        touched = [doc.doc_id for doc, _, _, _ in items] + gone
        visible = f"born <= {g}"
        with_sentences = self.settings.sentence_vectors
        fields = ["passage_id", "words"] + ([SENTENCES_FIELD] if with_sentences else [])
        old_rows = query_in(client, name, "doc_id", touched, visible, fields)
        self._write_terms(state, [r["words"] for r in rows_p], [r["words"] for r in old_rows])
        old_p = [r["passage_id"] for r in old_rows]
        sentences = 0
        if with_sentences:
            counted = (state.manifest.vector_index or {}) if state.manifest is not None else {}
            removed = sum(len(unpack_sentences(r[SENTENCES_FIELD], dim)) for r in old_rows)
            sentences = int(counted.get("sentences", 0)) + added_sentences - removed
        old_d = [r["row"] for r in query_in(client, name + DOCS_SUFFIX, "doc_id", touched, visible, ["row"])]
        passages += len(rows_p) - len(old_p)
        documents += len(items) - sum(1 for d in touched if d in prev_docs)
        before = state.manifest
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            generation=_name(born),
            id=state.uid,
            created=now_iso(),
            model=self._model()[0] if items or before is None else before.model,
            dim=self._model()[1] if items or before is None else before.dim,
            settings=self.settings.to_dict() | {"vector_store": "milvus", "keyword_store": "milvus-bm25"},
            documents=documents,
            passages=passages,
            next_passage_id=next_id,
            vector_index={"sentences": sentences} if with_sentences else None,
            roots=self._roots_now,
            extra={"store": {"name": "milvus", "uri": index.uri, "collection": name,
                             "terms_from": state.terms_from or born}},
        )
        new = State(state.uid, born, next_id, old_p, old_d, manifest)
        client.upsert(name + STATE_SUFFIX, [new.to_row()])  # the switch (step 3)
        if old_p or old_d:
            time.sleep(grace_seconds())
            index._delete(new)
            new.replaced_passages, new.replaced_docs = [], []
            client.upsert(name + STATE_SUFFIX, [new.to_row()])
        return new, passages, documents
